"""Running the generator as a user does: a subprocess with flags, output captured."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import psycopg

from generator.batch import CallBatch
from generator.metrics import GeneratorMetrics
from generator.model import CallModel, ModelParams, zipf_weights
from generator.pipeline import Pipeline, WriteOptions
from generator.spool import Spool
from generator.writer import DbWriter

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = REPO / "scenarios"
# An origin in the past, fixed for the session: every call is due at once, so runs are unpaced.
PAST = (datetime.now(UTC) - timedelta(days=30)).replace(hour=0, minute=0, second=0, microsecond=0)
PAST_ISO = PAST.isoformat()


def gen_env(**extra: str) -> dict[str, str]:
    """The environment for a generator subprocess (no inherited ECM_* settings)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECM_")}
    env.update(extra)
    return env


def gen_cmd(*args: str) -> list[str]:
    """argv running ``python -m generator``."""
    return [sys.executable, "-m", "generator", *args]


def run_gen(
    *args: str, tmp: Path, timeout: float = 60, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run the generator to completion with its spool and dead letters under tmp."""
    return subprocess.run(
        gen_cmd(
            *args, "--spool-dir", str(tmp / "spool"), "--dead-letter-file", str(tmp / "dl.jsonl")
        ),
        cwd=REPO,
        env=gen_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def query(url: str, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows of one query."""
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()


def parse_counts(stdout: str) -> dict[str, int]:
    """The counts of the generator's last line: generated=N written=N ..."""
    line = stdout.strip().splitlines()[-1]
    inner = line[line.rindex("(generated=") + 1 : line.rindex(")")]
    return {k: int(v) for k, v in (part.split("=") for part in inner.split())}


ROW_SQL = (
    'SELECT call_uuid, "timestamp", caller_id, tower_id, latency_ms, status, failure_reason'
    " FROM emergency_calls"
)


def rows(url: str, where: str = "TRUE") -> list[tuple[object, ...]]:
    """Every stored call's columns except call_id and txid, in timestamp order."""
    return query(url, f'{ROW_SQL} WHERE {where} ORDER BY "timestamp", call_uuid')


def wait_until(predicate: object, what: str, timeout: float = 30.0) -> None:
    """Poll a condition (an event, not a duration) until it holds or the deadline passes."""
    import time

    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def count_calls(url: str) -> int:
    """Stored calls, or -1 while the database cannot be reached."""
    try:
        [(n,)] = query(url, "SELECT count(*) FROM emergency_calls")
    except psycopg.OperationalError:
        return -1
    return int(n)


def calls(n: int, seed: int = 1) -> CallBatch:
    """n seeded calls of a 10-tower model, stamped in the past."""
    model = CallModel(
        ModelParams(rate=100.0, failure_prob=0.1, tower_weights=zipf_weights(10, 1.0)),
        origin_us=int(PAST.timestamp() * 1e6),
    )
    return model.batch(n, 0.0, np.random.default_rng(seed))


def uuids(batch: CallBatch) -> list[bytes]:
    """The calls' UUIDs as bytes, in order."""
    return [bytes(u) for u in batch.uuid]


def spool_of(tmp: Path, *batches: CallBatch) -> tuple[Spool, Path, list[int]]:
    """A spool holding the batches in one segment, and the byte offset where each record starts."""
    spool = Spool(tmp / "spool")
    starts = []
    for b in batches:
        starts.append(sum(p.stat().st_size for p in spool.segments()))
        spool.append(b)
    spool.close()
    [segment] = spool.segments()
    return spool, segment, starts


def flip(path: Path, offset: int) -> None:
    """Invert one byte of a file."""
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def pipeline(
    url: str,
    tmp: Path,
    writer: DbWriter | None = None,
    metrics: GeneratorMetrics | None = None,
    **opts: float,
) -> Pipeline:
    """A pipeline with fast flushes and retries, its spool and dead letters under tmp."""
    # Unvalidated on purpose: the pipeline must survive values the options would refuse.
    values: dict[str, Any] = {"flush_interval": 0.05, "retry_base_delay": 0.01, **opts}
    options = WriteOptions.model_construct(None, **values)
    return Pipeline(writer or DbWriter(url), tmp / "spool", tmp / "dl.jsonl", options, metrics)
