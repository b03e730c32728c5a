"""The rollup alone (no database): exact counts, p95 within 1%, windows that slide correctly."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from exporter.rollup import (
    MAX_MS,
    N_BUCKETS,
    Catalog,
    Rollup,
    Rows,
    bucket_of,
    quantile_from_counts,
)

WINDOWS = [("5m", 5), ("10m", 10), ("1h", 60)]


def exact_p95(values: np.ndarray) -> float:
    """percentile_cont(0.95), as PostgreSQL computes it."""
    return float(np.percentile(values.astype(np.float64), 95, method="linear"))


def estimate(values: np.ndarray) -> float:
    """p95 through the rollup's histogram."""
    return quantile_from_counts(
        np.bincount(bucket_of(values), minlength=N_BUCKETS).astype(np.int64)
    )


@pytest.mark.parametrize("seed", range(5))
def test_p95_within_one_percent_on_skewed_heavy_tailed_latency(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 200_000
    base = rng.lognormal(math.log(1800), 0.35, n)
    idle = rng.random(n) < 0.3
    base[idle] = rng.lognormal(math.log(2800), 0.5, idle.sum())
    tail = rng.random(n) < 0.06  # heavy tail: degraded calls and timers
    base[tail] *= rng.pareto(1.5, tail.sum()) + 3
    values = np.minimum(base, MAX_MS).astype(np.int64)
    assert estimate(values) == pytest.approx(exact_p95(values), rel=0.01)
    # Sub-samples of every size, including tiny windows, stay within 1% too.
    for size in (1, 2, 3, 20, 21, 97, 1000):
        sub = rng.choice(values, size)
        assert estimate(sub) == pytest.approx(exact_p95(sub), rel=0.01)


def test_p95_within_one_percent_on_any_scale() -> None:
    rng = np.random.default_rng(42)
    for median in (3, 40, 90, 700, 5000, 60000):
        values = np.minimum(rng.lognormal(math.log(median), 1.2, 5000), MAX_MS).astype(np.int64)
        assert estimate(values) == pytest.approx(exact_p95(values), rel=0.01)
    assert estimate(np.array([0, 0, 0], np.int64)) == 0
    assert estimate(np.array([500_000], np.int64)) == MAX_MS  # clamped at 120 s


Seen = list[tuple[float, str, int, str | None, int]]


def brute(rows: Seen, now: float, minutes: int) -> Seen:
    """The documented window rule, row by row: every row counts in its own minute, a row
    timestamped ahead only once its minute has begun, whenever it was added."""
    cur = math.floor(now / 60)
    return [r for r in rows if cur - minutes + 1 <= math.floor(r[0] / 60) <= cur]


REASONS_SEEN = ["PSAP_BUSY", "CORE_TIMEOUT", "NEW_REASON"]  # one outside the vocabulary


def event_time(rng: random.Random, now: float) -> float:
    """Mostly recent, some late (up to 90 minutes old), a few in the future (clock skew)."""
    u = rng.random()
    if u < 0.85:
        return now - rng.expovariate(1 / 120)
    if u < 0.97:
        return now - rng.uniform(0, 5400)
    return now + rng.uniform(0, 300)


def test_windows_slide_with_late_and_future_rows() -> None:
    rng = random.Random(3)
    catalog = Catalog()
    rollup = Rollup(catalog, WINDOWS)
    now = 1_700_000_000.0
    seen: Seen = []
    for step in range(120):
        now += rng.choice([5, 15, 15, 40, 130])
        rows = [
            (event_time(rng, now), f"T{rng.randint(1, 6)}", int(rng.lognormvariate(7.4, 0.6)),
             rng.choice(REASONS_SEEN) if rng.random() < 0.1 else None)
            for _ in range(rng.randint(0, 60))
        ]  # fmt: skip
        seen += [(*r, math.floor(now / 60)) for r in rows]
        batch = Rows.from_columns(
            catalog,
            [r[1] for r in rows],
            ["FAILED" if r[3] else "SUCCESS" for r in rows],
            [r[3] for r in rows],
            [r[2] for r in rows],
            [r[0] for r in rows],
        )
        rollup.add(batch, now)
        if step % 7:
            continue
        for label, minutes in WINDOWS:
            want = brute(seen, now, minutes)
            got = rollup.result(label, np.arange(len(catalog.towers)))
            assert got.calls == len(want)
            assert got.failed == sum(1 for r in want if r[3])
            assert got.latency_sum_ms == sum(r[2] for r in want)
            for reason, n in got.reason_failed.items():
                assert n == sum(1 for r in want if r[3] == reason)
            if want:
                assert got.p95_ms == pytest.approx(
                    exact_p95(np.array([r[2] for r in want])), rel=0.01
                )
            for t in got.towers:
                tw = [r for r in want if r[1] == t.tower]
                assert (t.calls, t.failed) == (len(tw), sum(1 for r in tw if r[3]))
                # Each tower's p95 comes from the minutes' sparse histogram keys.
                exact = exact_p95(np.array([r[2] for r in tw]))
                assert t.p95_ms == pytest.approx(exact, rel=0.01)
    # Evicted minutes are gone: nothing older than the longest window is kept, and minutes
    # ahead are only those of rows timestamped ahead (at most 5 minutes here).
    assert min(rollup.minutes) >= math.floor(now / 60) - 59
    assert max(rollup.minutes) <= math.floor(now / 60) + 5


def test_rows_older_than_every_window_are_ignored() -> None:
    catalog = Catalog()
    rollup = Rollup(catalog, [("5m", 5)])
    now = 1_700_000_030.0
    rows = Rows.from_columns(catalog, ["T1", "T1"], ["SUCCESS", "FAILED"], [None, "PSAP_BUSY"],
                             [100, 200], [now - 3600, now - 10])  # fmt: skip
    rollup.add(rows, now)
    r = rollup.result("5m", np.arange(len(catalog.towers)))
    assert (r.calls, r.failed, r.latency_sum_ms) == (1, 1, 200)
