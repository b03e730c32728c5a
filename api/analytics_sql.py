"""The SQL of the analytics routes: the per-minute call rollups only, never raw calls.

Network-wide summaries read whole days and hours from call_rollup_coarse_total and the edges
from call_rollup_1m_total; other network-wide questions read call_rollup_1m_total (one row a
minute); a tower's read call_rollup_1m through its (tower_id, minute) index. Each answer is
one statement, one snapshot, so the counts and the histogram of an answer agree.
"""

from __future__ import annotations

from typing import LiteralString

_ALL: LiteralString = "call_rollup_1m_total WHERE minute >= %(from)s AND minute < %(to)s"
_TOWER: LiteralString = (
    "call_rollup_1m WHERE tower_id = %(tower)s AND minute >= %(from)s AND minute < %(to)s"
)


_COLS: LiteralString = "SELECT calls, failed, latency_sum, hist_bucket, hist_calls FROM "

# Network-wide rows of [from, to): whole days [d_lo, d_hi), the whole hours around them
# [h_lo, d_lo) and [d_hi, h_hi), the minutes around those [from, h_lo) and [h_hi, to); an empty
# level has lo = hi at the next level's edge (api/analytics.py levels()). A 30-day range reads
# at most 30 days, 46 hours and 118 minutes.
_LEVELS: LiteralString = (
    _COLS
    + """call_rollup_coarse_total
 WHERE grain = 86400 AND start >= %(d_lo)s AND start < %(d_hi)s
UNION ALL
"""
    + _COLS
    + """call_rollup_coarse_total
 WHERE grain = 3600 AND ((start >= %(h_lo)s AND start < %(d_lo)s)
                         OR (start >= %(d_hi)s AND start < %(h_hi)s))
UNION ALL
"""
    + _COLS
    + """call_rollup_1m_total
 WHERE (minute >= %(from)s AND minute < %(h_lo)s) OR (minute >= %(h_hi)s AND minute < %(to)s)"""
)


def _summary(rows: LiteralString) -> LiteralString:
    # First row: bucket NULL and the sums; then one row per histogram bucket.
    return (
        """
WITH r AS MATERIALIZED ("""
        + rows
        + """)
SELECT NULL::smallint, sum(calls), sum(failed), sum(latency_sum) FROM r
UNION ALL
(SELECT u.b, sum(u.n), NULL, NULL
   FROM r, unnest(r.hist_bucket, r.hist_calls) AS u(b, n) GROUP BY u.b)
"""
    )


SUMMARY_ALL = _summary(_LEVELS)
SUMMARY_TOWER = _summary(_COLS + _TOWER)


def _series(source: LiteralString) -> LiteralString:
    return (
        """
SELECT date_bin(%(step)s, minute, TIMESTAMPTZ '1970-01-01 00:00:00+00') AS t,
       sum(calls), sum(failed), sum(latency_sum)
  FROM """
        + source
        + """
 GROUP BY t ORDER BY t
"""
    )


def _series_hist(source: LiteralString) -> LiteralString:
    return (
        """
SELECT date_bin(%(step)s, r.minute, TIMESTAMPTZ '1970-01-01 00:00:00+00') AS t, u.b, sum(u.n)
  FROM (SELECT minute, hist_bucket, hist_calls FROM """
        + source
        + """) AS r,
       unnest(r.hist_bucket, r.hist_calls) AS u(b, n)
 GROUP BY t, u.b
"""
    )


SERIES_ALL = _series(_ALL)
SERIES_TOWER = _series(_TOWER)
SERIES_HIST_ALL = _series_hist(_ALL)
SERIES_HIST_TOWER = _series_hist(_TOWER)

_REASONS: LiteralString = """
SELECT failure_reason, sum(calls) AS n FROM call_reasons_1m
 WHERE minute >= %(from)s AND minute < %(to)s"""
REASONS_ALL: LiteralString = _REASONS + "\n GROUP BY failure_reason ORDER BY n DESC, 1"
REASONS_TOWER: LiteralString = (
    _REASONS + " AND tower_id = %(tower)s\n GROUP BY failure_reason ORDER BY n DESC, 1"
)

# Order name -> ORDER BY expression over the grouped sums (fixed fragments, never user text).
TOWER_ORDERS: dict[str, LiteralString] = {
    "failure_ratio": "sum(r.failed)::float8 / sum(r.calls) DESC, sum(r.failed) DESC",
    "failed": "sum(r.failed) DESC",
    "calls": "sum(r.calls) DESC",
    "avg_latency_ms": "sum(r.latency_sum)::float8 / sum(r.calls) DESC",
}


def towers_ranked(order: str) -> LiteralString:
    """Towers with calls in [from, to), at least %(min_calls)s, worst first by this order."""
    return (
        """
SELECT r.tower_id, coalesce(t.region, 'unknown'), sum(r.calls), sum(r.failed), sum(r.latency_sum)
  FROM call_rollup_1m r LEFT JOIN towers t USING (tower_id)
 WHERE r.minute >= %(from)s AND r.minute < %(to)s
 GROUP BY r.tower_id, t.region
HAVING sum(r.calls) >= %(min_calls)s
 ORDER BY """
        + TOWER_ORDERS[order]
        + """, r.tower_id
 LIMIT %(limit)s
"""
    )
