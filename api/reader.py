"""Read queries of the API routes, as the reader role, each bounded by the statement timeout.

The database down, no pooled connection within db_timeout, or a statement cut by the timeout
become a 503 problem with Retry-After; the route's client retries or narrows its question.
"""

from __future__ import annotations

import logging
from typing import Any, LiteralString

import psycopg
from psycopg import sql
from psycopg_pool import PoolTimeout

from api.pool import connection_pool
from ecm_common.db import describe
from ecm_common.service import Problem

log = logging.getLogger(__name__)

RETRY_AFTER_S = 5
Query = LiteralString | sql.Composed


class Reader:
    """A pool of read-only connections as ecm_reader."""

    def __init__(self, url: str, *, pool_size: int, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.pool = connection_pool(
            url, size=pool_size, timeout_s=timeout_s, name="ecm-api-reader", reader=True
        )

    async def open(self) -> None:
        """Start filling the pool; a database that is down now is not an error yet."""
        await self.pool.open(wait=False)

    async def close(self) -> None:
        """Close every connection."""
        await self.pool.close()

    async def rows(self, query: Query, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        """Every row of one query."""
        try:
            async with self.pool.connection() as conn:
                cur = await conn.execute(query, params)
                return await cur.fetchall()
        except PoolTimeout:
            raise _unavailable("no database connection within the timeout") from None
        except psycopg.errors.QueryCanceled:
            raise _unavailable(
                f"the query took longer than {self.timeout_s:g} s; narrow the time range"
            ) from None
        except psycopg.OperationalError as exc:
            log.warning("a read failed: %s", describe(exc))
            raise _unavailable(f"database unavailable: {describe(exc)}") from None


def _unavailable(detail: str) -> Problem:
    return Problem(503, detail, headers={"Retry-After": str(RETRY_AFTER_S)})
