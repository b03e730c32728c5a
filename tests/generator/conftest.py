"""Fixtures of the generator tests: a private PostgreSQL cluster that tests may stop and start."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from db.migrate import migrate
from stack.pgcluster import LocalCluster
from tests.fixtures.postgres import start_cluster


@pytest.fixture
def own_cluster() -> Iterator[LocalCluster]:
    """A cluster of this test's own (database 'ecm', migrated), so restarts disturb no one else."""
    cluster = start_cluster()
    try:
        with psycopg.connect(cluster.url("postgres"), autocommit=True) as conn:
            conn.execute("CREATE DATABASE ecm")
        migrate(cluster.url())
        yield cluster
    finally:
        cluster.destroy()
