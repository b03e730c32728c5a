-- The ECM API's read side (issue 13): indexes for keyset pages of emergency calls, per-minute
-- call rollups kept incrementally from new rows only, and alert rules changed at run time.
--
-- The API reads calls and towers as ecm_reader (its pool sets role ecm_reader on connect, so a
-- read request cannot write even through a bug): ecm_api_rw becomes a member of ecm_reader.
--
-- The rollups are folded in by the API's call rollup job (api/call_rollup.py) with the
-- exporter's exactly-once reading (ecm_common/snapshots.py): rows whose writing transaction is
-- visible in the job's snapshot but not in the snapshot stored in call_rollup_state, in the
-- transaction that stores the new snapshot. Analytics read the rollups, never raw calls.
--
-- CREATE INDEX takes a lock that blocks inserts while it builds: on a large table apply this
-- migration while the generator is stopped (a few seconds per million rows).

-- Keyset pages, newest first: (timestamp, call_id) is the page key.
CREATE INDEX emergency_calls_page_idx ON emergency_calls ("timestamp", call_id);
CREATE INDEX emergency_calls_tower_page_idx ON emergency_calls (tower_id, "timestamp", call_id);
-- Failed calls are a small share: a partial index serves the status and reason filters.
CREATE INDEX emergency_calls_failed_page_idx ON emergency_calls (failure_reason, "timestamp", call_id)
    WHERE status = 'FAILED';

-- One row per minute and tower. The latency histogram is sparse: hist_bucket[i] is a bucket of
-- the shared log-spaced layout (ecm_common/latency.py) and hist_calls[i] its calls, buckets
-- ascending; a later fold merges into it exactly.
CREATE TABLE call_rollup_1m (
    minute      timestamptz NOT NULL,
    tower_id    text NOT NULL,
    calls       bigint NOT NULL,
    failed      bigint NOT NULL,
    latency_sum bigint NOT NULL,
    hist_bucket smallint[] NOT NULL,
    hist_calls  integer[] NOT NULL,
    PRIMARY KEY (minute, tower_id)
);
CREATE INDEX call_rollup_1m_tower_idx ON call_rollup_1m (tower_id, minute);

-- The same over every tower: a network-wide 30-day summary reads 43,200 rows.
CREATE TABLE call_rollup_1m_total (
    minute      timestamptz PRIMARY KEY,
    calls       bigint NOT NULL,
    failed      bigint NOT NULL,
    latency_sum bigint NOT NULL,
    hist_bucket smallint[] NOT NULL,
    hist_calls  integer[] NOT NULL
);

-- The same over every tower per hour (grain 3600) and per day (grain 86400): a 30-day summary
-- reads 29 days, up to 46 hours and 118 minutes instead of 43,200 minutes.
CREATE TABLE call_rollup_coarse_total (
    grain       integer NOT NULL CHECK (grain IN (3600, 86400)),
    start       timestamptz NOT NULL,
    calls       bigint NOT NULL,
    failed      bigint NOT NULL,
    latency_sum bigint NOT NULL,
    hist_bucket smallint[] NOT NULL,
    hist_calls  integer[] NOT NULL,
    PRIMARY KEY (grain, start)
);

-- Failed calls per minute, tower and reason.
CREATE TABLE call_reasons_1m (
    minute         timestamptz NOT NULL,
    tower_id       text NOT NULL,
    failure_reason text NOT NULL,
    calls          bigint NOT NULL,
    PRIMARY KEY (minute, tower_id, failure_reason)
);
CREATE INDEX call_reasons_1m_tower_idx ON call_reasons_1m (tower_id, minute);

-- The snapshot the call rollups are complete up to (one row). It starts as '1:1:', a snapshot
-- that sees no transaction: the job's first folds take every call already stored, in bounded
-- folds, exactly as they take new ones.
CREATE TABLE call_rollup_state (
    id          boolean PRIMARY KEY DEFAULT true CHECK (id),
    snapshot    pg_snapshot NOT NULL,
    rows_folded bigint NOT NULL DEFAULT 0,
    rebuilt_at  timestamptz,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO call_rollup_state (snapshot) VALUES ('1:1:');

-- Alert rules users change at run time (api/rules_*.py): the structured rule as JSON, rendered
-- by the API into a Prometheus rule file. Every change is kept in alert_rule_versions.
CREATE TABLE alert_rules (
    rule_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       text NOT NULL UNIQUE CHECK (name ~ '^[A-Z][A-Za-z0-9]{1,63}$'),
    spec       jsonb NOT NULL CHECK (jsonb_typeof(spec) = 'object'),
    enabled    boolean NOT NULL DEFAULT true,
    version    integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text NOT NULL
);
CREATE TABLE alert_rule_versions (
    rule_id    bigint NOT NULL,
    version    integer NOT NULL,
    action     text NOT NULL CHECK (action IN ('create', 'update', 'delete')),
    spec       jsonb NOT NULL,
    changed_by text NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (rule_id, version)
);

REVOKE ALL ON call_rollup_1m, call_rollup_1m_total, call_rollup_coarse_total, call_reasons_1m,
    call_rollup_state, alert_rules, alert_rule_versions FROM PUBLIC;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ecm_api_rw') THEN
        -- TRUNCATE: a rebuild empties the rollups (api/call_rollup_sql.py RESET).
        GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON call_rollup_1m, call_rollup_1m_total,
            call_rollup_coarse_total, call_reasons_1m TO ecm_api_rw;
        GRANT SELECT, UPDATE ON call_rollup_state TO ecm_api_rw;
        GRANT SELECT, INSERT, UPDATE, DELETE ON alert_rules TO ecm_api_rw;
        GRANT SELECT, INSERT ON alert_rule_versions TO ecm_api_rw;
        -- The rollup job reads new calls by txid.
        GRANT SELECT ON emergency_calls, towers TO ecm_api_rw;
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ecm_reader') THEN
            GRANT ecm_reader TO ecm_api_rw;
        END IF;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ecm_reader') THEN
        GRANT SELECT ON call_rollup_1m, call_rollup_1m_total, call_rollup_coarse_total,
            call_reasons_1m, call_rollup_state, alert_rules, alert_rule_versions TO ecm_reader;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ecm_writer') THEN
        REVOKE ALL ON call_rollup_1m, call_rollup_1m_total, call_rollup_coarse_total,
            call_reasons_1m, call_rollup_state, alert_rules, alert_rule_versions FROM ecm_writer;
    END IF;
END
$$;
