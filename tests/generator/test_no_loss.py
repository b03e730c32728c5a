"""Nothing accepted is lost silently: the write path as a library, against the real database."""

from __future__ import annotations

import json
import shutil
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import psycopg
import pytest

from ecm_common.errors import ConfigError
from generator.backfill import backfill
from generator.batch import CallBatch
from generator.metrics import GeneratorMetrics
from generator.outcome import CallsLeftInSpool, CallsNotStored, WritesRefused, check_outcome
from generator.spool import Spool
from generator.writer import DbWriter, copy_batch
from stack.pgcluster import free_port
from tests.fixtures.postgres import EcmDb
from tests.generator.helpers import (
    calls,
    count_calls,
    flip,
    pipeline,
    query,
    spool_of,
    uuids,
    wait_until,
)

pytestmark = pytest.mark.integration


def stored_uuids(url: str) -> set[bytes]:
    return {r[0].bytes for r in query(url, "SELECT call_uuid FROM emergency_calls")}


def sample(metrics: GeneratorMetrics, name: str) -> float:
    value = metrics.registry.get_sample_value(name)
    assert value is not None, name
    return value


def test_damaged_spool_record_costs_that_record_only(test_db: EcmDb, tmp_path: Path) -> None:
    batches = [calls(200, seed=i) for i in range(3)]
    _, segment, starts = spool_of(tmp_path, *batches)
    flip(segment, starts[1] + 500)
    damaged = segment.read_bytes()[starts[1] : starts[2]]
    metrics = GeneratorMetrics()
    p = pipeline(test_db.writer_url, tmp_path, metrics=metrics)
    p.start()
    counts = p.close()
    assert stored_uuids(test_db.url) == set(uuids(batches[0]) + uuids(batches[2]))
    assert (counts.written, counts.corrupt, counts.in_spool) == (400, 1, 0)
    assert sample(metrics, "ecm_generator_spool_corrupt_records_total") == 1
    [kept] = (tmp_path / "spool" / "quarantine").iterdir()
    assert kept.read_bytes() == damaged
    assert not Spool(tmp_path / "spool").pending()
    with pytest.raises(CallsNotStored, match=r"1 damaged spool record.*spool/quarantine") as err:
        check_outcome(counts, tmp_path / "spool")
    assert err.value.exit_code == 5


def test_rows_found_already_stored_are_not_counted_as_written(
    test_db: EcmDb, tmp_path: Path
) -> None:
    old, new = calls(150, seed=1), calls(70, seed=2)
    with psycopg.connect(test_db.writer_url) as conn:
        copy_batch(conn, old)
    spool_of(tmp_path, old, new)
    metrics = GeneratorMetrics()
    p = pipeline(test_db.writer_url, tmp_path, metrics=metrics)
    p.start()
    counts = p.close()
    assert (counts.written, counts.already_stored) == (70, 150)
    assert sample(metrics, "ecm_generator_calls_written_total") == 70
    assert sample(metrics, "ecm_generator_calls_already_stored_total") == 150
    assert count_calls(test_db.url) == 220


class BrokenWriter(DbWriter):
    """A real writer with a bug: every write raises an unexpected exception."""

    def write(self, batch: CallBatch, *, idempotent: bool) -> int:
        raise RuntimeError("bug in the writer")


def test_writer_thread_failure_stops_accepting_and_counts_the_loss(
    test_db: EcmDb, tmp_path: Path
) -> None:
    p = pipeline(test_db.writer_url, tmp_path, BrokenWriter(test_db.writer_url))
    p.start()
    assert p.submit(calls(100, seed=1))
    wait_until(lambda: not p.accepting(), "the pipeline to stop accepting calls")
    assert not p.submit(calls(50, seed=2))
    counts = p.close()
    assert (counts.generated, counts.lost, counts.written, counts.spooled) == (100, 100, 0, 0)
    assert counts.failure is not None and "RuntimeError: bug in the writer" in counts.failure
    with pytest.raises(CallsNotStored, match=r"100 call.s. were lost"):
        check_outcome(counts, tmp_path / "spool")


def test_absurd_flush_interval_still_stores_every_call(test_db: EcmDb, tmp_path: Path) -> None:
    p = pipeline(test_db.writer_url, tmp_path, flush_interval=1e10, batch_size=1000)
    p.start()
    assert p.submit(calls(100))
    counts = p.close()
    assert (counts.written, counts.lost, counts.failure) == (100, 0, None)
    assert count_calls(test_db.url) == 100


