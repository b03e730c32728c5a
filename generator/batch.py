"""A batch of calls as columnar numpy arrays, its validation and its record form for the spool."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from ecm_common.domain import FAILED, REASONS, STATUSES, SUCCESS, tower_name

# Status codes in the arrays; any other value is an invalid call.
STATUS_SUCCESS = 0
STATUS_FAILED = 1
NO_REASON = -1
MAX_LATENCY_MS = 2**31 - 1
# Timestamps outside these bounds are refused (microseconds since the Unix epoch).
MIN_TS_US = 0
MAX_TS_US = int(datetime(2200, 1, 1, tzinfo=UTC).timestamp() * 1_000_000)

# One row as stored in a spool record (little-endian, packed).
RECORD_DTYPE = np.dtype(
    [
        ("uuid", "u1", (16,)),
        ("ts_us", "<i8"),
        ("caller", "<i8"),
        ("tower", "<i4"),
        ("latency_ms", "<i4"),
        ("status", "u1"),
        ("reason", "i1"),
    ]
)


@dataclass
class CallBatch:
    """Columnar calls: row i of every array is one call.

    ``uuid`` (n, 16) uint8 big-endian UUID bytes; ``ts_us`` int64 microseconds since the Unix
    epoch (UTC); ``caller`` int64 subscriber number (rendered as 10 digits); ``tower`` int32
    0-based index (tower ``TOWER_{i+1}``); ``latency_ms`` int32; ``status`` uint8 (0 SUCCESS,
    1 FAILED); ``reason`` int8 index into ``ecm_common.domain.REASONS`` or -1; ``n_towers`` the
    number of towers the batch may use; ``offsets`` model seconds since the run start (not stored).
    """

    uuid: npt.NDArray[np.uint8]
    ts_us: npt.NDArray[np.int64]
    caller: npt.NDArray[np.int64]
    tower: npt.NDArray[np.int32]
    latency_ms: npt.NDArray[np.int32]
    status: npt.NDArray[np.uint8]
    reason: npt.NDArray[np.int8]
    n_towers: int
    offsets: npt.NDArray[np.float64] | None = None

    def __len__(self) -> int:
        return int(self.ts_us.shape[0])

    def take(self, index: Any) -> CallBatch:
        """The rows selected by a slice, mask or index array."""
        return CallBatch(
            uuid=self.uuid[index],
            ts_us=self.ts_us[index],
            caller=self.caller[index],
            tower=self.tower[index],
            latency_ms=self.latency_ms[index],
            status=self.status[index],
            reason=self.reason[index],
            n_towers=self.n_towers,
            offsets=None if self.offsets is None else self.offsets[index],
        )

    @staticmethod
    def concat(batches: list[CallBatch]) -> CallBatch:
        """One batch holding the rows of several, in order."""
        if len(batches) == 1:
            return batches[0]
        offs = [b.offsets for b in batches]
        return CallBatch(
            uuid=np.concatenate([b.uuid for b in batches]),
            ts_us=np.concatenate([b.ts_us for b in batches]),
            caller=np.concatenate([b.caller for b in batches]),
            tower=np.concatenate([b.tower for b in batches]),
            latency_ms=np.concatenate([b.latency_ms for b in batches]),
            status=np.concatenate([b.status for b in batches]),
            reason=np.concatenate([b.reason for b in batches]),
            n_towers=max(b.n_towers for b in batches),
            offsets=None if any(o is None for o in offs) else np.concatenate(offs),  # type: ignore[arg-type]
        )

    def to_records(self) -> npt.NDArray[Any]:
        """The rows as a packed structured array (the spool's on-disk form)."""
        rec = np.empty(len(self), dtype=RECORD_DTYPE)
        rec["uuid"] = self.uuid
        rec["ts_us"] = self.ts_us
        rec["caller"] = self.caller
        rec["tower"] = self.tower
        rec["latency_ms"] = self.latency_ms
        rec["status"] = self.status
        rec["reason"] = self.reason
        return rec

    @staticmethod
    def from_records(rec: npt.NDArray[Any], n_towers: int) -> CallBatch:
        """Rebuild a batch from its structured-array form."""
        return CallBatch(
            uuid=np.ascontiguousarray(rec["uuid"]),
            ts_us=rec["ts_us"].astype(np.int64),
            caller=rec["caller"].astype(np.int64),
            tower=rec["tower"].astype(np.int32),
            latency_ms=rec["latency_ms"].astype(np.int32),
            status=rec["status"].astype(np.uint8),
            reason=rec["reason"].astype(np.int8),
            n_towers=n_towers,
        )

    def caller_ids(self) -> list[str]:
        """Caller ids as stored: 10 digits starting with 04."""
        return [f"{400_000_000 + int(c):010d}" for c in self.caller]

    def rows(self) -> list[dict[str, Any]]:
        """The calls as dictionaries of column values (for dead letters and debugging)."""
        out = []
        for i in range(len(self)):
            st = int(self.status[i])
            rs = int(self.reason[i])
            out.append(
                {
                    "call_uuid": str(uuid.UUID(bytes=bytes(self.uuid[i]))),
                    "timestamp": datetime.fromtimestamp(int(self.ts_us[i]) / 1e6, UTC).isoformat(),
                    "caller_id": f"{400_000_000 + int(self.caller[i]):010d}",
                    "tower_id": tower_name(int(self.tower[i]) + 1),
                    "latency_ms": int(self.latency_ms[i]),
                    "status": STATUSES[st] if st < len(STATUSES) else f"<invalid status code {st}>",
                    "failure_reason": REASONS[rs] if 0 <= rs < len(REASONS) else None,
                }
            )
        return out


def invalid_reasons(batch: CallBatch) -> list[tuple[int, str]]:
    """(row, reason) for every call that must never reach the database."""
    checks: list[tuple[npt.NDArray[np.bool_], str]] = [
        (batch.status > STATUS_FAILED, "unknown status"),
        (
            (batch.status == STATUS_SUCCESS) & (batch.reason != NO_REASON),
            "reason on a successful call",
        ),
        (
            (batch.status == STATUS_FAILED) & ((batch.reason < 0) | (batch.reason >= len(REASONS))),
            "failed call without a known reason",
        ),
        ((batch.tower < 0) | (batch.tower >= batch.n_towers), "unknown tower"),
        (batch.latency_ms < 0, "negative latency"),
        ((batch.ts_us < MIN_TS_US) | (batch.ts_us > MAX_TS_US), "timestamp out of range"),
        ((batch.caller < 0) | (batch.caller >= 10**8), "caller id out of range"),
    ]
    bad: dict[int, str] = {}
    for mask, why in checks:
        for i in np.flatnonzero(mask):
            bad.setdefault(int(i), why)
    return sorted(bad.items())


def split_valid(batch: CallBatch) -> tuple[CallBatch, list[tuple[dict[str, Any], str]]]:
    """The valid rows as a batch, and each invalid row with why it was refused."""
    bad = invalid_reasons(batch)
    if not bad:
        return batch, []
    keep = np.ones(len(batch), dtype=bool)
    keep[[i for i, _ in bad]] = False
    rows = batch.take(np.array([i for i, _ in bad])).rows()
    return batch.take(keep), [(row, why) for row, (_, why) in zip(rows, bad, strict=True)]


def status_text(code: int) -> str:
    """SUCCESS or FAILED for a status code."""
    return SUCCESS if code == STATUS_SUCCESS else FAILED
