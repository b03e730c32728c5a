"""Test helpers: write calls with plain psycopg and compute expected values independently."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import psycopg
from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True)
class Call:
    """One row of emergency_calls as the tests write it."""

    epoch_s: float
    tower: str
    latency_ms: int
    reason: str | None = None  # None: SUCCESS


def copy_calls(conn: psycopg.Connection, calls: Iterable[Call]) -> int:
    """COPY calls into emergency_calls on an open connection (inside its transaction)."""
    n = 0
    with conn.cursor().copy(
        'COPY emergency_calls (call_uuid, "timestamp", caller_id, tower_id, latency_ms, status,'
        " failure_reason) FROM STDIN"
    ) as cp:
        for c in calls:
            cp.write_row((
                uuid.uuid4(),
                datetime.fromtimestamp(c.epoch_s, UTC),
                "caller",
                c.tower,
                c.latency_ms,
                "FAILED" if c.reason else "SUCCESS",
                c.reason,
            ))  # fmt: skip
            n += 1
    return n


def write_calls(url: str, calls: Iterable[Call]) -> int:
    """COPY calls in one committed transaction."""
    with psycopg.connect(url) as conn:
        n = copy_calls(conn, calls)
        conn.commit()
    return n


def add_towers(url: str, towers: Sequence[str]) -> None:
    """Insert towers into the towers table."""
    with psycopg.connect(url) as conn:
        for t in towers:
            conn.execute("INSERT INTO towers (tower_id) VALUES (%s) ON CONFLICT DO NOTHING", (t,))
        conn.commit()


def percentile_cont(values: Sequence[float], q: float = 0.95) -> float:
    """What PostgreSQL's percentile_cont(q) gives: numpy's linear interpolation."""
    return float(np.percentile(np.asarray(values, dtype=np.float64), 100 * q, method="linear"))


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition keyed by (name, sorted labels)."""
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(text: str, name: str, **labels: str) -> float | None:
    """One sample's value, or None when absent."""
    return samples(text).get((name, tuple(sorted(labels.items()))))


def total(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of a name whose labels include the given ones."""
    want = set(labels.items())
    return sum(v for (n, lab), v in samples(text).items() if n == name and want <= set(lab))


def by_tower(text: str, name: str, **labels: str) -> float | None:
    """The sample whose labels other than region are exactly these, or None when absent."""
    want = set(labels.items())
    found = [
        v
        for (n, lab), v in samples(text).items()
        if n == name and {(k, x) for k, x in lab if k != "region"} == want
    ]
    assert len(found) <= 1, f"{name} {labels}: {len(found)} samples"
    return found[0] if found else None
