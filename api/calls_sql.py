"""The SQL of the calls routes; every value is a bound parameter, every filter a fixed fragment.

Pages are keyset pages, newest first, keyed by ("timestamp", call_id): page 1,000 starts with an
index descent like page 1 (0006's indexes: one per filter shape), never an OFFSET.
"""

from __future__ import annotations

from typing import LiteralString

from psycopg import sql

CALL_COLUMNS: LiteralString = (
    'call_id, call_uuid::text, "timestamp", caller_id, tower_id, latency_ms, status, failure_reason'
)

# Filter name -> its WHERE fragment (the API adds a fragment only when its filter is given).
FILTERS: dict[str, LiteralString] = {
    "from": '"timestamp" >= %(from)s',
    "to": '"timestamp" < %(to)s',
    "tower": "tower_id = %(tower)s",
    "status": "status = %(status)s",
    # The status condition lets the planner use the partial index of failed calls.
    "reason": "status = 'FAILED' AND failure_reason = %(reason)s",
    "after": '("timestamp", call_id) < (%(after_ts)s, %(after_id)s)',
}


def calls_page(filters: list[str]) -> sql.Composed:
    """A page of calls with these filters (names of FILTERS), %(limit)s rows, newest first."""
    where = [sql.SQL(FILTERS[name]) for name in filters] or [sql.SQL("true")]
    return sql.SQL(
        "SELECT " + CALL_COLUMNS + " FROM emergency_calls WHERE {}"
        ' ORDER BY "timestamp" DESC, call_id DESC LIMIT %(limit)s'
    ).format(sql.SQL(" AND ").join(where))


ONE_CALL: LiteralString = "SELECT " + CALL_COLUMNS + " FROM emergency_calls WHERE call_id = %(id)s"

# Is the tower known: in the towers table, or named by a call (the exporter counts both). The
# ORDER BY follows the tower index (EXISTS would drop it and could scan the table).
TOWER_KNOWN: LiteralString = """
SELECT EXISTS (SELECT 1 FROM towers WHERE tower_id = %(tower)s)
    OR coalesce((SELECT true FROM emergency_calls WHERE tower_id = %(tower)s
                  ORDER BY tower_id, "timestamp" DESC LIMIT 1), false)
"""

# A page of towers by id with their last-hour numbers from the per-minute call rollups (the
# (tower_id, minute) index: 60 rows a tower), never raw calls.
TOWERS_PAGE: LiteralString = """
WITH t AS (
    SELECT tower_id, region FROM towers
     WHERE tower_id > %(after_tower)s AND (%(region)s::text IS NULL OR region = %(region)s)
     ORDER BY tower_id LIMIT %(limit)s
)
SELECT t.tower_id, t.region, h.calls, h.failed, h.latency_sum
  FROM t CROSS JOIN LATERAL (
       SELECT sum(r.calls) AS calls, sum(r.failed) AS failed, sum(r.latency_sum) AS latency_sum
         FROM call_rollup_1m r
        WHERE r.tower_id = t.tower_id AND r.minute >= %(since)s) h
 ORDER BY t.tower_id
"""
