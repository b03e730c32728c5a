"""A refresh that waits on the database: unhealthy while it hangs, published when it finishes;
--once gives up after its statement timeout with exit status 3."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest

from ecm_common.errors import DatabaseUnavailable
from exporter.assess import Thresholds
from exporter.config import parse_window
from exporter.refresh import RefreshJob, compute_once
from tests.exporter.helpers import Call, by_tower, value, write_calls
from tests.fixtures.clock import FakeClock
from tests.fixtures.postgres import EcmDb

pytestmark = pytest.mark.integration

DEADLINE_S = 20

WAITING = """SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
              WHERE NOT l.granted AND a.application_name = %s"""


@contextmanager
def table_locked(url: str) -> Iterator[None]:
    """emergency_calls held ACCESS EXCLUSIVE (as a migration or TRUNCATE would) until exit."""
    with psycopg.connect(url) as conn:
        conn.execute("LOCK TABLE emergency_calls IN ACCESS EXCLUSIVE MODE")
        try:
            yield
        finally:
            conn.rollback()


def wait_until_blocked(url: str, app: str) -> None:
    """Readiness, not time logic: poll until a session of app waits for a lock."""
    deadline = time.monotonic() + DEADLINE_S
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(WAITING, (app,)).fetchone()
            if row and row[0]:
                return
            time.sleep(0.02)
    pytest.fail(f"no {app} session waited for the lock within {DEADLINE_S} s")


def test_hung_refresh_is_unhealthy_and_slow_one_is_published(
    test_db: EcmDb, job: RefreshJob, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    write_calls(test_db.writer_url, [Call(clock.now - 5, "TOWER_1", 900)] * 30)
    assert job.refresh()
    results: list[bool] = []
    with table_locked(test_db.url):
        refresh = threading.Thread(target=lambda: results.append(job.refresh()))
        refresh.start()
        wait_until_blocked(test_db.url, "ecm-exporter")
        clock.advance(50)  # longer than three 15 s intervals: hung, and the data are stale
        text = job.exposition().decode()
        assert value(text, "ecm_database_up") == 0
        assert not job.database_up
        assert "ecm_window_calls{" not in text
        assert by_tower(text, "ecm_calls_total", tower="TOWER_1") == 0  # counters stay
    # The lock is gone: the refresh finishes, 50 s after it started, and is published.
    refresh.join(DEADLINE_S)
    assert results == [True]
    text = job.exposition().decode()
    assert value(text, "ecm_database_up") == 1
    assert value(text, "ecm_window_calls", window="5m") == 30
    assert value(text, "ecm_exporter_refresh_duration_seconds") == 50
    assert value(text, "ecm_exporter_refresh_overruns_total") == 1
    # The data are as of the snapshot taken once the lock was granted, not when the refresh began.
    assert value(text, "ecm_exporter_last_refresh_success_timestamp_seconds") == clock.now
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("running for more than 45 s" in m for m in messages), messages
    assert any("longer than the 15 s interval (last: 50.0 s)" in m for m in messages), messages
    clock.advance(44)  # fresh until three intervals after the read
    assert value(job.exposition().decode(), "ecm_window_calls", window="5m") == 30


def test_once_gives_up_after_its_statement_timeout(test_db: EcmDb) -> None:
    write_calls(test_db.writer_url, [Call(time.time() - 5, "TOWER_1", 900)])
    with table_locked(test_db.url), pytest.raises(DatabaseUnavailable) as err:
        compute_once(test_db.reader_url, parse_window("5m"), Thresholds(), timeout_s=0.5)
    assert err.value.exit_code == 3
    assert str(err.value) == (
        "the database did not answer within 0.5 s (statement timeout; is emergency_calls locked?)"
    )
    # Unlocked, the same report answers.
    view = compute_once(test_db.reader_url, parse_window("5m"), Thresholds(), timeout_s=0.5)
    assert view.result.calls == 1
