"""Every SQL statement the exporter runs, inside REPEATABLE READ READ ONLY transactions.

Incremental reads use the writers' transaction ids (column txid): the rows visible in this
refresh's snapshot but not in the previous refresh's snapshot are exactly the rows committed in
between, whatever order the writers committed in. Aborted rows are never visible.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, LiteralString

import psycopg
from psycopg import IsolationLevel

log = logging.getLogger(__name__)

SNAPSHOT = "SELECT pg_current_snapshot()::text"

_COLUMNS = """SELECT tower_id, status, failure_reason, latency_ms,
       date_part('epoch', "timestamp") AS epoch_s
  FROM emergency_calls"""

NEW_CALLS: LiteralString = (
    _COLUMNS
    + """
 WHERE txid >= pg_snapshot_xmin(%(prev)s::pg_snapshot)
   AND NOT pg_visible_in_snapshot(txid, %(prev)s::pg_snapshot)"""
)

REBUILD: LiteralString = (
    _COLUMNS
    + """
 WHERE "timestamp" >= %(since)s"""
)

TOWERS = "SELECT tower_id FROM towers"

# Is the database still on the same transaction-id timeline as a previous snapshot?
CONTINUOUS = (
    "SELECT pg_snapshot_xmin(%(prev)s::pg_snapshot) <= pg_snapshot_xmin(pg_current_snapshot())"
)

# A hung statement fails instead of blocking every later refresh.
SESSION_SETUP = "SELECT set_config('statement_timeout', %(ms)s, false)"

FETCH_SIZE = 20_000


@dataclass
class Columns:
    """Rows read from emergency_calls, column by column."""

    towers: list[str]
    statuses: list[str]
    reasons: list[str | None]
    latency_ms: list[int]
    epoch_s: list[float]

    def __len__(self) -> int:
        return len(self.towers)


QueryTimer = Callable[[str, float, bool], None]


@contextmanager
def snapshot_transaction(conn: psycopg.Connection) -> Iterator[str]:
    """A REPEATABLE READ READ ONLY transaction; yields its snapshot (pg_snapshot text)."""
    conn.isolation_level = IsolationLevel.REPEATABLE_READ
    conn.read_only = True
    with conn.transaction():
        # In REPEATABLE READ the first statement fixes the snapshot every later read uses.
        row = conn.execute(SNAPSHOT).fetchone()
        assert row is not None
        yield str(row[0])


def _read(conn: psycopg.Connection, query: LiteralString, params: dict[str, Any]) -> Columns:
    """Run a calls query and return its columns (fetched in chunks, binary transfer)."""
    cols = Columns([], [], [], [], [])
    with conn.cursor(binary=True) as cur:
        cur.execute(query, params)
        while chunk := cur.fetchmany(FETCH_SIZE):
            t, s, r, lat, ep = zip(*chunk, strict=True)
            cols.towers.extend(t)
            cols.statuses.extend(s)
            cols.reasons.extend(r)
            cols.latency_ms.extend(lat)
            cols.epoch_s.extend(ep)
    return cols


def timed(name: str, on_done: QueryTimer | None, fn: Callable[[], Any]) -> Any:
    """Run fn, reporting its duration and outcome under the query name."""
    start = time.perf_counter()
    try:
        out = fn()
    except BaseException:
        if on_done:
            on_done(name, time.perf_counter() - start, False)
        raise
    if on_done:
        on_done(name, time.perf_counter() - start, True)
    log.debug("query %s took %.3f s", name, time.perf_counter() - start)
    return out


def new_calls(conn: psycopg.Connection, prev: str, on_done: QueryTimer | None = None) -> Columns:
    """Calls committed after snapshot prev and visible in the current transaction."""
    return timed("new_calls", on_done, lambda: _read(conn, NEW_CALLS, {"prev": prev}))  # type: ignore[no-any-return]


def window_calls(
    conn: psycopg.Connection, since_epoch_s: float, on_done: QueryTimer | None = None
) -> Columns:
    """Calls with an event time at or after since_epoch_s (no upper bound: clock skew)."""
    since = datetime.fromtimestamp(since_epoch_s, UTC)
    return timed("rebuild", on_done, lambda: _read(conn, REBUILD, {"since": since}))  # type: ignore[no-any-return]


def towers(conn: psycopg.Connection, on_done: QueryTimer | None = None) -> list[str]:
    """Every tower id in the towers table."""

    def run() -> list[str]:
        return [str(r[0]) for r in conn.execute(TOWERS).fetchall()]

    return timed("towers", on_done, run)  # type: ignore[no-any-return]


def session_setup(conn: psycopg.Connection, timeout_s: float) -> None:
    """Per-connection settings: a statement timeout."""
    conn.execute(SESSION_SETUP, {"ms": str(int(timeout_s * 1000))})
    conn.commit()


def continuous(conn: psycopg.Connection, prev: str) -> bool:
    """True when prev belongs to this database's past, so reading from it misses nothing."""
    row = conn.execute(CONTINUOUS, {"prev": prev}).fetchone()
    return bool(row and row[0])
