"""Batches kept on disk while the database is away, and the dead-letter file for invalid calls.

The spool is a directory of append-only segment files. A record is a header (magic, row count,
tower count, payload length, payload CRC-32, header CRC-32) and the rows in ``RECORD_DTYPE``
form; each append is fsync'd before it counts as spooled. Every record is framed on its own, so a
damaged record costs that record only: the reader skips to the next intact header (found by its
magic and both checksums), and the damaged bytes are copied to ``quarantine/`` (never deleted)
before the segment is removed. A record cut short at the very end of a segment (the process was
killed mid-append, before the record was acknowledged) is "torn", not corrupt; its bytes are kept
in quarantine too. A segment is deleted once all its records are stored; replaying it again after
a crash is harmless because replays are idempotent. Segments written before the header had its
own checksum (magic ``ECS1``) are still read.
"""

from __future__ import annotations

import json
import logging
import mmap
import os
import struct
import threading
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from ecm_common.errors import ConfigError
from generator.batch import RECORD_DTYPE, CallBatch

log = logging.getLogger(__name__)

MAGIC = b"ECS2"
LEGACY_MAGIC = b"ECS1"
# Opaque records (append_payload): the writer's own encoding of `rows` items, any size; the PM
# generator spools its JSON event batches this way. The calls replay reads them as bad ranges.
PAYLOAD_MAGIC = b"ECP1"
_HEAD = struct.Struct("<4sIIII")  # magic, rows, towers, payload bytes, payload crc32
_HEADER = struct.Struct("<4sIIIII")  # the same, then the crc32 of those 20 bytes
SEGMENT_SUFFIX = ".spool"
QUARANTINE = "quarantine"
# A new segment after this many bytes keeps the replay-again-after-crash window small.
SEGMENT_MAX_BYTES = 32 * 1024 * 1024


class SpoolError(Exception):
    """Appending to the spool failed: the batch is not durable."""


@dataclass(frozen=True)
class Record:
    """An intact record of a segment: its byte range and rows."""

    start: int
    end: int
    batch: CallBatch


@dataclass(frozen=True)
class Payload:
    """An intact opaque record of a segment: its byte range, item count and payload."""

    start: int
    end: int
    rows: int
    data: bytes


@dataclass(frozen=True)
class BadRange:
    """Bytes of a segment that are no intact record; rows is known when the header survived."""

    start: int
    end: int
    rows: int | None
    torn: bool


@dataclass(frozen=True)
class _Frame:
    end: int
    rows: int
    towers: int
    payload: slice
    opaque: bool = False


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def encode_record(batch: CallBatch) -> bytes:
    """One record: the checksummed header and the packed rows."""
    payload = batch.to_records().tobytes()
    head = _HEAD.pack(MAGIC, len(batch), batch.n_towers, len(payload), zlib.crc32(payload))
    return head + struct.pack("<I", zlib.crc32(head)) + payload


def encode_payload(payload: bytes, rows: int) -> bytes:
    """One opaque record: the checksummed header and the payload as given."""
    head = _HEAD.pack(PAYLOAD_MAGIC, rows, 0, len(payload), zlib.crc32(payload))
    return head + struct.pack("<I", zlib.crc32(head)) + payload


def _header(buf: Any, pos: int) -> tuple[int, int, int, int, int] | None:
    """(header size, rows, towers, payload size, payload crc) of a plausible header at pos."""
    magic = bytes(buf[pos : pos + 4])
    if magic in (MAGIC, PAYLOAD_MAGIC) and pos + _HEADER.size <= len(buf):
        _, rows, towers, size, crc, head_crc = _HEADER.unpack_from(buf, pos)
        if zlib.crc32(buf[pos : pos + _HEAD.size]) != head_crc:
            return None
        hsize = _HEADER.size
    elif magic == LEGACY_MAGIC and pos + _HEAD.size <= len(buf):
        _, rows, towers, size, crc = _HEAD.unpack_from(buf, pos)
        hsize = _HEAD.size
    else:
        return None
    if magic != PAYLOAD_MAGIC and size != rows * RECORD_DTYPE.itemsize:
        return None
    return hsize, rows, towers, size, crc


def _frame(buf: Any, pos: int) -> _Frame | None:
    """The intact record starting at pos, or None."""
    head = _header(buf, pos)
    if head is None:
        return None
    hsize, rows, towers, size, crc = head
    start, end = pos + hsize, pos + hsize + size
    if end > len(buf) or zlib.crc32(buf[start:end]) != crc:
        return None
    return _Frame(end, rows, towers, slice(start, end), bytes(buf[pos : pos + 4]) == PAYLOAD_MAGIC)


def _scan(buf: Any, start: int) -> Iterator[tuple[int, _Frame | BadRange]]:
    """(offset, intact frame or bad range) for every record from start to the end."""
    pos, n = start, len(buf)
    while pos < n:
        frame = _frame(buf, pos)
        if frame is not None:
            yield pos, frame
            pos = frame.end
            continue
        nxt = pos + 1
        while True:
            nxt = buf.find(b"EC", nxt)  # any magic: ECS1, ECS2, ECP1
            if nxt < 0:
                nxt = n
                break
            if _frame(buf, nxt) is not None:
                break
            nxt += 1
        head = _header(buf, pos)
        torn = nxt == n and (
            n - pos < _HEADER.size or (head is not None and pos + head[0] + head[3] > n)
        )
        yield pos, BadRange(pos, nxt, None if head is None else head[1], torn)
        pos = nxt


