"""Compare ways of writing the same batches: numpy-built binary COPY, psycopg rows (binary, text).

Run: ``python -m bench.copy_compare --database-url URL [--rows 200000]`` on a scratch database
(it truncates emergency_calls). Prints rows/s per method, including encoding time.
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
import psycopg

from ecm_common.domain import FAILED, REASONS, SUCCESS, tower_name
from generator import queries
from generator.batch import CallBatch
from generator.model import CallModel, ModelParams, zipf_weights
from generator.writer import copy_batch

TYPES = ["uuid", "timestamptz", "text", "int4", "text", "text", "text"]


def _tuples(batch: CallBatch) -> list[tuple[object, ...]]:
    return [
        (
            uuid.UUID(bytes=bytes(batch.uuid[i])),
            datetime.fromtimestamp(int(batch.ts_us[i]) / 1e6, UTC),
            f"{400_000_000 + int(batch.caller[i]):010d}",
            int(batch.latency_ms[i]),
            tower_name(int(batch.tower[i]) + 1),
            FAILED if batch.status[i] else SUCCESS,
            REASONS[batch.reason[i]] if batch.status[i] else None,
        )
        for i in range(len(batch))
    ]


def rows_binary(conn: psycopg.Connection, batch: CallBatch) -> None:
    """psycopg write_row in binary format with set_types."""
    with conn.transaction(), conn.cursor() as cur, cur.copy(queries.COPY_CALLS) as copy:
        copy.set_types(TYPES)
        for row in _tuples(batch):
            copy.write_row(row)


def rows_text(conn: psycopg.Connection, batch: CallBatch) -> None:
    """psycopg write_row in text format."""
    with conn.transaction(), conn.cursor() as cur, cur.copy(queries.COPY_CALLS_TEXT) as copy:
        for row in _tuples(batch):
            copy.write_row(row)


def numpy_binary(conn: psycopg.Connection, batch: CallBatch) -> None:
    """The generator's writer: the whole batch encoded by numpy, one write."""
    copy_batch(conn, batch)


def main() -> None:
    """Time each method on the same batches and print rows/s."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--database-url", required=True)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--batch-size", type=int, default=5000)
    args = ap.parse_args()
    model = CallModel(
        ModelParams(rate=1000, failure_prob=0.05, tower_weights=zipf_weights(50, 0.8)),
        origin_us=int(time.time() * 1e6),
    )
    methods: dict[str, Callable[[psycopg.Connection, CallBatch], None]] = {
        "numpy binary COPY (kept)": numpy_binary,
        "psycopg write_row binary": rows_binary,
        "psycopg write_row text": rows_text,
    }
    with psycopg.connect(args.database_url) as conn:
        for name, fn in methods.items():
            rng = np.random.default_rng(1)
            batches, t = [], 0.0
            for _ in range(args.rows // args.batch_size):
                b = model.batch(args.batch_size, t, rng)
                assert b.offsets is not None
                t = float(b.offsets[-1])
                batches.append(b)
            conn.execute("TRUNCATE emergency_calls")
            conn.commit()
            t0 = time.perf_counter()
            for b in batches:
                fn(conn, b)
            dt = time.perf_counter() - t0
            print(f"{name:28s} {args.rows / dt:>10,.0f} rows/s")


if __name__ == "__main__":
    main()
