"""The throwaway database and the synthetic calls that fill it."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import psycopg

from bench import queries
from db.migrate import migrate
from ecm_common.db import connect
from stack.pgcluster import LocalCluster

log = logging.getLogger(__name__)

# One INSERT per chunk keeps each transaction and its memory modest at a million rows.
CHUNK_ROWS = 250_000


@dataclass(frozen=True)
class Database:
    """The benchmark's database: owner URL, the cluster running it, the server version."""

    url: str
    cluster: LocalCluster
    server_version: str


@contextlib.contextmanager
def throwaway_database() -> Iterator[Database]:
    """Start a fresh cluster, create and migrate the database, destroy it all afterwards."""
    cluster = LocalCluster()
    try:
        cluster.start()
        url = cluster.ensure_database()
        migrate(url)
        with connect(url, autocommit=True, app="ecm-bench") as conn:
            row = conn.execute(queries.SERVER_VERSION).fetchone()
        yield Database(url=url, cluster=cluster, server_version=str(row[0]) if row else "?")
    finally:
        cluster.destroy()


def db_now(conn: psycopg.Connection) -> datetime:
    """The server's clock, which every generated timestamp is anchored to."""
    row = conn.execute(queries.DB_NOW).fetchone()
    assert row is not None
    value: datetime = row[0]
    return value


def reset(conn: psycopg.Connection) -> None:
    """Empty both tables."""
    conn.execute(queries.TRUNCATE)


def add_calls(
    conn: psycopg.Connection,
    n: int,
    *,
    towers: int,
    end: datetime,
    span_s: float,
    regions: int = 1,
) -> None:
    """Insert n skewed synthetic calls with timestamps in (end - span_s, end]."""
    conn.execute(queries.UPSERT_TOWERS, {"towers": towers, "regions": regions})
    left = n
    while left > 0:
        chunk = min(left, CHUNK_ROWS)
        conn.execute(queries.POPULATE, {"n": chunk, "towers": towers, "end": end, "span_s": span_s})
        left -= chunk


def vacuum(conn: psycopg.Connection) -> None:
    """Set the visibility map and statistics, as autovacuum would on a live table."""
    conn.execute(queries.VACUUM_ANALYZE)
