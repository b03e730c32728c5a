"""Every SQL statement of the PM pipeline; every value is a bound parameter.

The rollup reads new rows the way the exporter does (ecm_common/snapshots.py): rows whose
writing transaction is visible in this fold's snapshot and not in the stored one are exactly the
rows committed in between, whatever order the API's requests committed in.
"""

from __future__ import annotations

from typing import LiteralString

from ecm_common.folds import fold_bound
from ecm_common.snapshots import COMMITTED_SINCE, VISIBLE_UPTO

# One statement per batch: the arrays are the batch's columns, sent in binary (adapting them as
# text costs twice the statement itself); a key already stored (an earlier
# post, or a concurrent post of the same batch, which waits for the first to commit) is skipped
# and missing from RETURNING, so its event is answered as a duplicate.
INSERT_EVENTS: LiteralString = """
INSERT INTO pm_events
       (event_id, event_time, source, entity_type, entity_id, metrics, schema_version)
SELECT e.event_id::uuid, e.event_time, e.source, e.entity_type, e.entity_id, e.metrics::jsonb,
       e.schema_version
  FROM unnest(%(event_id)b::text[], %(event_time)b::timestamptz[], %(source)b::text[],
              %(entity_type)b::text[], %(entity_id)b::text[], %(metrics)b::text[],
              %(schema_version)b::smallint[])
       AS e(event_id, event_time, source, entity_type, entity_id, metrics, schema_version)
    ON CONFLICT (event_id) DO NOTHING
RETURNING event_id::text
"""

# The first statement of a fold's REPEATABLE READ transaction: it fixes the snapshot.
FOLD_STATE: LiteralString = """
SELECT snapshot::text, pg_current_snapshot()::text FROM pm_rollup_state
"""


# Folds the rows committed since %(prev)s into the 5-minute rollups (buckets aligned on the
# epoch) and the cells' last sighting; a metric absent or not a number counts in samples only.
# Answers (rows folded, cell buckets touched).
FOLD: LiteralString = (
    """
WITH new AS MATERIALIZED (
    SELECT date_bin('5 minutes', event_time, TIMESTAMPTZ '1970-01-01 00:00:00+00') AS bucket,
           entity_id, entity_type, event_time, ingest_time,
           CASE WHEN jsonb_typeof(metrics -> 'dl_prb_util_pct') = 'number'
                THEN (metrics ->> 'dl_prb_util_pct')::float8 END AS dl,
           CASE WHEN jsonb_typeof(metrics -> 'ul_prb_util_pct') = 'number'
                THEN (metrics ->> 'ul_prb_util_pct')::float8 END AS ul,
           CASE WHEN jsonb_typeof(metrics -> 'rrc_conn_avg') = 'number'
                THEN (metrics ->> 'rrc_conn_avg')::float8 END AS rrc,
           CASE WHEN jsonb_typeof(metrics -> 'drop_rate_pct') = 'number'
                THEN (metrics ->> 'drop_rate_pct')::float8 END AS drp
      FROM pm_events
     WHERE """
    + COMMITTED_SINCE
    + "\n       AND "
    + VISIBLE_UPTO
    + """
), cells AS (
    INSERT INTO pm_kpi_5m_cells AS k (bucket, entity_id, dl_prb_util_max,
        samples, dl_prb_util_sum, dl_prb_util_n, ul_prb_util_sum, ul_prb_util_n,
        rrc_conn_sum, rrc_conn_n, drop_rate_sum, drop_rate_n)
    SELECT bucket, entity_id, max(dl),
           count(*), coalesce(sum(dl), 0), count(dl), coalesce(sum(ul), 0), count(ul),
           coalesce(sum(rrc), 0), count(rrc), coalesce(sum(drp), 0), count(drp)
      FROM new GROUP BY bucket, entity_id
    ON CONFLICT (bucket, entity_id) DO UPDATE SET
        dl_prb_util_max = GREATEST(k.dl_prb_util_max, EXCLUDED.dl_prb_util_max),
        samples = k.samples + EXCLUDED.samples,
        dl_prb_util_sum = k.dl_prb_util_sum + EXCLUDED.dl_prb_util_sum,
        dl_prb_util_n = k.dl_prb_util_n + EXCLUDED.dl_prb_util_n,
        ul_prb_util_sum = k.ul_prb_util_sum + EXCLUDED.ul_prb_util_sum,
        ul_prb_util_n = k.ul_prb_util_n + EXCLUDED.ul_prb_util_n,
        rrc_conn_sum = k.rrc_conn_sum + EXCLUDED.rrc_conn_sum,
        rrc_conn_n = k.rrc_conn_n + EXCLUDED.rrc_conn_n,
        drop_rate_sum = k.drop_rate_sum + EXCLUDED.drop_rate_sum,
        drop_rate_n = k.drop_rate_n + EXCLUDED.drop_rate_n
    RETURNING 1
), total AS (
    INSERT INTO pm_kpi_5m_total AS k (bucket,
        samples, dl_prb_util_sum, dl_prb_util_n, ul_prb_util_sum, ul_prb_util_n,
        rrc_conn_sum, rrc_conn_n, drop_rate_sum, drop_rate_n)
    SELECT bucket, count(*), coalesce(sum(dl), 0), count(dl), coalesce(sum(ul), 0), count(ul),
           coalesce(sum(rrc), 0), count(rrc), coalesce(sum(drp), 0), count(drp)
      FROM new GROUP BY bucket
    ON CONFLICT (bucket) DO UPDATE SET
        samples = k.samples + EXCLUDED.samples,
        dl_prb_util_sum = k.dl_prb_util_sum + EXCLUDED.dl_prb_util_sum,
        dl_prb_util_n = k.dl_prb_util_n + EXCLUDED.dl_prb_util_n,
        ul_prb_util_sum = k.ul_prb_util_sum + EXCLUDED.ul_prb_util_sum,
        ul_prb_util_n = k.ul_prb_util_n + EXCLUDED.ul_prb_util_n,
        rrc_conn_sum = k.rrc_conn_sum + EXCLUDED.rrc_conn_sum,
        rrc_conn_n = k.rrc_conn_n + EXCLUDED.rrc_conn_n,
        drop_rate_sum = k.drop_rate_sum + EXCLUDED.drop_rate_sum,
        drop_rate_n = k.drop_rate_n + EXCLUDED.drop_rate_n
    RETURNING 1
), seen AS (
    INSERT INTO pm_cells AS c (entity_id, entity_type, last_event_time, last_ingest, events)
    SELECT entity_id, max(entity_type), max(event_time), max(ingest_time), count(*)
      FROM new GROUP BY entity_id
    ON CONFLICT (entity_id) DO UPDATE SET
        entity_type = EXCLUDED.entity_type,
        last_event_time = GREATEST(c.last_event_time, EXCLUDED.last_event_time),
        last_ingest = GREATEST(c.last_ingest, EXCLUDED.last_ingest),
        events = c.events + EXCLUDED.events
    RETURNING 1
)
SELECT (SELECT count(*) FROM new), (SELECT count(*) FROM cells)
"""
)

