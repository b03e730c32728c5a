"""The spool's opaque records (the PM generator's batches) beside the calls' records: each reader
takes its own kind, checksummed, and sees the other kind as a range it cannot use."""

from __future__ import annotations

from pathlib import Path

from generator.spool import BadRange, Payload, Record, Spool
from tests.generator.helpers import calls, flip, uuids


def test_payload_records_read_back_and_calls_readers_skip_them(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.append_payload(b'[{"a":1}]', 1)
    batch = calls(20, seed=1)
    spool.append(batch)
    spool.append_payload(b"[" + b'{"b":2},' * 99 + b'{"b":2}]', 100)
    (segment,) = spool.segments()
    opaque = list(spool.read_payloads(segment))
    assert [type(r) for r in opaque] == [Payload, BadRange, Payload]
    assert [r.rows for r in opaque] == [1, 20, 100]
    assert isinstance(opaque[0], Payload) and opaque[0].data == b'[{"a":1}]'
    rows = list(spool.read(segment))
    assert [type(r) for r in rows] == [BadRange, Record, BadRange]
    assert isinstance(rows[1], Record) and uuids(rows[1].batch) == uuids(batch)
    assert spool.rows_waiting() == 121


def test_a_damaged_payload_costs_that_record_only(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    for i in range(3):
        spool.append_payload(b"x" * (100 + i), 7)
    (segment,) = spool.segments()
    starts = [r.start for r in spool.read_payloads(segment)]
    flip(segment, starts[1] + 24 + 50)
    got = list(spool.read_payloads(segment))
    assert [type(r) for r in got] == [Payload, BadRange, Payload]
    assert isinstance(got[2], Payload) and got[2].data == b"x" * 102
