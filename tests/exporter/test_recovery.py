"""The database is down at start-up or goes away: keep serving, say so, recover alone."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import psycopg
import pytest

from db.migrate import migrate
from exporter.assess import Thresholds
from exporter.config import parse_window
from exporter.refresh import RefreshJob
from stack.pgcluster import ClusterError, LocalCluster, free_port
from tests.exporter.helpers import Call, by_tower, total, value, write_calls
from tests.fixtures.clock import FakeClock
from tests.fixtures.tools import in_ci

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def own_cluster() -> Iterator[LocalCluster]:
    """A cluster of this test's own (not started), so stopping it disturbs no other test."""
    try:
        cluster = LocalCluster(port=free_port())
    except ClusterError as exc:
        if in_ci():
            pytest.fail(str(exc), pytrace=False)
        pytest.skip(str(exc))
    yield cluster
    cluster.destroy()


def warnings_from_exporter(caplog: pytest.LogCaptureFixture) -> list[str]:
    """WARNING lines the exporter logged."""
    return [r.getMessage() for r in caplog.records
            if r.name.startswith("exporter") and r.levelno == logging.WARNING]  # fmt: skip


def test_down_at_start_then_restart_mid_run(
    own_cluster: LocalCluster, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    reader_url = own_cluster.url("ecm", "ecm_test_reader")
    windows = [parse_window("5m"), parse_window("1h")]
    job = RefreshJob(reader_url, windows, Thresholds(), 15.0, clock=clock)
    try:
        # Down at start-up: serving, database_up 0, no window values, one warning.
        assert not job.refresh()
        assert not job.refresh()
        text = job.exposition().decode()
        assert value(text, "ecm_database_up") == 0
        assert value(text, "ecm_window_calls", window="5m") is None
        assert len(warnings_from_exporter(caplog)) == 1

        own_cluster.start()
        with psycopg.connect(own_cluster.url("postgres"), autocommit=True) as conn:
            conn.execute("CREATE DATABASE ecm")
            conn.execute("CREATE ROLE ecm_test_reader LOGIN")
        migrate(own_cluster.url("ecm"))
        with psycopg.connect(own_cluster.url("postgres"), autocommit=True) as conn:
            conn.execute("GRANT ecm_reader TO ecm_test_reader")
        writer = own_cluster.url("ecm")
        write_calls(writer, [Call(clock.now - 30 * i, "TOWER_1", 1000) for i in range(100)])
        assert job.refresh()  # recovers by itself: rebuild from the window
        text = job.exposition().decode()
        assert value(text, "ecm_database_up") == 1
        assert value(text, "ecm_window_calls", window="1h") == 100
        assert total(text, "ecm_calls_total") == 0
        assert value(text, "ecm_exporter_rebuilds_total", reason="start") == 1
        write_calls(writer, [Call(clock.now, "TOWER_2", 1500, "CORE_TIMEOUT")] * 20)
        assert job.refresh()
        last_ok = value(
            job.exposition().decode(), "ecm_exporter_last_refresh_success_timestamp_seconds"
        )
        assert last_ok == clock.now

        caplog.clear()
        own_cluster.stop()
        clock.advance(15)
        assert not job.refresh()
        clock.advance(15)
        assert not job.refresh()
        text = job.exposition().decode()
        assert value(text, "ecm_database_up") == 0
        assert "ecm_window_calls{" not in text and "ecm_tower_window_calls{" not in text
        assert "ecm_worst_tower_failure_ratio{" not in text
        assert total(text, "ecm_calls_total") == 20  # counters kept
        assert value(text, "ecm_exporter_last_refresh_success_timestamp_seconds") == last_ok
        assert len(warnings_from_exporter(caplog)) == 1  # one per outage, not per refresh

        own_cluster.start()
        write_calls(writer, [Call(clock.now, "TOWER_3", 700)] * 30)  # written before we reconnect
        clock.advance(15)
        assert job.refresh()
        text = job.exposition().decode()
        assert value(text, "ecm_database_up") == 1
        assert total(text, "ecm_calls_total") == 50  # nothing missed across the outage
        assert by_tower(text, "ecm_calls_total", tower="TOWER_3") == 30
        assert value(text, "ecm_window_calls", window="1h") == 150
        assert value(text, "ecm_window_failed_calls", window="5m") == 20
        assert value(text, "ecm_exporter_rebuilds_total", reason="recovery") == 1
        assert value(text, "ecm_exporter_rebuilds_total", reason="start") == 1
        assert value(text, "ecm_exporter_last_refresh_success_timestamp_seconds") == clock.now
    finally:
        job.close()


def test_failures_are_counted_per_query(clock: FakeClock) -> None:
    url = f"postgresql://ecm@127.0.0.1:{free_port()}/ecm"
    job = RefreshJob(url, [parse_window("5m")], Thresholds(), 15.0, clock=clock)
    for _ in range(3):
        assert not job.refresh()
    text = job.exposition().decode()
    assert value(text, "ecm_exporter_query_failures_total", query="rebuild") == 3
    assert value(text, "ecm_exporter_query_failures_total", query="new_calls") == 0
    assert value(text, "ecm_exporter_query_last_success_timestamp_seconds", query="rebuild") is None
    assert value(text, "ecm_exporter_last_refresh_success_timestamp_seconds") is None
