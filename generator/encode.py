"""PostgreSQL binary COPY encoding of a whole batch with numpy, no Python loop per row."""

from __future__ import annotations

import functools
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from ecm_common.domain import FAILED, REASONS, SUCCESS, tower_name
from generator.batch import CallBatch

# Column order of every COPY this package runs; the fixed-width columns come first so that each
# row is a 56-byte fixed part followed by one of a few precomputed tails.
COLUMNS = 'call_uuid, "timestamp", caller_id, latency_ms, tower_id, status, failure_reason'
SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER = b"\xff\xff"
PG_EPOCH_US = int(datetime(2000, 1, 1, tzinfo=UTC).timestamp() * 1_000_000)
CALLER_BASE = 400_000_000  # caller ids are 10 digits starting with "04"

_FIXED = np.dtype(
    [
        ("nfields", ">i2"),
        ("uuid_len", ">i4"),
        ("uuid", "u1", (16,)),
        ("ts_len", ">i4"),
        ("ts", ">i8"),
        ("caller_len", ">i4"),
        ("caller", "u1", (10,)),
        ("lat_len", ">i4"),
        ("lat", ">i4"),
    ]
)
_POW10 = 10 ** np.arange(9, -1, -1, dtype=np.int64)
_KINDS = len(REASONS) + 1  # success, then one per failure reason


def _text_field(value: str | None) -> bytes:
    if value is None:
        return b"\xff\xff\xff\xff"
    data = value.encode()
    return len(data).to_bytes(4, "big") + data


@functools.lru_cache(maxsize=8)
def _tails(n_towers: int) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    """Padded tail bytes (tower_id, status, failure_reason) per tower x kind, and their lengths."""
    tails = []
    for t in range(n_towers):
        tower = _text_field(tower_name(t + 1))
        tails.append(tower + _text_field(SUCCESS) + _text_field(None))
        tails.extend(tower + _text_field(FAILED) + _text_field(r) for r in REASONS)
    width = max(len(x) for x in tails)
    table = np.zeros((len(tails), width), dtype=np.uint8)
    for i, x in enumerate(tails):
        table[i, : len(x)] = np.frombuffer(x, dtype=np.uint8)
    return table, np.array([len(x) for x in tails], dtype=np.int64)


def encode_rows(batch: CallBatch) -> bytes:
    """The rows of a valid batch in COPY BINARY row format (no signature, no trailer)."""
    n = len(batch)
    if n == 0:
        return b""
    fixed = np.empty(n, dtype=_FIXED)
    fixed["nfields"] = 7
    fixed["uuid_len"] = 16
    fixed["uuid"] = batch.uuid
    fixed["ts_len"] = 8
    fixed["ts"] = batch.ts_us - PG_EPOCH_US
    fixed["caller_len"] = 10
    fixed["caller"] = ((CALLER_BASE + batch.caller)[:, None] // _POW10 % 10 + 48).astype(np.uint8)
    fixed["lat_len"] = 4
    fixed["lat"] = batch.latency_ms

    n_towers = max(batch.n_towers, int(batch.tower.max()) + 1)
    table, lengths = _tails(n_towers)
    kind = batch.tower.astype(np.int64) * _KINDS + np.where(
        batch.status == 1, batch.reason.astype(np.int64) + 1, 0
    )
    row_len = _FIXED.itemsize + lengths[kind]
    starts = np.concatenate([[0], np.cumsum(row_len)[:-1]])
    out = np.empty(int(row_len.sum()), dtype=np.uint8)
    out[starts[:, None] + np.arange(_FIXED.itemsize)] = fixed.view(np.uint8).reshape(n, -1)
    width = table.shape[1]
    idx = (starts + _FIXED.itemsize)[:, None] + np.arange(width)
    mask = np.arange(width)[None, :] < lengths[kind][:, None]
    out[idx[mask]] = table[kind][mask]
    return out.tobytes()


def encode_copy(batch: CallBatch) -> bytes:
    """A complete COPY BINARY stream for the batch: signature, rows, trailer."""
    return SIGNATURE + encode_rows(batch) + TRAILER
