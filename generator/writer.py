"""Writing batches into PostgreSQL with binary COPY, plainly or idempotently on a retry."""

from __future__ import annotations

import logging

import psycopg

from ecm_common.db import connect
from ecm_common.domain import tower_name
from generator import queries
from generator.batch import CallBatch
from generator.encode import encode_copy

log = logging.getLogger(__name__)


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


def upsert_towers(conn: psycopg.Connection, weights: tuple[float, ...]) -> None:
    """Record the towers in use (TOWER_1..N) and their traffic weights in ``towers``."""
    names = [tower_name(i + 1) for i in range(len(weights))]
    with conn.transaction():
        conn.execute(queries.UPSERT_TOWERS, (names, list(weights)))


class DbWriter:
    """One lazily (re)opened connection used by the writer thread."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: psycopg.Connection | None = None

    def connection(self) -> psycopg.Connection:
        """The open connection, reconnecting after a failure (raises DatabaseUnavailable)."""
        if self._conn is None or self._conn.closed:
            self._conn = connect(self.url, app="ecm-generator")
        return self._conn

    def write(self, batch: CallBatch, *, idempotent: bool) -> int:
        """Write a batch; any error closes the connection so the next call reconnects."""
        try:
            conn = self.connection()
            if idempotent:
                return copy_batch_idempotent(conn, batch)
            return copy_batch(conn, batch)
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
