"""Fixtures of the generator tests: a private PostgreSQL cluster that tests may stop and start."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from db.migrate import migrate
from ecm_common.pgcluster import ClusterError, LocalCluster
from tests.fixtures.tools import in_ci


@pytest.fixture
def own_cluster() -> Iterator[LocalCluster]:
    """A cluster of this test's own (database 'ecm', migrated), so restarts disturb no one else."""
    try:
        cluster = LocalCluster()
        cluster.start()
    except ClusterError as exc:
        if in_ci():
            pytest.fail(f"cannot start PostgreSQL: {exc}", pytrace=False)
        pytest.skip(f"cannot start PostgreSQL: {exc}")
    try:
        with psycopg.connect(cluster.url("postgres"), autocommit=True) as conn:
            conn.execute("CREATE DATABASE ecm")
        migrate(cluster.url())
        yield cluster
    finally:
        cluster.destroy()
