"""Every SQL statement the exporter runs; reads run in REPEATABLE READ READ ONLY transactions.

Incremental reads use the writers' transaction ids (column txid): the rows visible in this
refresh's snapshot but not in the previous refresh's snapshot are exactly the rows committed in
between, whatever order the writers committed in. Aborted rows are never visible. Rows stored
earlier with a timestamp beyond the clock-skew horizon are read again, once, when the horizon
passes them, so the kept rows are always "visible now, timestamped in [oldest, horizon)".
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, LiteralString

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg import IsolationLevel

from ecm_common.snapshots import COMMITTED_SINCE, CONTINUOUS

log = logging.getLogger(__name__)

# Taken before the snapshot: a transaction that holds emergency_calls exclusively (a migration, a
# TRUNCATE) is waited for first, so the snapshot, and the data, are as of after the wait.
LOCK_CALLS = "LOCK TABLE emergency_calls IN ACCESS SHARE MODE"
SNAPSHOT = "SELECT pg_current_snapshot()::text"

_COLUMNS = """SELECT tower_id, status, failure_reason, latency_ms,
       date_part('epoch', "timestamp") AS epoch_s
  FROM emergency_calls"""

NEW_CALLS: LiteralString = _COLUMNS + "\n WHERE " + COMMITTED_SINCE

# Rows already visible to the previous refresh that were then beyond the horizon.
DUE_CALLS: LiteralString = (
    _COLUMNS
    + """
 WHERE "timestamp" >= %(since)s AND "timestamp" < %(until)s
   AND pg_visible_in_snapshot(txid, %(prev)s::pg_snapshot)"""
)

# Ordered so that a row's position is the index the rebuild's COPY numbers the tower with.
TOWERS = 'SELECT tower_id, region FROM towers ORDER BY tower_id COLLATE "C"'
TOWERS_NAMED = "SELECT tower_id, region FROM towers WHERE tower_id = ANY(%(ids)s)"

# The rebuild's rows as two int8 binary arrays in one COPY row, parsed in bulk by numpy (no Python
# object, and no protocol message, per row): (tower position in TOWERS + 1) * 1024 + (reason index
# in the list + 2; 1 for a success, 0 for a reason outside it), and the milliseconds since
# `since` << 31 | latency. Rows of towers missing from the table (position -1) or with other
# reasons are read again, by name, with REBUILD_ODD.
REBUILD_COPY: LiteralString = """COPY (
  WITH t AS (
    SELECT tower_id, row_number() OVER (ORDER BY tower_id COLLATE "C") - 1 AS pos FROM towers)
  SELECT coalesce(array_agg(
           (coalesce(t.pos, -1) + 1) * 1024
           + CASE WHEN c.status = 'FAILED'
                  THEN coalesce(array_position(%(reasons)s::text[], c.failure_reason) + 1, 0)
                  ELSE 1 END), '{}'),
         coalesce(array_agg(
           ((floor(date_part('epoch', c."timestamp") * 1000)::int8 - %(since_ms)s) << 31)
           | c.latency_ms), '{}')
    FROM emergency_calls c LEFT JOIN t USING (tower_id)
   WHERE c."timestamp" >= %(since)s AND c."timestamp" < %(until)s
) TO STDOUT (FORMAT binary)"""
MAX_NUMBERED_REASONS = 1000  # reasons beyond these take the REBUILD_ODD path
REBUILD_ODD: LiteralString = (
    _COLUMNS
    + """
 WHERE "timestamp" >= %(since)s AND "timestamp" < %(until)s
   AND (NOT EXISTS (SELECT 1 FROM towers t WHERE t.tower_id = emergency_calls.tower_id)
        OR failure_reason <> ALL(%(reasons)s::text[]))"""
)
_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"


# For this transaction only: the rebuild's join is a hash join in memory (with the default 4 MB
# the planner sorts a million rows on disk to merge them: twice as long).
REBUILD_PLANNER = (
    "SELECT set_config('work_mem', '128MB', true), set_config('enable_mergejoin', 'off', true)"
)

# A hung statement fails instead of blocking every later refresh.
SESSION_SETUP = "SELECT set_config('statement_timeout', %(ms)s, false)"

# Which database this is, and counters that move when rows leave emergency_calls: DELETE and
# UPDATE statistics (published by PostgreSQL within about a second of the commit, at most 10 s),
# and the table's file, which TRUNCATE replaces.
CAN_READ_SYSTEM_ID = "SELECT has_function_privilege('pg_control_system()', 'EXECUTE')"
_SOURCE = """(SELECT oid::bigint FROM pg_database WHERE datname = current_database()),
       c.relfilenode::bigint,
       pg_stat_get_tuples_deleted(c.oid) + pg_stat_get_tuples_updated(c.oid)
  FROM pg_class c
 WHERE c.oid = 'emergency_calls'::regclass"""
SOURCE: LiteralString = "SELECT NULL::text, " + _SOURCE
SOURCE_WITH_SYSTEM_ID: LiteralString = (
    "SELECT (SELECT system_identifier::text FROM pg_control_system()), " + _SOURCE
)

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


@dataclass
class Records:
    """Rebuild rows as arrays: tower position in the ordered towers list (-1: not in it), reason
    index in the given list (-1: success, -2: another reason), latency and event time."""

    tower: npt.NDArray[np.int64]
    reason: npt.NDArray[np.int64]
    latency_ms: npt.NDArray[np.int64]
    epoch_s: npt.NDArray[np.float64]


@dataclass(frozen=True)
class Source:
    """Which database the exporter reads, and a marker that changes when rows are removed."""

    system_id: str | None  # None when the role may not call pg_control_system()
    database_oid: int
    table_file: int
    removed: int  # rows deleted or updated, per the statistics

    def same_database(self, other: Source) -> bool:
        """True unless the two were read from different databases (or a restored copy)."""
        if self.database_oid != other.database_oid:
            return False
        return None in (self.system_id, other.system_id) or self.system_id == other.system_id

    def rows_removed_since(self, other: Source) -> bool:
        """True when rows were deleted, updated or truncated between the two readings."""
        return (self.table_file, self.removed) != (other.table_file, other.removed)


@contextmanager
def snapshot_transaction(conn: psycopg.Connection) -> Iterator[str]:
    """A REPEATABLE READ READ ONLY transaction; yields its snapshot (pg_snapshot text)."""
    conn.isolation_level = IsolationLevel.REPEATABLE_READ
    conn.read_only = True
    with conn.transaction():
        conn.execute(LOCK_CALLS)
        # In REPEATABLE READ the first query fixes the snapshot every later read uses.
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


def _ts(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)


def new_calls(conn: psycopg.Connection, prev: str) -> Columns:
    """Calls committed after snapshot prev and visible in the current transaction."""
    return _read(conn, NEW_CALLS, {"prev": prev})


def due_calls(conn: psycopg.Connection, prev: str, since_s: float, until_s: float) -> Columns:
    """Calls visible to snapshot prev with an event time in [since_s, until_s)."""
    return _read(conn, DUE_CALLS, {"prev": prev, "since": _ts(since_s), "until": _ts(until_s)})


def towers(conn: psycopg.Connection) -> list[tuple[str, str]]:
    """Every (tower id, region) in the towers table, ordered as REBUILD_COPY numbers them."""
    return [(str(t), str(g)) for t, g in conn.execute(TOWERS).fetchall()]


def towers_named(conn: psycopg.Connection, ids: list[str]) -> list[tuple[str, str]]:
    """(tower id, region) of the given towers that the towers table holds."""
    rows = conn.execute(TOWERS_NAMED, {"ids": ids}).fetchall()
    return [(str(t), str(g)) for t, g in rows]


def _array(buf: bytearray, at: int, dtype: str) -> tuple[npt.NDArray[Any], int]:
    """A one-dimensional array field of a binary COPY row at offset at; the offset after it."""
    size = int.from_bytes(buf[at : at + 4], "big", signed=True)
    end = at + 4 + size
    ndim = int.from_bytes(buf[at + 4 : at + 8], "big")
    if ndim == 0:
        return np.zeros(0, dtype), end
    n = int.from_bytes(buf[at + 16 : at + 20], "big")
    item = np.dtype([("len", ">i4"), ("v", dtype)])
    values = np.frombuffer(buf, item, n, at + 24)
    if ndim != 1 or at + 24 + n * item.itemsize != end or (values["len"] < 0).any():
        raise psycopg.DataError("unexpected COPY array layout")
    return values["v"], end


def window_records(
    conn: psycopg.Connection, since_s: float, until_s: float, reasons: list[str]
) -> Records:
    """Calls with an event time in [since_s, until_s) (since_s a whole second), by binary COPY
    parsed in bulk."""
    buf = bytearray()
    since_ms = round(since_s * 1000)
    params = {
        "reasons": reasons[:MAX_NUMBERED_REASONS], "since_ms": since_ms,
        "since": _ts(since_s), "until": _ts(until_s),
    }  # fmt: skip
    conn.execute(REBUILD_PLANNER)
    with conn.cursor() as cur, cur.copy(REBUILD_COPY, params) as copy:
        for chunk in copy:
            buf += chunk
    if not buf.startswith(_COPY_SIGNATURE):
        raise psycopg.DataError("unexpected COPY header")
    at = len(_COPY_SIGNATURE) + 8 + int.from_bytes(buf[15:19], "big") + 2  # + field count
    key, at = _array(buf, at, ">i8")
    when, at = _array(buf, at, ">i8")
    key, when = key.astype(np.int64), when.astype(np.int64)
    return Records(
        tower=key // 1024 - 1,
        reason=key % 1024 - 2,
        latency_ms=when & ((1 << 31) - 1),
        epoch_s=(since_ms + (when >> 31)) / 1000.0,
    )


def odd_window_calls(
    conn: psycopg.Connection, since_s: float, until_s: float, reasons: list[str]
) -> Columns:
    """The rows window_records could not number: towers not in the table, other reasons."""
    params = {"reasons": reasons[:MAX_NUMBERED_REASONS], "since": _ts(since_s),
              "until": _ts(until_s)}  # fmt: skip
    return _read(conn, REBUILD_ODD, params)


def session_setup(conn: psycopg.Connection, timeout_s: float) -> None:
    """Per-connection settings: a statement timeout."""
    conn.execute(SESSION_SETUP, {"ms": str(int(timeout_s * 1000))})
    conn.commit()


def can_read_system_id(conn: psycopg.Connection) -> bool:
    """Whether this role may read the cluster's system identifier (hardened servers revoke it)."""
    row = conn.execute(CAN_READ_SYSTEM_ID).fetchone()
    conn.commit()
    return bool(row and row[0])


def source(conn: psycopg.Connection, *, system_id: bool) -> Source:
    """The database's identity and removal marker, in a transaction of its own.

    Read before the snapshot is taken: a removal the statistics already show committed before
    the snapshot, so the rebuild it triggers sees it.
    """
    conn.isolation_level = IsolationLevel.READ_COMMITTED
    conn.read_only = True
    with conn.transaction():
        row = conn.execute(SOURCE_WITH_SYSTEM_ID if system_id else SOURCE).fetchone()
    assert row is not None
    return Source(row[0], int(row[1]), int(row[2]), int(row[3]))


def continuous(conn: psycopg.Connection, prev: str) -> bool:
    """True when prev belongs to this database's past, so reading from it misses nothing."""
    row = conn.execute(CONTINUOUS, {"prev": prev}).fetchone()
    return bool(row and row[0])
