-- RAN PM counters: raw events posted to the ECM API, 5-minute KPI rollups kept incrementally
-- from new rows only, the cells' last sighting, and the API's own group role.
--
-- The rollups are folded in by the API's rollup job (api/rollup.py) with the exporter's
-- exactly-once reading: rows whose writing transaction (txid) is visible in the job's snapshot
-- but not in the snapshot stored in pm_rollup_state, in the same transaction that stores the new
-- snapshot. Dashboards read the rollups, never raw events.

CREATE TABLE pm_events (
    -- Chosen by the sender (deterministic: UUIDv5 of cell and period): a resend is a duplicate.
    event_id       uuid PRIMARY KEY,
    event_time     timestamptz NOT NULL,
    ingest_time    timestamptz NOT NULL DEFAULT now(),
    source         text NOT NULL CHECK (length(source) BETWEEN 1 AND 64),
    entity_type    text NOT NULL CHECK (length(entity_type) BETWEEN 1 AND 32),
    entity_id      text NOT NULL CHECK (length(entity_id) BETWEEN 1 AND 128),
    metrics        jsonb NOT NULL CHECK (jsonb_typeof(metrics) = 'object'),
    schema_version smallint NOT NULL,
    txid           xid8 NOT NULL DEFAULT pg_current_xact_id()
);

-- Per-cell history ("this cell over the last day") and retention's oldest-first deletes.
CREATE INDEX pm_events_entity_time_idx ON pm_events (entity_id, event_time);
CREATE INDEX pm_events_event_time_idx ON pm_events (event_time);
-- The rollup job range-scans by writing transaction.
CREATE INDEX pm_events_txid_idx ON pm_events (txid);

-- One row per 5-minute bucket (aligned on the epoch) and cell: sums and counts, so that a
-- later batch adds to a bucket exactly; averages are sum / n (views below).
CREATE TABLE pm_kpi_5m_cells (
    bucket          timestamptz NOT NULL,
    entity_id       text NOT NULL,
    samples         bigint NOT NULL,
    dl_prb_util_sum double precision NOT NULL DEFAULT 0,
    dl_prb_util_n   bigint NOT NULL DEFAULT 0,
    dl_prb_util_max double precision,
    ul_prb_util_sum double precision NOT NULL DEFAULT 0,
    ul_prb_util_n   bigint NOT NULL DEFAULT 0,
    rrc_conn_sum    double precision NOT NULL DEFAULT 0,
    rrc_conn_n      bigint NOT NULL DEFAULT 0,
    drop_rate_sum   double precision NOT NULL DEFAULT 0,
    drop_rate_n     bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (bucket, entity_id)
);
-- "This cell over time" without touching other cells.
CREATE INDEX pm_kpi_5m_cells_entity_idx ON pm_kpi_5m_cells (entity_id, bucket);

-- The same sums over every cell: the overall time series reads 288 rows a day.
CREATE TABLE pm_kpi_5m_total (
    bucket          timestamptz PRIMARY KEY,
    samples         bigint NOT NULL,
    dl_prb_util_sum double precision NOT NULL DEFAULT 0,
    dl_prb_util_n   bigint NOT NULL DEFAULT 0,
    ul_prb_util_sum double precision NOT NULL DEFAULT 0,
    ul_prb_util_n   bigint NOT NULL DEFAULT 0,
    rrc_conn_sum    double precision NOT NULL DEFAULT 0,
    rrc_conn_n      bigint NOT NULL DEFAULT 0,
    drop_rate_sum   double precision NOT NULL DEFAULT 0,
    drop_rate_n     bigint NOT NULL DEFAULT 0
);

-- Every cell ever heard from, with its latest event: silent cells are those whose latest event
-- is older than two granularity periods.
CREATE TABLE pm_cells (
    entity_id       text PRIMARY KEY,
    entity_type     text NOT NULL,
    last_event_time timestamptz NOT NULL,
    last_ingest     timestamptz NOT NULL,
    events          bigint NOT NULL
);
CREATE INDEX pm_cells_last_event_idx ON pm_cells (last_event_time);

