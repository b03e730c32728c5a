"""Counters and windows stay exact with concurrent writers that commit out of id order."""

from __future__ import annotations

import random
import threading

import psycopg
import pytest

from ecm_common.domain import REASONS
from exporter.refresh import RefreshJob
from tests.exporter.helpers import Call, copy_calls, total, value
from tests.fixtures.clock import FakeClock
from tests.fixtures.postgres import EcmDb

pytestmark = pytest.mark.integration


def batch(rng: random.Random, now: float, n: int) -> list[Call]:
    """n recent calls on four towers, a fifth of them failed."""
    return [
        Call(now - rng.uniform(0, 200), f"TOWER_{rng.randint(1, 4)}", rng.randint(200, 9000),
             rng.choice(REASONS) if rng.random() < 0.2 else None)
        for _ in range(n)
    ]  # fmt: skip


def test_out_of_order_commits_and_rollbacks(
    test_db: EcmDb, job: RefreshJob, clock: FakeClock
) -> None:
    rng = random.Random(1)
    assert job.refresh()
    with (
        psycopg.connect(test_db.writer_url) as a,
        psycopg.connect(test_db.writer_url) as b,
        psycopg.connect(test_db.writer_url) as c,
    ):
        copy_calls(a, batch(rng, clock.now, 100))  # A takes the older transaction id...
        copy_calls(b, batch(rng, clock.now, 50))
        b.commit()  # ...but B commits first
        assert job.refresh()
        text = job.exposition().decode()
        assert total(text, "ecm_calls_total") == 50
        assert value(text, "ecm_window_calls", window="10m") == 50
        copy_calls(c, batch(rng, clock.now, 30))
        c.rollback()
        a.commit()
    assert job.refresh()
    text = job.exposition().decode()
    assert total(text, "ecm_calls_total") == 150
    assert value(text, "ecm_window_calls", window="10m") == 150
    assert job.refresh()  # nothing new: nothing counted twice
    assert total(job.exposition().decode(), "ecm_calls_total") == 150


def test_counters_exact_under_concurrent_writers(
    test_db: EcmDb, job: RefreshJob, clock: FakeClock
) -> None:
    assert job.refresh()
    committed: list[Call] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        try:
            with psycopg.connect(test_db.writer_url) as conn:
                for _ in range(25):
                    calls = batch(rng, clock.now, rng.randint(1, 40))
                    copy_calls(conn, calls)
                    if rng.random() < 0.2:
                        conn.rollback()
                    else:
                        conn.commit()
                        with lock:
                            committed.extend(calls)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(seed,)) for seed in range(4)]
    for t in threads:
        t.start()
    refreshes = 0
    while any(t.is_alive() for t in threads) or refreshes < 3:
        assert job.refresh()
        refreshes += 1
    for t in threads:
        t.join()
    assert not errors
    assert job.refresh()
    text = job.exposition().decode()
    assert total(text, "ecm_calls_total") == len(committed)
    assert value(text, "ecm_window_calls", window="1h") == len(committed)
    for reason in REASONS:
        n = sum(1 for c in committed if c.reason == reason)
        assert total(text, "ecm_calls_failed_total", reason=reason) == n
        assert value(text, "ecm_window_reason_failed_calls", window="1h", reason=reason) == n
