"""The API's connection pools: autocommit connections with a statement timeout; the read pool
also takes the reader role (SET ROLE ecm_reader at connect) and is read-only, so a read route
cannot write whatever it runs."""

from __future__ import annotations

from psycopg_pool import AsyncConnectionPool

from ecm_common.db import CONNECT_TIMEOUT_S

READER_ROLE = "ecm_reader"


def connection_pool(
    url: str, *, size: int, timeout_s: float, name: str, reader: bool = False
) -> AsyncConnectionPool:
    """A closed pool (open() it in the lifespan); waits and statements are bounded by timeout_s."""
    options = f"-c statement_timeout={int(timeout_s * 1000)}"
    if reader:
        options += f" -c role={READER_ROLE} -c default_transaction_read_only=on"
    return AsyncConnectionPool(
        url,
        min_size=1,
        max_size=size,
        open=False,
        timeout=timeout_s,
        name=name,
        check=AsyncConnectionPool.check_connection,
        kwargs={
            "autocommit": True,
            "application_name": name,
            "connect_timeout": min(CONNECT_TIMEOUT_S, max(1, int(timeout_s))),
            "options": options,
        },
    )
