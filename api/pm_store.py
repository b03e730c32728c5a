"""Storing a batch of PM events: one INSERT ... SELECT FROM unnest(...) ON CONFLICT DO NOTHING per
batch, over a pool of autocommit connections with a statement timeout.

The database being unreachable, a pooled connection not coming within db_timeout, or a statement
cut by the timeout all raise DatabaseUnavailable: the client is told 503 and retries; nothing of
the batch was stored (one statement, one transaction).
"""

from __future__ import annotations

import logging

import psycopg
from psycopg_pool import PoolTimeout

from api.pm_events import Rows
from api.pm_sql import INSERT_EVENTS
from api.pool import connection_pool
from ecm_common.db import describe
from ecm_common.errors import DatabaseUnavailable

log = logging.getLogger(__name__)


class Store:
    """The API's connection pool and its one write."""

    def __init__(self, url: str, *, pool_size: int, timeout_s: float) -> None:
        self.pool = connection_pool(url, size=pool_size, timeout_s=timeout_s, name="ecm-api")

    async def open(self) -> None:
        """Start filling the pool; a database that is down now is not an error yet."""
        await self.pool.open(wait=False)

    async def close(self) -> None:
        """Close every connection."""
        await self.pool.close()

    async def insert(self, rows: Rows) -> set[str]:
        """Store the rows whose event_id is new; returns those event ids."""
        if not rows:
            return set()
        params = {
            "event_id": rows.event_id,
            "event_time": rows.event_time,
            "source": rows.source,
            "entity_type": rows.entity_type,
            "entity_id": rows.entity_id,
            "metrics": rows.metrics,
            "schema_version": rows.schema_version,
        }
        try:
            async with self.pool.connection() as conn:
                cur = await conn.execute(INSERT_EVENTS, params)
                return {row[0] for row in await cur.fetchall()}
        except PoolTimeout:
            raise DatabaseUnavailable("no database connection within the timeout") from None
        except psycopg.OperationalError as exc:
            log.warning("storing %d PM events failed: %s", len(rows), describe(exc))
            raise DatabaseUnavailable(f"database unavailable: {describe(exc)}") from None
