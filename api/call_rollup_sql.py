"""The SQL of the call rollups: the fold of newly committed calls into the per-minute rollups
(ecm_common/folds.py drives it) and the reset that makes the job fold every call again.

Histograms are sparse pairs of arrays (bucket ascending, calls), in the shared layout
(ecm_common/latency.py, BUCKET_SQL); a later fold merges its pairs into a row's by bucket.
"""

from __future__ import annotations

from typing import LiteralString

from ecm_common.folds import fold_bound
from ecm_common.latency import BUCKET_SQL
from ecm_common.snapshots import COMMITTED_SINCE, VISIBLE_UPTO

# FOR UPDATE: a reset waiting on the state row, or done meanwhile, fails this fold (serialization
# failure) instead of folding into rollups the reset is clearing.
FOLD_STATE: LiteralString = """
SELECT snapshot::text, pg_current_snapshot()::text FROM call_rollup_state FOR UPDATE
"""

FOLD_BOUND = fold_bound("emergency_calls")

_MERGE_HIST: LiteralString = """
        (hist_bucket, hist_calls) = (
            SELECT array_agg(m.b ORDER BY m.b), array_agg(m.n ORDER BY m.b)
              FROM (SELECT u.b, sum(u.n)::int AS n
                      FROM unnest(k.hist_bucket || EXCLUDED.hist_bucket,
                                  k.hist_calls || EXCLUDED.hist_calls) AS u(b, n)
                     GROUP BY u.b) AS m)"""

# ON CONFLICT DO UPDATE of a rollup row: add the new sums and merge the histograms.
_ADD_SUMS: LiteralString = (
    """
        calls = k.calls + EXCLUDED.calls,
        failed = k.failed + EXCLUDED.failed,
        latency_sum = k.latency_sum + EXCLUDED.latency_sum,"""
    + _MERGE_HIST
)
_GRAINS: LiteralString = "(VALUES (3600), (86400)) AS g(grain)"
_START: LiteralString = (
    "date_bin(make_interval(secs => g.grain), minute, TIMESTAMPTZ '1970-01-01 00:00:00+00')"
)

# Answers (calls folded, tower minutes touched).
FOLD: LiteralString = (
    """
WITH new AS MATERIALIZED (
    SELECT date_bin('1 minute', "timestamp", TIMESTAMPTZ '1970-01-01 00:00:00+00') AS minute,
           tower_id, status, failure_reason, latency_ms, """
    + BUCKET_SQL
    + """ AS b
      FROM emergency_calls
     WHERE """
    + COMMITTED_SINCE
    + "\n       AND "
    + VISIBLE_UPTO
    + """
), hist AS MATERIALIZED (
    SELECT minute, tower_id, b, count(*)::int AS n FROM new GROUP BY minute, tower_id, b
), per_tower AS (
    SELECT s.minute, s.tower_id, s.calls, s.failed, s.latency_sum, h.hb, h.hc
      FROM (SELECT minute, tower_id, count(*) AS calls,
                   count(*) FILTER (WHERE status = 'FAILED') AS failed,
                   sum(latency_ms) AS latency_sum
              FROM new GROUP BY minute, tower_id) AS s
      JOIN (SELECT minute, tower_id, array_agg(b ORDER BY b) AS hb, array_agg(n ORDER BY b) AS hc
              FROM hist GROUP BY minute, tower_id) AS h USING (minute, tower_id)
), towers AS (
    INSERT INTO call_rollup_1m AS k
           (minute, tower_id, calls, failed, latency_sum, hist_bucket, hist_calls)
    SELECT minute, tower_id, calls, failed, latency_sum, hb, hc FROM per_tower
    ON CONFLICT (minute, tower_id) DO UPDATE SET"""
    + _ADD_SUMS
    + """
    RETURNING 1
), tot_sums AS MATERIALIZED (
    SELECT minute, sum(calls) AS calls, sum(failed) AS failed, sum(latency_sum) AS latency_sum
      FROM per_tower GROUP BY minute
), tot_hist AS MATERIALIZED (
    SELECT minute, b, sum(n)::int AS n FROM hist GROUP BY minute, b
), total AS (
    INSERT INTO call_rollup_1m_total AS k
           (minute, calls, failed, latency_sum, hist_bucket, hist_calls)
    SELECT s.minute, s.calls, s.failed, s.latency_sum, h.hb, h.hc
      FROM tot_sums AS s
      JOIN (SELECT minute, array_agg(b ORDER BY b) AS hb, array_agg(n ORDER BY b) AS hc
              FROM tot_hist GROUP BY minute) AS h USING (minute)
    ON CONFLICT (minute) DO UPDATE SET"""
    + _ADD_SUMS
    + """
    RETURNING 1
), coarse AS (
    INSERT INTO call_rollup_coarse_total AS k
           (grain, start, calls, failed, latency_sum, hist_bucket, hist_calls)
    SELECT s.grain, s.start, s.calls, s.failed, s.latency_sum, h.hb, h.hc
      FROM (SELECT g.grain, """
    + _START
    + """ AS start, sum(calls) AS calls, sum(failed) AS failed,
                   sum(latency_sum) AS latency_sum
              FROM tot_sums, """
    + _GRAINS
    + """ GROUP BY 1, 2) AS s
      JOIN (SELECT grain, start, array_agg(b ORDER BY b) AS hb, array_agg(n ORDER BY b) AS hc
              FROM (SELECT g.grain, """
    + _START
    + """ AS start, b, sum(n)::int AS n
                      FROM tot_hist, """
    + _GRAINS
    + """ GROUP BY 1, 2, 3) AS c
             GROUP BY grain, start) AS h USING (grain, start)
    ON CONFLICT (grain, start) DO UPDATE SET"""
    + _ADD_SUMS
    + """
    RETURNING 1
), reasons AS (
    INSERT INTO call_reasons_1m AS k (minute, tower_id, failure_reason, calls)
    SELECT minute, tower_id, failure_reason, count(*) FROM new
     WHERE status = 'FAILED' GROUP BY minute, tower_id, failure_reason
    ON CONFLICT (minute, tower_id, failure_reason) DO UPDATE SET calls = k.calls + EXCLUDED.calls
    RETURNING 1
)
SELECT (SELECT count(*) FROM new), (SELECT count(*) FROM towers),
       (SELECT count(*) FROM total), (SELECT count(*) FROM reasons)
"""
)

SAVE_STATE: LiteralString = """
UPDATE call_rollup_state
   SET snapshot = %(snapshot)s::pg_snapshot, rows_folded = rows_folded + %(rows)s,
       updated_at = now()
"""

# A rebuild: the state goes back to a snapshot that sees no transaction and the rollups are
# emptied, in one transaction; the job's next folds take every stored call again, bounded.
# The state row first: a fold in progress finishes before, a fold starting after fails.
RESET: tuple[LiteralString, ...] = (
    "UPDATE call_rollup_state SET snapshot = '1:1:', rows_folded = 0, rebuilt_at = now(),"
    " updated_at = now()",
    "TRUNCATE call_rollup_1m, call_rollup_1m_total, call_rollup_coarse_total, call_reasons_1m",
)

STATE: LiteralString = """
SELECT rows_folded, rebuilt_at, updated_at FROM call_rollup_state
"""