def test_missing_grant_stops_the_run_and_keeps_the_calls(test_db: EcmDb, tmp_path: Path) -> None:
    with psycopg.connect(test_db.url, autocommit=True) as conn:
        conn.execute("REVOKE INSERT ON emergency_calls FROM ecm_writer")
    p = pipeline(test_db.writer_url, tmp_path)
    p.start()
    assert p.submit(calls(200, seed=1))
    wait_until(lambda: not p.accepting(), "the pipeline to stop after the refusal")
    counts = p.close()
    assert counts.refusal is not None
    assert "permission denied" in counts.refusal and "42501" in counts.refusal
    assert (counts.retries, counts.spooled, counts.in_spool, counts.lost) == (0, 200, 200, 0)
    with pytest.raises(WritesRefused, match="permission denied") as err:
        check_outcome(counts, tmp_path / "spool")
    assert err.value.exit_code == 6

    with psycopg.connect(test_db.url, autocommit=True) as conn:
        conn.execute("GRANT INSERT ON emergency_calls TO ecm_writer")
    again = pipeline(test_db.writer_url, tmp_path)
    again.start()
    assert again.close().written == 200
    assert count_calls(test_db.url) == 200


def test_other_unique_violation_costs_the_clashing_row_only(test_db: EcmDb, tmp_path: Path) -> None:
    batch = calls(300, seed=3)
    clash = batch.take(slice(117, 118))
    clash.uuid = np.full_like(clash.uuid, 7)
    with psycopg.connect(test_db.url, autocommit=True) as conn:
        conn.execute("CREATE UNIQUE INDEX one_call_per_caller ON emergency_calls (caller_id)")
        copy_batch(conn, clash)
    p = pipeline(test_db.writer_url, tmp_path)
    p.start()
    p.submit(batch)
    counts = p.close()
    assert (counts.written, counts.dead_lettered) == (299, 1)
    assert (counts.spooled, counts.retries, counts.in_spool) == (0, 0, 0)
    [line] = (tmp_path / "dl.jsonl").read_text().splitlines()
    doc = json.loads(line)
    assert "one_call_per_caller" in doc["reason"] and "23505" in doc["reason"]
    assert doc["call"]["call_uuid"] == str(uuid.UUID(bytes=uuids(batch)[117]))
    assert stored_uuids(test_db.url) == set(uuids(batch)) - {uuids(batch)[117]} | {bytes([7] * 16)}
    check_outcome(counts, tmp_path / "spool")  # refused rows are accounted for, not lost


def test_rows_a_constraint_refuses_are_dead_lettered_the_rest_stored(
    test_db: EcmDb, tmp_path: Path
) -> None:
    batch = calls(400, seed=4)
    on_tower_3 = int((batch.tower == 2).sum())
    assert 0 < on_tower_3 < 400
    with psycopg.connect(test_db.url, autocommit=True) as conn:
        conn.execute(
            "ALTER TABLE emergency_calls"
            " ADD CONSTRAINT tower_3_closed CHECK (tower_id <> 'TOWER_3')"
        )
    p = pipeline(test_db.writer_url, tmp_path)
    p.start()
    p.submit(batch)
    counts = p.close()
    assert (counts.written, counts.dead_lettered) == (400 - on_tower_3, on_tower_3)
    docs = [json.loads(x) for x in (tmp_path / "dl.jsonl").read_text().splitlines()]
    assert {d["call"]["tower_id"] for d in docs} == {"TOWER_3"}
    assert all("tower_3_closed" in d["reason"] and "23514" in d["reason"] for d in docs)
    assert query(test_db.url, "SELECT count(*) FROM emergency_calls") == [(400 - on_tower_3,)]


def test_a_constraint_that_refuses_most_rows_stops_the_run(test_db: EcmDb, tmp_path: Path) -> None:
    with psycopg.connect(test_db.url, autocommit=True) as conn:
        conn.execute("ALTER TABLE emergency_calls ADD CONSTRAINT nothing CHECK (false) NOT VALID")
    p = pipeline(test_db.writer_url, tmp_path)
    p.start()
    p.submit(calls(500))
    counts = p.close()
    assert counts.refusal is not None and "refused more than 64 of 500 rows" in counts.refusal
    assert "nothing" in counts.refusal and "23514" in counts.refusal
    assert (counts.written, counts.dead_lettered, counts.in_spool) == (0, 0, 500)
    assert count_calls(test_db.url) == 0


