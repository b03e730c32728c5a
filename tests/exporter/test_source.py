"""The rows change under the exporter: another database behind the same URL, rows deleted or
truncated. Windows follow the database; counters never count a row twice."""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import pytest

from exporter.assess import Thresholds
from exporter.config import parse_window
from exporter.refresh import RefreshJob, compute_once
from tests.exporter.helpers import Call, by_tower, total, value, write_calls
from tests.fixtures.clock import FakeClock
from tests.fixtures.postgres import TEMPLATE, EcmDb, PgServer

pytestmark = pytest.mark.integration

DEADLINE_S = 20
DELETED = "SELECT pg_stat_get_tuples_deleted('emergency_calls'::regclass)"


def calls(now: float, tower: str, n: int, failed_every: int = 0) -> list[Call]:
    """n recent calls on one tower."""
    return [
        Call(now - 10 - i, tower, 600 + 7 * i,
             "PSAP_BUSY" if failed_every and i % failed_every == 0 else None)
        for i in range(n)
    ]  # fmt: skip


@pytest.fixture
def other_db(pg_server: PgServer, test_db: EcmDb) -> Iterator[str]:
    """A second migrated database on the same cluster; yields its name (dropped afterwards)."""
    name = f"{test_db.name}_other"
    with pg_server.admin() as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
    yield name
    with pg_server.admin() as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"DROP DATABASE IF EXISTS {name}_old WITH (FORCE)")


def wait_for_statistics(url: str, deleted: int) -> None:
    """Readiness: PostgreSQL publishes a session's DELETE counts within seconds (at the latest
    when the session ends); wait until it has."""
    deadline = time.monotonic() + DEADLINE_S
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(DELETED).fetchone()
            if row and row[0] >= deleted:
                return
            time.sleep(0.02)
    pytest.fail(f"statistics did not show {deleted} deleted rows within {DEADLINE_S} s")


def swap(pg_server: PgServer, current: str, replacement: str) -> None:
    """Put replacement where current was (as a restore under the same name does)."""
    with pg_server.admin() as conn:
        for db in (current, replacement):
            conn.execute(
                "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity WHERE datname = %s",
                (db,),
            )
        conn.execute(f"ALTER DATABASE {current} RENAME TO {replacement}_old")
        conn.execute(f"ALTER DATABASE {replacement} RENAME TO {current}")


def test_another_database_behind_the_url_is_rebuilt_not_counted(
    pg_server: PgServer, test_db: EcmDb, other_db: str, job: RefreshJob, clock: FakeClock
) -> None:
    write_calls(test_db.writer_url, calls(clock.now, "TOWER_A", 30))
    assert job.refresh()
    write_calls(test_db.writer_url, calls(clock.now, "TOWER_A", 20, failed_every=2))
    assert job.refresh()
    assert total(job.exposition().decode(), "ecm_calls_total") == 20
    # The other database holds its own calls, committed after the exporter's last snapshot,
    # among them a copy of this database's rows (re-inserted: new transaction ids).
    other_writer = pg_server.url(other_db, "ecm_test_writer")
    write_calls(other_writer, calls(clock.now, "TOWER_B", 70, failed_every=7))
    write_calls(other_writer, calls(clock.now, "TOWER_A", 50))
    swap(pg_server, test_db.name, other_db)

    clock.advance(15)
    assert not job.refresh()  # the connection was terminated by the swap
    clock.advance(15)
    assert job.refresh()
    text = job.exposition().decode()
    assert value(text, "ecm_window_calls", window="5m") == 120  # the other database's rows
    assert by_tower(text, "ecm_tower_window_calls", window="5m", tower="TOWER_B") == 70
    assert value(text, "ecm_window_failed_calls", window="5m") == 10
    # Its calls were not stored since the exporter started: counters do not jump.
    assert total(text, "ecm_calls_total") == 20
    assert value(text, "ecm_exporter_rebuilds_total", reason="database_changed") == 1
    write_calls(test_db.writer_url, calls(clock.now, "TOWER_B", 5))  # same URL, new database
    clock.advance(15)
    assert job.refresh()
    text = job.exposition().decode()
    assert total(text, "ecm_calls_total") == 25
    assert by_tower(text, "ecm_calls_total", tower="TOWER_B") == 5
    assert value(text, "ecm_window_calls", window="5m") == 125


def test_deleted_and_truncated_rows_leave_the_windows(
    test_db: EcmDb, job: RefreshJob, clock: FakeClock
) -> None:
    write_calls(test_db.writer_url, calls(clock.now, "TOWER_1", 100, failed_every=5))
    assert job.refresh()
    write_calls(test_db.writer_url, calls(clock.now, "TOWER_2", 20))
    assert job.refresh()
    with psycopg.connect(test_db.url) as conn:  # an operator removes rows by hand
        conn.execute("DELETE FROM emergency_calls WHERE tower_id = 'TOWER_1' AND latency_ms < 810")
        conn.commit()
    wait_for_statistics(test_db.url, 30)
    clock.advance(15)
    assert job.refresh()
    text = job.exposition().decode()
    assert value(text, "ecm_window_calls", window="5m") == 90
    assert by_tower(text, "ecm_tower_window_calls", window="5m", tower="TOWER_1") == 70
    once = compute_once(test_db.reader_url, parse_window("5m"), Thresholds(), clock)
    assert (once.result.calls, once.result.failed) == (90, 14)
    assert value(text, "ecm_window_failed_calls", window="5m") == 14
    assert value(text, "ecm_exporter_rebuilds_total", reason="rows_removed") == 1
    assert total(text, "ecm_calls_total") == 20  # stored calls stay counted

    with psycopg.connect(test_db.url) as conn:
        conn.execute("TRUNCATE emergency_calls")
        conn.commit()
    clock.advance(15)
    assert job.refresh()
    text = job.exposition().decode()
    assert value(text, "ecm_window_calls", window="1h") == 0
    assert value(text, "ecm_exporter_rebuilds_total", reason="rows_removed") == 2
    write_calls(test_db.writer_url, calls(clock.now, "TOWER_3", 4))
    clock.advance(15)
    assert job.refresh()
    text = job.exposition().decode()
    assert value(text, "ecm_window_calls", window="1h") == 4
    assert total(text, "ecm_calls_total") == 24
    assert value(text, "ecm_exporter_rebuilds_total", reason="rows_removed") == 2  # once each
