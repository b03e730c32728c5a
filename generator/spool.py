"""Batches kept on disk while the database is away, and the dead-letter file for invalid calls.

The spool is a directory of append-only segment files. A record is a header (magic, row count,
tower count, payload length, CRC-32) and the rows in ``RECORD_DTYPE`` form; each append is
fsync'd before it counts as spooled. A torn record at the end of a segment (the process was
killed mid-append) fails its length or CRC check and is skipped: it was never acknowledged.
A segment is deleted once all its records are stored; replaying it again after a crash is harmless
because replays are idempotent.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from generator.batch import RECORD_DTYPE, CallBatch

log = logging.getLogger(__name__)

MAGIC = b"ECS1"
_HEADER = struct.Struct("<4sIIII")  # magic, rows, towers, payload bytes, crc32
SEGMENT_SUFFIX = ".spool"
# A new segment after this many bytes keeps the replay-again-after-crash window small.
SEGMENT_MAX_BYTES = 32 * 1024 * 1024


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    """Append batches in order; read them back oldest first; survives restarts."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self._fh: Any = None
        self._current: Path | None = None
        self._seq = max((self._seq_of(p) for p in self.segments()), default=0)

    @staticmethod
    def _seq_of(path: Path) -> int:
        return int(path.name.removesuffix(SEGMENT_SUFFIX))

    def segments(self) -> list[Path]:
        """Segment files, oldest first."""
        return sorted(
            (p for p in self.dir.glob("*" + SEGMENT_SUFFIX) if p.stem.isdigit()), key=self._seq_of
        )

    def pending(self) -> bool:
        """Whether any spooled batch waits to be replayed."""
        return bool(self.segments())

    def append(self, batch: CallBatch) -> None:
        """Append one batch durably (written and fsync'd before returning)."""
        if self._fh is None or self._fh.tell() >= SEGMENT_MAX_BYTES:
            self._open_new()
        payload = batch.to_records().tobytes()
        header = _HEADER.pack(MAGIC, len(batch), batch.n_towers, len(payload), zlib.crc32(payload))
        self._fh.write(header + payload)
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def _open_new(self) -> None:
        self.close()
        self._seq += 1
        self._current = self.dir / f"{self._seq:012d}{SEGMENT_SUFFIX}"
        self._fh = open(self._current, "ab")  # noqa: SIM115 - kept open across appends
        _fsync_dir(self.dir)

    def close(self) -> None:
        """Close the segment being appended to; the next append starts a new one."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None
            self._current = None

    def read(self, segment: Path) -> Iterator[CallBatch]:
        """The intact batches of a segment in order, stopping at a torn or corrupt record."""
        with open(segment, "rb") as fh:
            while True:
                head = fh.read(_HEADER.size)
                if not head:
                    return
                if len(head) < _HEADER.size:
                    log.warning("%s: torn record header at the end, ignored", segment.name)
                    return
                magic, rows, towers, size, crc = _HEADER.unpack(head)
                payload = fh.read(size)
                if magic != MAGIC or len(payload) != size or zlib.crc32(payload) != crc:
                    log.warning("%s: torn or corrupt record, rest of segment ignored", segment.name)
                    return
                rec = np.frombuffer(payload, dtype=RECORD_DTYPE, count=rows)
                yield CallBatch.from_records(rec, towers)

    def remove(self, segment: Path) -> None:
        """Delete a fully replayed segment (closing it first when it is the one appended to)."""
        if segment == self._current:
            self.close()
        segment.unlink(missing_ok=True)
        _fsync_dir(self.dir)


class DeadLetters:
    """Invalid calls as JSON lines with the reason they were refused."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, items: list[tuple[dict[str, Any], str]]) -> None:
        """Append each (call, reason) durably."""
        if not items:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        now = datetime.now(UTC).isoformat()
        with open(self.path, "a", encoding="utf-8") as fh:
            for call, reason in items:
                fh.write(json.dumps({"time": now, "reason": reason, "call": call}) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        log.warning("%d invalid call(s) written to %s", len(items), self.path)
