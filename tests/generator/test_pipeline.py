"""The write path as a library, against the real database: dead letters, lost acks, backpressure."""

from __future__ import annotations

import json
import subprocess
import threading
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from prometheus_client import generate_latest

from generator.backfill import backfill
from generator.batch import CallBatch
from generator.metrics import GeneratorMetrics
from generator.writer import DbWriter, copy_batch, copy_batch_idempotent
from tests.fixtures.postgres import EcmDb
from tests.fixtures.tools import require_binary
from tests.generator.helpers import PAST, calls, count_calls, pipeline, query, wait_until

pytestmark = pytest.mark.integration


def test_copy_batch_then_idempotent_retry_adds_nothing(test_db: EcmDb) -> None:
    b = calls(500)
    with psycopg.connect(test_db.writer_url) as conn:
        assert copy_batch(conn, b) == 500
        assert copy_batch_idempotent(conn, b) == 0
        assert copy_batch_idempotent(conn, CallBatch.concat([b, calls(20, seed=2)])) == 20
    assert count_calls(test_db.url) == 520


def test_invalid_calls_go_to_dead_letter_file_not_database(test_db: EcmDb, tmp_path: Path) -> None:
    b = calls(100)
    b.status[7] = 9
    p = pipeline(test_db.writer_url, tmp_path)
    p.start()
    p.submit(b)
    counts = p.close()
    assert (counts.generated, counts.written, counts.dead_lettered) == (100, 99, 1)
    assert count_calls(test_db.url) == 99
    [line] = (tmp_path / "dl.jsonl").read_text().splitlines()
    doc = json.loads(line)
    assert doc["reason"] == "unknown status"
    assert query(
        test_db.url,
        "SELECT count(*) FROM emergency_calls WHERE call_uuid = %s",
        (doc["call"]["call_uuid"],),
    ) == [(0,)]


class AckLostOnce(DbWriter):
    """A real writer whose first successful commit is reported as a lost connection."""

    lost = False

    def write(self, batch: CallBatch, *, idempotent: bool) -> int:
        n = super().write(batch, idempotent=idempotent)
        if not self.lost:
            self.lost = True
            raise psycopg.OperationalError("server closed the connection after commit")
        return n


def test_failure_after_commit_is_retried_without_doubles(test_db: EcmDb, tmp_path: Path) -> None:
    p = pipeline(test_db.writer_url, tmp_path, AckLostOnce(test_db.writer_url))
    p.start()
    p.submit(calls(300))
    wait_until(lambda: p.counts.already_stored == 300, "the retried batch to be stored")
    counts = p.close()
    # The retry cannot know its earlier attempt committed: the rows are found, not written.
    assert counts.retries == 1 and counts.spooled == 0
    assert (counts.written, counts.already_stored) == (0, 300)
    assert count_calls(test_db.url) == 300
    assert query(test_db.url, "SELECT count(DISTINCT call_uuid) FROM emergency_calls") == [(300,)]


def test_slow_database_blocks_the_producer(test_db: EcmDb, tmp_path: Path) -> None:
    p = pipeline(test_db.writer_url, tmp_path, queue_size=100, batch_size=50)
    stop = threading.Event()
    batches = [calls(50, seed=i) for i in range(10)]
    done: list[bool] = []
    with psycopg.connect(test_db.url) as locker:
        locker.execute("LOCK TABLE emergency_calls IN ACCESS EXCLUSIVE MODE")
        p.start()
        producer = threading.Thread(target=lambda: done.extend(p.submit(b, stop) for b in batches))
        producer.start()
        wait_until(lambda: p.queue.full(), "the queue to fill while the table is locked")
        assert producer.is_alive()  # held back, not buffering without bound
        assert p.queue.rows <= 100
        assert len(done) < 10
        locker.rollback()
    producer.join(timeout=30)
    counts = p.close()
    assert done == [True] * 10 and counts.written == 500 and counts.retries == 0
    assert count_calls(test_db.url) == 500


def test_backfill_api(test_db: EcmDb, tmp_path: Path) -> None:
    end = PAST + timedelta(minutes=10)
    counts = backfill(
        test_db.writer_url,
        PAST,
        end,
        rate=50.0,
        seed=4,
        spool_dir=str(tmp_path / "spool"),
        dead_letter_file=str(tmp_path / "dl"),
    )
    sql = 'SELECT count(*), min("timestamp"), max("timestamp") FROM emergency_calls'
    [(n, lo, hi)] = query(test_db.url, sql)
    assert counts.written == counts.generated == n
    assert 27_000 < n < 33_000  # 600 s at 50/s
    assert lo >= PAST and hi < end


def test_self_metrics_are_valid_exposition() -> None:
    promtool = require_binary("promtool", "prometheus")
    m = GeneratorMetrics()
    m.generated.inc(5)
    text = generate_latest(m.registry)
    for name in (
        "ecm_generator_calls_generated_total",
        "ecm_generator_calls_written_total",
        "ecm_generator_write_retries_total",
        "ecm_generator_calls_spooled_total",
        "ecm_generator_calls_dead_lettered_total",
        "ecm_generator_calls_already_stored_total",
        "ecm_generator_calls_lost_total",
        "ecm_generator_spool_corrupt_records_total",
        "ecm_generator_queue_depth",
        "ecm_generator_batch_write_duration_seconds_bucket",
        "ecm_generator_last_write_timestamp_seconds",
    ):
        assert name.encode() in text
    proc = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
