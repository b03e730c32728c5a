-- SMS emergency-alert broadcast: campaigns, their messages as a queue, progress counters and the
-- senders that deliver them (broadcast/, README "SMS broadcast").
--
-- A message is claimed with FOR UPDATE SKIP LOCKED under a lease: lease_token is bumped by every
-- claim and every reclaim, and an outcome is stored only by an UPDATE whose WHERE names the
-- token it was claimed with, so a sender whose lease expired (and whose message was handed to
-- another sender) cannot record anything. Progress is kept in broadcast_counts as messages
-- change state, one row per (campaign, sender, kind), so reading it never scans the messages.

CREATE TABLE broadcast_campaigns (
    campaign_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 100),
    -- One text per campaign: an alert says the same thing to every recipient.
    body          text NOT NULL CHECK (length(body) BETWEEN 1 AND 1600),
    encoding      text NOT NULL CHECK (encoding IN ('GSM7', 'UCS2')),
    segments      smallint NOT NULL CHECK (segments BETWEEN 1 AND 10),
    priority      smallint NOT NULL CHECK (priority BETWEEN 0 AND 9),
    total         bigint NOT NULL CHECK (total >= 0),
    max_attempts  smallint NOT NULL CHECK (max_attempts BETWEEN 1 AND 20),
    created_at    timestamptz NOT NULL DEFAULT now(),
    cancelled_at  timestamptz
);

CREATE TABLE broadcast_messages (
    message_id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    campaign_id      bigint NOT NULL REFERENCES broadcast_campaigns,
    recipient        text NOT NULL CHECK (recipient ~ '^\+[1-9][0-9]{6,14}$'),
    -- Copied from the campaign so that the claim index orders by it (higher first).
    priority         smallint NOT NULL CHECK (priority BETWEEN 0 AND 9),
    state            text NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'in_flight', 'delivered', 'failed', 'cancelled')),
    lease_owner      text,
    lease_token      bigint NOT NULL DEFAULT 0,
    lease_expires_at timestamptz,
    attempts         smallint NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    failure_reason   text,
    claimed_at       timestamptz,
    finished_at      timestamptz,
    send_seconds     double precision CHECK (send_seconds >= 0),
    CONSTRAINT broadcast_messages_lease_iff_in_flight
        CHECK ((state = 'in_flight') = (lease_expires_at IS NOT NULL)),
    CONSTRAINT broadcast_messages_reason_iff_failed
        CHECK ((state = 'failed') = (failure_reason IS NOT NULL))
);

-- Claiming: the next pending messages by priority, then due time; only pending rows are indexed.
CREATE INDEX broadcast_messages_claim_idx ON broadcast_messages
    (priority DESC, next_attempt_at, message_id) WHERE state = 'pending';
-- Reclaiming expired leases.
CREATE INDEX broadcast_messages_lease_idx ON broadcast_messages
    (lease_expires_at) WHERE state = 'in_flight';
-- Cancelling a campaign touches its pending messages only.
CREATE INDEX broadcast_messages_campaign_pending_idx ON broadcast_messages
    (campaign_id) WHERE state = 'pending';

-- kind: claimed, reclaimed (an expired lease returned to pending), requeued (a retryable
-- failure sent back with a backoff), delivered, failed:<REASON>, cancelled, time_le:<bucket>
-- (delivered and failed outcomes by send time, for the monitor's p95). Each sender writes only
-- its own rows (the producer and `cancel` write sender_id ''), so senders never wait on each
-- other here.
CREATE TABLE broadcast_counts (
    campaign_id bigint NOT NULL REFERENCES broadcast_campaigns,
    sender_id   text NOT NULL,
    kind        text NOT NULL,
    n           bigint NOT NULL DEFAULT 0,
    seconds     double precision NOT NULL DEFAULT 0,
    first_at    timestamptz NOT NULL,
    last_at     timestamptz NOT NULL,
    PRIMARY KEY (campaign_id, sender_id, kind)
);

CREATE TABLE broadcast_senders (
    sender_id    text PRIMARY KEY CHECK (length(sender_id) BETWEEN 1 AND 100),
    mean_time    double precision NOT NULL,
    failure_rate double precision NOT NULL,
    "window"     integer NOT NULL,
    started_at   timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL
);

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ecm_broadcast_rw') THEN
        CREATE ROLE ecm_broadcast_rw NOLOGIN;
    END IF;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'no CREATEROLE privilege: role ecm_broadcast_rw not created';
END
$$;

-- Recipients are personal data: only the broadcast role reads these tables. 0001's default
-- privileges gave every new table SELECT to the reader and the writer; take it back.
REVOKE ALL ON broadcast_campaigns, broadcast_messages, broadcast_counts, broadcast_senders
    FROM PUBLIC;
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ecm_reader') THEN
        REVOKE ALL ON broadcast_campaigns, broadcast_messages, broadcast_counts,
            broadcast_senders FROM ecm_reader;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ecm_writer') THEN
        REVOKE ALL ON broadcast_campaigns, broadcast_messages, broadcast_counts,
            broadcast_senders FROM ecm_writer;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ecm_broadcast_rw') THEN
        EXECUTE format('GRANT CONNECT ON DATABASE %I TO ecm_broadcast_rw', current_database());
        GRANT USAGE ON SCHEMA public TO ecm_broadcast_rw;
        GRANT SELECT, INSERT, UPDATE ON broadcast_campaigns, broadcast_messages,
            broadcast_counts, broadcast_senders TO ecm_broadcast_rw;
        GRANT USAGE ON SEQUENCE broadcast_campaigns_campaign_id_seq,
            broadcast_messages_message_id_seq TO ecm_broadcast_rw;
    END IF;
END
$$;