def _check_dir(directory: Path) -> None:
    """Make the directory and prove a file in it can be written and fsync'd."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / ".probe"
        with open(probe, "wb") as fh:
            fh.write(b"ecm")
            fh.flush()
            os.fsync(fh.fileno())
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"spool directory {directory} cannot be used: {_reason(exc)}") from None


class Spool:
    """Append batches in order; read them back oldest first; survives restarts."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        _check_dir(directory)
        self._fd: int | None = None
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
        """Append one batch durably (written and fsync'd before returning); SpoolError if not."""
        self._append(encode_record(batch))

    def append_payload(self, payload: bytes, rows: int) -> None:
        """Append one opaque record of `rows` items durably; SpoolError if not."""
        self._append(encode_payload(payload, rows))

    def _append(self, record: bytes) -> None:
        data = memoryview(record)
        try:
            if self._fd is None or os.fstat(self._fd).st_size >= SEGMENT_MAX_BYTES:
                self._open_new()
            assert self._fd is not None
            at = os.fstat(self._fd).st_size
            try:
                done = 0
                while done < len(data):
                    done += os.write(self._fd, data[done:])
                os.fsync(self._fd)
            except OSError:
                # Leave no half record behind for the next append to follow.
                os.ftruncate(self._fd, at)
                raise
        except OSError as exc:
            where = self._current or self.dir
            self.close()
            raise SpoolError(f"cannot write the spool ({where}): {_reason(exc)}") from None

    def _open_new(self) -> None:
        self.close()
        self._seq += 1
        self._current = self.dir / f"{self._seq:012d}{SEGMENT_SUFFIX}"
        self._fd = os.open(self._current, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        _fsync_dir(self.dir)

    def close(self) -> None:
        """Close the segment being appended to; the next append starts a new one."""
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                log.debug("closing the spool segment failed", exc_info=True)
            self._fd = None
            self._current = None

    def read(self, segment: Path, start: int = 0) -> Iterator[Record | BadRange]:
        """The records of a segment from byte start, in order: intact ones and bad ranges."""
        with open(segment, "rb") as fh:
            if os.fstat(fh.fileno()).st_size <= start:
                return
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                for pos, item in _scan(buf, start):
                    if isinstance(item, BadRange):
                        yield item
                        continue
                    if item.opaque:  # not calls: nothing the calls replay can store
                        yield BadRange(pos, item.end, item.rows, False)
                        continue
                    rec = np.frombuffer(bytes(buf[item.payload]), dtype=RECORD_DTYPE)
                    yield Record(pos, item.end, CallBatch.from_records(rec, item.towers))

    def read_payloads(self, segment: Path, start: int = 0) -> Iterator[Payload | BadRange]:
        """The opaque records of a segment from byte start, in order, and the bad ranges."""
        with open(segment, "rb") as fh:
            if os.fstat(fh.fileno()).st_size <= start:
                return
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                for pos, item in _scan(buf, start):
                    if isinstance(item, BadRange):
                        yield item
                    elif not item.opaque:
                        yield BadRange(pos, item.end, item.rows, False)
                    else:
                        yield Payload(pos, item.end, item.rows, bytes(buf[item.payload]))

    def rows_waiting(self, done: Mapping[Path, int] | None = None) -> int:
        """Calls in intact records of every segment, past the byte offsets in ``done``."""
        total = 0
        for segment in self.segments():
            start = (done or {}).get(segment, 0)
            with open(segment, "rb") as fh:
                if os.fstat(fh.fileno()).st_size <= start:
                    continue
                with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                    total += sum(f.rows for _, f in _scan(buf, start) if isinstance(f, _Frame))
        return total

    def quarantine(self, segment: Path, bad: BadRange) -> Path:
        """Copy a bad range's bytes to quarantine/ (durably) and return the file."""
        qdir = self.dir / QUARANTINE
        qdir.mkdir(exist_ok=True)
        target = qdir / f"{segment.name}.{bad.start}-{bad.end}.bad"
        with open(segment, "rb") as src:
            src.seek(bad.start)
            data = src.read(bad.end - bad.start)
        with open(target, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        _fsync_dir(qdir)
        return target

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
        # The producer (invalid calls) and the writer thread (refused rows) both append.
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"dead-letter file {path} cannot be used: {_reason(exc)}") from None
        if path.is_dir():
            raise ConfigError(f"dead-letter file {path} is a directory")

    def write(self, items: list[tuple[dict[str, Any], str]]) -> None:
        """Append each (call, reason) durably; OSError when that fails."""
        if not items:
            return
        now = datetime.now(UTC).isoformat()
        with self._lock, open(self.path, "a", encoding="utf-8") as fh:
            for call, reason in items:
                fh.write(json.dumps({"time": now, "reason": reason, "call": call}) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        log.warning("%d call(s) written to the dead-letter file %s", len(items), self.path)