-- The snapshot the rollups are complete up to: one row, written in the transaction that folds
-- the rows in. Created with this migration's snapshot: pm_events is empty in it.
CREATE TABLE pm_rollup_state (
    id          boolean PRIMARY KEY DEFAULT true CHECK (id),
    snapshot    pg_snapshot NOT NULL,
    rows_folded bigint NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO pm_rollup_state (snapshot) VALUES (pg_current_snapshot());

CREATE VIEW pm_kpi_5m AS
SELECT bucket,
       entity_id,
       samples,
       dl_prb_util_sum / NULLIF(dl_prb_util_n, 0) AS dl_prb_util_pct,
       dl_prb_util_max AS dl_prb_util_max_pct,
       ul_prb_util_sum / NULLIF(ul_prb_util_n, 0) AS ul_prb_util_pct,
       rrc_conn_sum / NULLIF(rrc_conn_n, 0) AS rrc_conn_avg,
       drop_rate_sum / NULLIF(drop_rate_n, 0) AS drop_rate_pct
  FROM pm_kpi_5m_cells;

CREATE VIEW pm_kpi_5m_overall AS
SELECT bucket,
       samples,
       dl_prb_util_sum / NULLIF(dl_prb_util_n, 0) AS dl_prb_util_pct,
       ul_prb_util_sum / NULLIF(ul_prb_util_n, 0) AS ul_prb_util_pct,
       rrc_conn_sum / NULLIF(rrc_conn_n, 0) AS rrc_conn_avg,
       drop_rate_sum / NULLIF(drop_rate_n, 0) AS drop_rate_pct
  FROM pm_kpi_5m_total;

-- Roles. ecm_api_rw (the API's login ecm_api is its member) inserts events and keeps the
-- rollups; SELECT on pm_events is for the rollup job and the RETURNING of the insert, DELETE
-- for retention. ecm_reader (Grafana, the exporter, ad-hoc SQL) reads. The calls writer has no
-- business here: 0001's default privileges gave it SELECT, taken back.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ecm_api_rw') THEN
        CREATE ROLE ecm_api_rw NOLOGIN;
    END IF;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'no CREATEROLE privilege: role ecm_api_rw not created';
END
$$;

REVOKE ALL ON pm_events, pm_kpi_5m_cells, pm_kpi_5m_total, pm_cells, pm_rollup_state,
    pm_kpi_5m, pm_kpi_5m_overall FROM PUBLIC;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ecm_api_rw') THEN
        EXECUTE format('GRANT CONNECT ON DATABASE %I TO ecm_api_rw', current_database());
        GRANT USAGE ON SCHEMA public TO ecm_api_rw;
        GRANT SELECT, INSERT, DELETE ON pm_events TO ecm_api_rw;
        GRANT SELECT, INSERT, UPDATE, DELETE ON pm_kpi_5m_cells, pm_kpi_5m_total, pm_cells
            TO ecm_api_rw;
        GRANT SELECT, UPDATE ON pm_rollup_state TO ecm_api_rw;
        GRANT SELECT ON pm_kpi_5m, pm_kpi_5m_overall TO ecm_api_rw;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ecm_reader') THEN
        GRANT SELECT ON pm_events, pm_kpi_5m_cells, pm_kpi_5m_total, pm_cells, pm_rollup_state,
            pm_kpi_5m, pm_kpi_5m_overall TO ecm_reader;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ecm_writer') THEN
        REVOKE ALL ON pm_events, pm_kpi_5m_cells, pm_kpi_5m_total, pm_cells, pm_rollup_state,
            pm_kpi_5m, pm_kpi_5m_overall FROM ecm_writer;
    END IF;
END
$$;
