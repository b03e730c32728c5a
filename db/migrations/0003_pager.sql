-- The pager: monitored services, incidents and their alerts, the timeline, the notification
-- outbox and the dead man's switch; group role ecm_pager_rw (its login: ecm_pager).
--
-- "One open incident per service" is a partial unique index, so two webhooks racing for the same
-- service cannot both open one: the loser's INSERT ... ON CONFLICT attaches to the winner's.

CREATE TABLE pager_services (
    service_id text PRIMARY KEY CHECK (length(service_id) BETWEEN 1 AND 200),
    healthy    boolean NOT NULL DEFAULT true,
    changed_at timestamptz NOT NULL
);

CREATE TABLE pager_incidents (
    incident_id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    service_id         text NOT NULL REFERENCES pager_services,
    state              text NOT NULL CHECK (state IN ('triggered', 'acknowledged', 'resolved')),
    title              text NOT NULL,
    policy             text NOT NULL,
    opened_at          timestamptz NOT NULL,
    acknowledged_at    timestamptz,
    acknowledged_by    text,
    resolved_at        timestamptz,
    resolved_by        text,
    -- Escalation position: the next level to notify (0-based), the passes through the policy
    -- already started beyond the first, and the count of level notifications so far (the
    -- outbox's key, so one level of one pass is queued once whatever happens).
    next_level         integer NOT NULL DEFAULT 0 CHECK (next_level >= 0),
    pass               integer NOT NULL DEFAULT 0 CHECK (pass >= 0),
    step               integer NOT NULL DEFAULT 0 CHECK (step >= 0),
    -- When the escalator must look at it again: next level (triggered) or re-trigger
    -- (acknowledged); NULL once resolved or when the policy is exhausted.
    next_escalation_at timestamptz,
    CONSTRAINT pager_incidents_resolved_iff_time
        CHECK ((state = 'resolved') = (resolved_at IS NOT NULL))
);

CREATE UNIQUE INDEX pager_incidents_one_open_per_service
    ON pager_incidents (service_id) WHERE state <> 'resolved';
CREATE INDEX pager_incidents_due_idx
    ON pager_incidents (next_escalation_at) WHERE next_escalation_at IS NOT NULL;
CREATE INDEX pager_incidents_state_idx ON pager_incidents (state, incident_id);

-- One row per alert instance: Alertmanager's fingerprint (the label set) and its startsAt (the
-- same alert firing again after it resolved is a new instance). A retried webhook finds its row
-- and changes nothing.
CREATE TABLE pager_incident_alerts (
    fingerprint text NOT NULL CHECK (length(fingerprint) BETWEEN 1 AND 64),
    starts_at   timestamptz NOT NULL,
    incident_id bigint NOT NULL REFERENCES pager_incidents,
    alertname   text NOT NULL,
    labels      jsonb NOT NULL,
    status      text NOT NULL CHECK (status IN ('firing', 'resolved')),
    received_at timestamptz NOT NULL,
    resolved_at timestamptz,
    PRIMARY KEY (fingerprint, starts_at)
);

CREATE INDEX pager_incident_alerts_incident_idx ON pager_incident_alerts (incident_id, status);

-- The timeline: every state change and notification of an incident.
CREATE TABLE pager_events (
    event_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    incident_id bigint NOT NULL REFERENCES pager_incidents,
    at          timestamptz NOT NULL,
    kind        text NOT NULL,
    detail      text NOT NULL DEFAULT ''
);

CREATE INDEX pager_events_incident_idx ON pager_events (incident_id, event_id);

-- Notifications to send: written in the transaction that escalates, sent by any pager process
-- (claimed FOR UPDATE SKIP LOCKED), retried with backoff until sent or out of attempts.
CREATE TABLE pager_outbox (
    notification_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    incident_id     bigint NOT NULL REFERENCES pager_incidents,
    step            integer NOT NULL,
    level           integer NOT NULL,
    channel         text NOT NULL CHECK (channel IN ('email', 'sms', 'webhook')),
    target          text NOT NULL,
    subject         text NOT NULL,
    body            text NOT NULL,
    ack_url         text NOT NULL,
    state           text NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'sent', 'failed', 'cancelled')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    last_error      text,
    created_at      timestamptz NOT NULL,
    sent_at         timestamptz,
    UNIQUE (incident_id, step, channel, target)
);

CREATE INDEX pager_outbox_pending_idx ON pager_outbox (next_attempt_at) WHERE state = 'pending';

-- The dead man's switch: when each heartbeat alert (EcmWatchdog) last arrived.
CREATE TABLE pager_heartbeats (
    name         text PRIMARY KEY,
    last_seen_at timestamptz NOT NULL
);

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ecm_pager_rw') THEN
        CREATE ROLE ecm_pager_rw NOLOGIN;
    END IF;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'no CREATEROLE privilege: role ecm_pager_rw not created';
END
$$;

-- 0001's default privileges would let the exporter and the generator read these tables; the
-- outbox holds addresses and phone numbers, which neither has any business reading.
REVOKE ALL ON pager_services, pager_incidents, pager_incident_alerts, pager_events,
    pager_outbox, pager_heartbeats FROM PUBLIC;
DO $$
DECLARE
    other text;
BEGIN
    FOREACH other IN ARRAY ARRAY['ecm_reader', 'ecm_writer'] LOOP
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = other) THEN
            EXECUTE format('REVOKE ALL ON pager_services, pager_incidents, pager_incident_alerts,'
                ' pager_events, pager_outbox, pager_heartbeats FROM %I', other);
        END IF;
    END LOOP;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ecm_pager_rw') THEN
        EXECUTE format('GRANT CONNECT ON DATABASE %I TO ecm_pager_rw', current_database());
        GRANT USAGE ON SCHEMA public TO ecm_pager_rw;
        GRANT SELECT, INSERT, UPDATE ON pager_services, pager_incidents, pager_incident_alerts,
            pager_outbox, pager_heartbeats TO ecm_pager_rw;
        -- The timeline is append-only.
        GRANT SELECT, INSERT ON pager_events TO ecm_pager_rw;
        -- /readyz and the migration check read which migrations are applied.
        GRANT SELECT ON ecm_schema_migrations TO ecm_pager_rw;
    END IF;
END
$$;