# The first and the (n+1)-th writing transaction of the rows committed since %(prev)s: a fold
# stops below the latter, so that one fold (one transaction, one statement timeout) stays
# bounded after a long stall.
FOLD_BOUND = fold_bound("pm_events")

SAVE_STATE: LiteralString = """
UPDATE pm_rollup_state
   SET snapshot = %(snapshot)s::pg_snapshot, rows_folded = rows_folded + %(rows)s,
       updated_at = now()
"""

# KPI gauges: the trailing window's buckets, from the rollups only (thresholds in percent).
OVERALL: LiteralString = """
SELECT sum(samples),
       sum(dl_prb_util_sum) / NULLIF(sum(dl_prb_util_n), 0),
       sum(ul_prb_util_sum) / NULLIF(sum(ul_prb_util_n), 0),
       sum(rrc_conn_sum) / NULLIF(sum(rrc_conn_n), 0),
       sum(drop_rate_sum) / NULLIF(sum(drop_rate_n), 0)
  FROM pm_kpi_5m_total
 WHERE bucket >= %(since)s
"""

_WINDOW_CELLS: LiteralString = """
WITH w AS (
    SELECT entity_id,
           sum(dl_prb_util_sum) / NULLIF(sum(dl_prb_util_n), 0) AS dl,
           sum(drop_rate_sum) / NULLIF(sum(drop_rate_n), 0) AS drp
      FROM pm_kpi_5m_cells
     WHERE bucket >= %(since)s
     GROUP BY entity_id
)
"""

OVER_THRESHOLDS: LiteralString = (
    _WINDOW_CELLS
    + """
SELECT count(*),
       count(*) FILTER (WHERE dl > %(prb_warn)s), count(*) FILTER (WHERE dl > %(prb_alert)s),
       count(*) FILTER (WHERE drp > %(drop_warn)s), count(*) FILTER (WHERE drp > %(drop_alert)s)
  FROM w
"""
)

TOP_BUSIEST: LiteralString = (
    _WINDOW_CELLS
    + """
SELECT entity_id, dl FROM w WHERE dl IS NOT NULL ORDER BY dl DESC, entity_id LIMIT %(n)s
"""
)

TOP_DROPS: LiteralString = (
    _WINDOW_CELLS
    + """
SELECT entity_id, drp FROM w WHERE drp IS NOT NULL ORDER BY drp DESC, entity_id LIMIT %(n)s
"""
)

SILENT: LiteralString = """
SELECT count(*), count(*) FILTER (WHERE last_event_time < %(cutoff)s) FROM pm_cells
"""

# Retention, a bounded batch per statement. Raw rows go only once folded (visible in the
# rollups' snapshot), so a stalled rollup job never loses them.
DELETE_RAW: LiteralString = """
DELETE FROM pm_events
 WHERE ctid = ANY(ARRAY(
       SELECT e.ctid FROM pm_events e, pm_rollup_state s
        WHERE e.event_time < %(cutoff)s
          AND pg_visible_in_snapshot(e.txid, s.snapshot)
        LIMIT %(rows)s))
"""
DELETE_CELL_BUCKETS: LiteralString = """
DELETE FROM pm_kpi_5m_cells
 WHERE ctid = ANY(ARRAY(SELECT ctid FROM pm_kpi_5m_cells WHERE bucket < %(cutoff)s
                        LIMIT %(rows)s))
"""
DELETE_TOTAL_BUCKETS: LiteralString = "DELETE FROM pm_kpi_5m_total WHERE bucket < %(cutoff)s"
FORGET_CELLS: LiteralString = "DELETE FROM pm_cells WHERE last_event_time < %(cutoff)s"
