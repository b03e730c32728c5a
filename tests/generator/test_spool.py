"""The spool's on-disk format: a damaged record costs that record only, and its bytes are kept."""

from __future__ import annotations

import os
import resource
import struct
import zlib
from pathlib import Path

import pytest

from ecm_common.errors import ConfigError
from generator.batch import RECORD_DTYPE
from generator.spool import BadRange, DeadLetters, Record, Spool, SpoolError
from tests.generator.helpers import calls, flip, spool_of, uuids


def test_intact_records_read_back_in_order(tmp_path: Path) -> None:
    batches = [calls(50, seed=i) for i in range(3)]
    spool, segment, _ = spool_of(tmp_path, *batches)
    got = list(spool.read(segment))
    assert all(isinstance(r, Record) for r in got)
    assert [uuids(r.batch) for r in got if isinstance(r, Record)] == [uuids(b) for b in batches]
    assert spool.rows_waiting() == 150


@pytest.mark.parametrize("where", ["payload", "row count", "magic"])
def test_one_damaged_record_costs_that_record_only(tmp_path: Path, where: str) -> None:
    batches = [calls(40, seed=i) for i in range(4)]
    spool, segment, starts = spool_of(tmp_path, *batches)
    offset = {"payload": 24 + 100, "row count": 4, "magic": 0}[where]
    flip(segment, starts[1] + offset)
    got = list(spool.read(segment))
    good = [uuids(r.batch) for r in got if isinstance(r, Record)]
    assert good == [uuids(batches[0]), uuids(batches[2]), uuids(batches[3])]
    [bad] = [r for r in got if isinstance(r, BadRange)]
    assert (bad.start, bad.end) == (starts[1], starts[2])
    assert not bad.torn
    assert bad.rows == (40 if where == "payload" else None)
    assert spool.rows_waiting() == 120


def test_quarantine_keeps_the_damaged_bytes(tmp_path: Path) -> None:
    spool, segment, starts = spool_of(tmp_path, calls(30, 1), calls(30, 2), calls(30, 3))
    flip(segment, starts[1] + 50)
    damaged = segment.read_bytes()[starts[1] : starts[2]]
    [bad] = [r for r in spool.read(segment) if isinstance(r, BadRange)]
    target = spool.quarantine(segment, bad)
    assert target.parent == tmp_path / "spool" / "quarantine"
    assert target.read_bytes() == damaged
    spool.remove(segment)
    assert not spool.pending() and target.exists()


def test_record_cut_short_at_the_end_is_torn_not_corrupt(tmp_path: Path) -> None:
    spool, segment, starts = spool_of(tmp_path, calls(30, 1), calls(30, 2))
    os.truncate(segment, starts[1] + 70)
    got = list(spool.read(segment))
    assert isinstance(got[0], Record)
    assert got[1] == BadRange(starts[1], starts[1] + 70, 30, torn=True)


def test_records_of_the_earlier_format_are_still_read(tmp_path: Path) -> None:
    b = calls(20, 5)
    payload = b.to_records().tobytes()
    header = struct.pack("<4sIIII", b"ECS1", 20, b.n_towers, len(payload), zlib.crc32(payload))
    (tmp_path / "spool").mkdir()
    segment = tmp_path / "spool" / "000000000001.spool"
    segment.write_bytes(header + payload)
    [rec] = list(Spool(tmp_path / "spool").read(segment))
    assert isinstance(rec, Record) and uuids(rec.batch) == uuids(b)
    assert RECORD_DTYPE.itemsize * 20 == len(payload)


def test_reading_resumes_after_the_last_stored_record(tmp_path: Path) -> None:
    batches = [calls(10, seed=i) for i in range(3)]
    spool, segment, starts = spool_of(tmp_path, *batches)
    got = list(spool.read(segment, starts[2]))
    assert [uuids(r.batch) for r in got if isinstance(r, Record)] == [uuids(batches[2])]


def test_spool_under_a_regular_file_is_refused_at_start(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match=r"spool directory .*file/spool cannot be used"):
        Spool(tmp_path / "file" / "spool")
    with pytest.raises(ConfigError, match="dead-letter file"):
        DeadLetters(tmp_path / "file" / "dl.jsonl")


def test_failed_append_leaves_no_half_record(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.append(calls(10, 1))
    spool.append(calls(10, 2))
    [segment] = spool.segments()
    size = segment.stat().st_size
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    # The file size limit stands in for a full disk: the next record fits only partly.
    resource.setrlimit(resource.RLIMIT_FSIZE, (size + 100, hard))
    try:
        with pytest.raises(SpoolError, match=r"cannot write the spool \(.*000000000001.spool\)"):
            spool.append(calls(10, 3))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert segment.stat().st_size == size
    assert all(isinstance(r, Record) for r in spool.read(segment))
    assert spool.rows_waiting() == 20