def test_hung_database_times_out_and_a_stop_keeps_every_call(
    test_db: EcmDb, tmp_path: Path
) -> None:
    writer = DbWriter(test_db.writer_url, timeout=0.3)
    p = pipeline(test_db.writer_url, tmp_path, writer, max_retries=1, batch_size=100)
    batches = [calls(100, seed=i) for i in range(3)]
    with psycopg.connect(test_db.url) as locker:
        locker.execute("LOCK TABLE emergency_calls IN ACCESS EXCLUSIVE MODE")
        p.start()
        for b in batches:
            assert p.submit(b)
        closer = threading.Thread(target=p.close)
        closer.start()
        closer.join(timeout=60)
        hung = closer.is_alive()
        locker.rollback()
    closer.join()
    assert not hung, "close() waited for the lock instead of timing out"
    counts = p.counts
    assert (counts.written, counts.spooled, counts.in_spool, counts.lost) == (0, 300, 300, 0)
    with pytest.raises(CallsLeftInSpool, match=r"300 call.s. wait in the spool") as err:
        check_outcome(counts, tmp_path / "spool")
    assert err.value.exit_code == 4

    again = pipeline(test_db.writer_url, tmp_path)
    again.start()
    assert again.close().written == 300
    assert stored_uuids(test_db.url) == {u for b in batches for u in uuids(b)}


def test_database_down_at_the_end_leaves_calls_in_the_spool(tmp_path: Path) -> None:
    down = f"postgresql://ecm@127.0.0.1:{free_port()}/ecm"
    p = pipeline(down, tmp_path, max_retries=0)
    p.start()
    assert p.submit(calls(120))
    counts = p.close()
    assert (counts.generated, counts.spooled, counts.in_spool, counts.lost) == (120, 120, 120, 0)
    assert Spool(tmp_path / "spool").rows_waiting() == 120


def test_dead_letter_failure_stops_accepting_and_counts_the_loss(
    test_db: EcmDb, tmp_path: Path
) -> None:
    p = pipeline(test_db.writer_url, tmp_path)
    (tmp_path / "dl.jsonl").mkdir()  # the file cannot be opened for appending any more
    p.start()
    b = calls(50)
    b.status[3] = 9
    assert p.submit(b)
    assert not p.accepting()
    counts = p.close()
    assert (counts.written, counts.lost, counts.dead_lettered) == (49, 1, 0)
    assert counts.failure is not None and "dead-letter file" in counts.failure
    shutil.rmtree(tmp_path / "dl.jsonl")


def test_backfill_refuses_a_range_that_ends_in_the_future(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    with pytest.raises(ConfigError, match="in the future"):
        backfill(
            f"postgresql://ecm@127.0.0.1:{free_port()}/ecm",
            now - timedelta(hours=1),
            now + timedelta(hours=1),
            rate=1.0,
            spool_dir=str(tmp_path / "spool"),
        )


def test_missing_temp_grant_is_reported_not_spooled_forever(test_db: EcmDb, tmp_path: Path) -> None:
    spool_of(tmp_path, calls(80))  # a replay takes the idempotent path through a temp table
    with psycopg.connect(test_db.url, autocommit=True) as conn:
        for role in ("PUBLIC", "ecm_writer"):
            conn.execute(f"REVOKE TEMPORARY ON DATABASE {test_db.name} FROM {role}")
    p = pipeline(test_db.writer_url, tmp_path)
    p.start()
    counts = p.close()
    assert counts.refusal is not None
    assert "temporary tables" in counts.refusal and "42501" in counts.refusal
    assert (counts.retries, counts.in_spool, counts.written) == (0, 80, 0)


class LostAfterFirstWrite(DbWriter):
    """A real writer whose connection is lost for good after its first write."""

    writes = 0

    def write(self, batch: CallBatch, *, idempotent: bool) -> int:
        self.writes += 1
        if self.writes > 1:
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        return super().write(batch, idempotent=idempotent)


def test_calls_left_in_spool_exclude_those_replayed_before_an_outage(
    test_db: EcmDb, tmp_path: Path
) -> None:
    first, second = calls(50, seed=1), calls(70, seed=2)
    spool_of(tmp_path, first, second)
    writer = LostAfterFirstWrite(test_db.writer_url)
    p = pipeline(test_db.writer_url, tmp_path, writer, max_retries=0)
    p.start()
    counts = p.close()
    assert (counts.written, counts.in_spool) == (50, 70)
    assert stored_uuids(test_db.url) == set(uuids(first))
