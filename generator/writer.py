"""Writing batches into PostgreSQL with binary COPY, plainly or idempotently on a retry.

Every write runs under a statement and lock timeout, so a hung database (a lock, a stuck
server) fails like a lost connection after a bounded time. ``classify`` tells the pipeline what a
failure means: worth a retry, the rows are already stored, these rows are refused, or the
database refuses this writer altogether (a missing grant, a different schema). A batch with
refused rows is searched by halving under savepoints, so only the refused rows are set aside.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable
from typing import Literal

import psycopg

from ecm_common.db import connect, describe
from ecm_common.domain import tower_name
from ecm_common.errors import DatabaseUnavailable, EcmError
from generator import queries
from generator.batch import CallBatch
from generator.encode import encode_copy

log = logging.getLogger(__name__)

# SQLSTATE classes a retry cannot fix: access rules and missing objects (42), authorization
# (28), missing catalog or schema (3D, 3F), unsupported features (0A).
_REFUSED_CLASSES = ("42", "28", "3D", "3F", "0A")

# More refused rows than this in one batch is no bad row but a schema that does not fit: the
# writer is refused instead (the run stops and keeps the batch), which also bounds the search.
MAX_REFUSED_ROWS = 64

# Default bound of one statement or lock wait of the writer (option write_timeout).
WRITE_TIMEOUT_S = 30.0

Verdict = Literal["retry", "duplicate", "reject", "refuse"]


class TooManyRefused(EcmError):
    """The database refused so many rows of one batch that the schema itself must differ."""


def classify(exc: BaseException) -> Verdict:
    """What a failed write means: retry it, already stored, rows refused, or writer refused."""
    if isinstance(exc, psycopg.errors.UniqueViolation):
        if exc.diag.constraint_name == queries.IDEMPOTENCY_KEY:
            return "duplicate"
        return "reject"
    if isinstance(exc, psycopg.DataError | psycopg.IntegrityError):
        return "reject"
    if isinstance(exc, psycopg.Error):
        state = exc.sqlstate or ""
        return "refuse" if state[:2] in _REFUSED_CLASSES else "retry"
    if isinstance(exc, DatabaseUnavailable):
        return "retry"
    if isinstance(exc, EcmError):
        return "refuse"  # the schema could not be brought up to date, for instance
    return "retry"


def explain(exc: BaseException) -> str:
    """One line naming the error and, for a server error, its SQLSTATE."""
    state = getattr(exc, "sqlstate", None)
    return f"{describe(exc)} (SQLSTATE {state})" if state else describe(exc)


def copy_batch(conn: psycopg.Connection, batch: CallBatch) -> int:
    """COPY a valid batch into emergency_calls in one transaction; returns the rows written.

    Fails (UniqueViolation) if any call_uuid is already stored: use ``copy_batch_idempotent``
    for a batch that may have been written before.
    """
    if len(batch) == 0:
        return 0
    data = encode_copy(batch)
    with conn.transaction(), conn.cursor() as cur, cur.copy(queries.COPY_CALLS) as copy:
        copy.write(data)
    return len(batch)


def copy_batch_idempotent(conn: psycopg.Connection, batch: CallBatch) -> int:
    """Store a batch that may already be partly or wholly stored; returns the rows newly added.

    The batch is copied into a temporary staging table and moved over with
    ``ON CONFLICT (call_uuid) DO NOTHING``, in one transaction, so a batch whose earlier attempt
    committed before its acknowledgement was lost is never stored twice.
    """
    if len(batch) == 0:
        return 0
    data = encode_copy(batch)
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(queries.CREATE_STAGE)
        with cur.copy(queries.COPY_STAGE) as copy:
            copy.write(data)
        cur.execute(queries.INSERT_FROM_STAGE)
        return max(cur.rowcount, 0)


def copy_batch_isolating(
    conn: psycopg.Connection, batch: CallBatch
) -> tuple[int, list[tuple[int, str]]]:
    """Store the rows the database takes from a refused batch: (rows newly added, refused rows).

    The batch is halved under savepoints, in one transaction, until every refused part is a
    single row, so a row the database refuses (a constraint, a data error) costs that row only:
    refused rows come back as (index in the batch, reason). More than ``MAX_REFUSED_ROWS`` is
    TooManyRefused; that and any other error abort the whole transaction, storing nothing.
    """
    new = 0
    refused: list[tuple[int, str]] = []
    n = len(batch)
    parts = collections.deque([(0, n // 2), (n // 2, n)] if n > 1 else [(0, n)])
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(queries.CREATE_STAGE)
        while parts:
            lo, hi = parts.popleft()
            if lo == hi:
                continue
            try:
                with conn.transaction():
                    with cur.copy(queries.COPY_STAGE) as copy:
                        copy.write(encode_copy(batch.take(slice(lo, hi))))
                    cur.execute(queries.INSERT_FROM_STAGE)
                    new += max(cur.rowcount, 0)
                    cur.execute(queries.EMPTY_STAGE)
            except (psycopg.DataError, psycopg.IntegrityError) as exc:
                if hi - lo == 1:
                    refused.append((lo, explain(exc)))
                    if len(refused) > MAX_REFUSED_ROWS:
                        raise TooManyRefused(
                            f"it refused more than {MAX_REFUSED_ROWS} of {n} rows of one batch,"
                            f" the last for {explain(exc)}"
                        ) from None
                else:
                    mid = (lo + hi) // 2
                    parts.extendleft([(mid, hi), (lo, mid)])
    return new, refused


def upsert_towers(
    conn: psycopg.Connection, weights: tuple[float, ...], regions: tuple[str, ...]
) -> None:
    """Record the towers in use (TOWER_1..N), their traffic weights and regions in ``towers``."""
    names = [tower_name(i + 1) for i in range(len(weights))]
    with conn.transaction():
        conn.execute(queries.UPSERT_TOWERS, (names, list(weights), list(regions)))


def set_timeouts(conn: psycopg.Connection, seconds: float) -> None:
    """Bound every later statement and lock wait of the session to ``seconds``."""
    with conn.transaction():
        conn.execute(queries.SET_TIMEOUTS, {"ms": str(max(1, round(seconds * 1000)))})


class DbWriter:
    """One lazily (re)opened connection used by the writer thread.

    ``prepare`` (the schema check and the tower list) runs once, on the first connection that
    works, so a run may start while the database is down.
    """

    def __init__(
        self,
        url: str,
        timeout: float = WRITE_TIMEOUT_S,
        prepare: Callable[[psycopg.Connection], None] | None = None,
    ) -> None:
        self.url = url
        self.timeout = timeout
        self._prepare = prepare
        self._conn: psycopg.Connection | None = None

    def connection(self) -> psycopg.Connection:
        """The open connection, reconnecting after a failure (raises DatabaseUnavailable)."""
        if self._conn is None or self._conn.closed:
            conn = connect(self.url, app="ecm-generator")
            try:
                set_timeouts(conn, self.timeout)
                if self._prepare is not None:
                    self._prepare(conn)
                    self._prepare = None
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def write(self, batch: CallBatch, *, idempotent: bool) -> int:
        """Write a batch; returns the rows newly stored. Errors close the connection."""
        try:
            conn = self.connection()
            if idempotent:
                return copy_batch_idempotent(conn, batch)
            return copy_batch(conn, batch)
        except BaseException:
            self.close()
            raise

    def write_isolating(self, batch: CallBatch) -> tuple[int, list[tuple[int, str]]]:
        """Store what the database takes of a refused batch (``copy_batch_isolating``)."""
        try:
            return copy_batch_isolating(self.connection(), batch)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Close the connection, ignoring errors from a dead one."""
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg.Error:
                log.debug("closing a broken connection failed", exc_info=True)
            self._conn = None
