"""Section 1: the generator's rows/s against the raw binary-COPY limit of the same table."""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg

from bench import queries
from ecm_common.db import connect

log = logging.getLogger(__name__)

# History rate for the backfill: any rate works, only the number of rows matters.
BACKFILL_RATE = 1000.0
COPY_CHUNK = 1 << 20


@dataclass(frozen=True)
class WriterResult:
    """Median rows/s of both paths over the repeats."""

    rows: int
    generator_rows_s: float
    raw_rows_s: float
    batch_size: int

    @property
    def ratio(self) -> float:
        """Generator speed as a share of the raw limit."""
        return self.generator_rows_s / self.raw_rows_s if self.raw_rows_s else 0.0


def generator_write(url: str, rows: int, start: datetime, towers: int) -> tuple[int, float]:
    """Backfill about rows calls with the generator's own path; (rows written, seconds)."""
    from generator.backfill import backfill

    span = rows / BACKFILL_RATE
    state = tempfile.mkdtemp(prefix="ecm-bench-gen-")
    try:
        t0 = time.perf_counter()
        # Its progress line goes to stderr; the benchmark prints its own table instead.
        with contextlib.redirect_stderr(io.StringIO()):
            # History ending at start: backfill refuses a range that ends in the future.
            counts = backfill(
                url,
                start - timedelta(seconds=span),
                start,
                BACKFILL_RATE,
                seed=7,
                towers=towers,
                spool_dir=state,
                dead_letter_file=f"{state}/dead.bin",
                log_level="WARNING",
            )
        elapsed = time.perf_counter() - t0
    finally:
        shutil.rmtree(state, ignore_errors=True)
    return counts.written, elapsed


def prebuilt_rows(conn: psycopg.Connection) -> bytes:
    """The stored rows as one binary COPY stream, built before any timing starts."""
    out = bytearray()
    with conn.cursor() as cur, cur.copy(queries.COPY_OUT_BINARY) as copy:
        for block in copy:
            out += block
    return bytes(out)


def raw_copy(conn: psycopg.Connection, payload: bytes) -> float:
    """Seconds to load the pre-built stream with one binary COPY into the emptied table."""
    conn.execute(queries.TRUNCATE_CALLS)
    view = memoryview(payload)
    t0 = time.perf_counter()
    with conn.cursor() as cur, cur.copy(queries.COPY_IN_BINARY) as copy:
        for i in range(0, len(view), COPY_CHUNK):
            copy.write(view[i : i + COPY_CHUNK])
    return time.perf_counter() - t0


def stored(conn: psycopg.Connection) -> int:
    """Rows in emergency_calls."""
    row = conn.execute(queries.COUNT_CALLS).fetchone()
    return int(row[0]) if row else 0


def run(url: str, rows: int, repeats: int, start: datetime, towers: int = 50) -> WriterResult:
    """Alternate both paths on an empty table, repeats times each; medians of rows/s."""
    from generator.pipeline import WriteOptions

    gen_speeds: list[float] = []
    raw_speeds: list[float] = []
    with connect(url, autocommit=True, app="ecm-bench") as conn:
        for _ in range(repeats):
            conn.execute(queries.TRUNCATE_CALLS)
            written, secs = generator_write(url, rows, start, towers)
            if written == 0 or stored(conn) != written:
                raise RuntimeError(f"generator wrote {written} rows but {stored(conn)} are stored")
            gen_speeds.append(written / secs)
            payload = prebuilt_rows(conn)
            secs = raw_copy(conn, payload)
            raw_speeds.append(stored(conn) / secs)
        conn.execute(queries.TRUNCATE_CALLS)
    batch_size = WriteOptions().batch_size
    return WriterResult(
        rows=rows,
        generator_rows_s=statistics.median(gen_speeds),
        raw_rows_s=statistics.median(raw_speeds),
        batch_size=batch_size,
    )
