"""Refresh results against values computed here, from the rows the test wrote."""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict

import pytest

from ecm_common.domain import REASONS
from exporter.refresh import RefreshJob
from tests.exporter.helpers import (
    Call,
    add_towers,
    by_tower,
    percentile_cont,
    total,
    value,
    write_calls,
)
from tests.fixtures.clock import FakeClock
from tests.fixtures.postgres import EcmDb

pytestmark = pytest.mark.integration

WINDOWS = {"5m": 5, "10m": 10, "1h": 60}
TOWERS = [f"TOWER_{i}" for i in range(1, 9)]


def make_calls(rng: random.Random, now: float, n: int, oldest_s: float) -> list[Call]:
    """Skewed traffic: busy and quiet towers, a bad tower, log-normal latency with a heavy tail."""
    weights = [30, 20, 15, 10, 10, 8, 5, 2]
    fail_p = {"TOWER_3": 0.3, "TOWER_8": 0.5}
    out = []
    for _ in range(n):
        tower = rng.choices(TOWERS, weights)[0]
        failed = rng.random() < fail_p.get(tower, 0.03)
        lat = rng.lognormvariate(math.log(1800), 0.35)
        if rng.random() < 0.03:
            lat *= rng.uniform(3, 15)  # heavy tail
        out.append(
            Call(
                now - rng.uniform(0, oldest_s),
                tower,
                int(lat),
                rng.choice(REASONS) if failed else None,
            )
        )
    return out


def in_window(c: Call, now: float, minutes: int) -> bool:
    """The documented window: the current minute and the minutes - 1 whole minutes before it;
    a call timestamped in a later minute (clock skew) is not in it yet."""
    cur = math.floor(now / 60)
    return cur - minutes + 1 <= math.floor(c.epoch_s / 60) <= cur


def check_window(text: str, calls: list[Call], now: float, label: str) -> None:
    """Every published value of one window against an independent computation."""
    rows = [c for c in calls if in_window(c, now, WINDOWS[label])]
    failed = [c for c in rows if c.reason]
    assert value(text, "ecm_window_calls", window=label) == len(rows)
    assert value(text, "ecm_window_failed_calls", window=label) == len(failed)
    assert value(text, "ecm_window_failure_ratio", window=label) == pytest.approx(
        len(failed) / len(rows)
    )
    avg_s = sum(c.latency_ms for c in rows) / len(rows) / 1000
    assert value(text, "ecm_window_latency_avg_seconds", window=label) == pytest.approx(
        avg_s, rel=1e-12
    )
    exact = percentile_cont([c.latency_ms for c in rows]) / 1000
    assert value(text, "ecm_window_latency_p95_seconds", window=label) == pytest.approx(
        exact, rel=0.01
    )
    reasons = Counter(c.reason for c in failed)
    for reason in REASONS:
        got = value(text, "ecm_window_reason_failed_calls", window=label, reason=reason)
        assert got == reasons[reason]
        ratio = value(text, "ecm_window_reason_ratio", window=label, reason=reason)
        assert ratio == pytest.approx(reasons[reason] / len(rows))
    per_tower: dict[str, list[Call]] = defaultdict(list)
    for c in rows:
        per_tower[c.tower].append(c)
    for tower in TOWERS:
        tc = per_tower[tower]
        nf = sum(1 for c in tc if c.reason)
        assert by_tower(text, "ecm_tower_window_calls", window=label, tower=tower) == len(tc)
        assert by_tower(text, "ecm_tower_window_failed_calls", window=label, tower=tower) == nf
        if tc:
            r = by_tower(text, "ecm_tower_window_failure_ratio", window=label, tower=tower)
            assert r == pytest.approx(nf / len(tc))
            p95 = by_tower(text, "ecm_tower_window_latency_p95_seconds", window=label, tower=tower)
            assert p95 == pytest.approx(
                percentile_cont([c.latency_ms for c in tc]) / 1000, rel=0.01
            )
    # Worst towers: failure ratio, only towers with >= 20 calls and a failure, at most 5.
    ranked = sorted(
        ((sum(1 for c in tc if c.reason) / len(tc), t) for t, tc in per_tower.items()
         if len(tc) >= 20 and any(c.reason for c in tc)),
        key=lambda x: -x[0],
    )[:5]  # fmt: skip
    for rank, (ratio, tower) in enumerate(ranked, start=1):
        got = by_tower(
            text, "ecm_worst_tower_failure_ratio", window=label, tower=tower, rank=str(rank)
        )
        assert got == pytest.approx(ratio)
    published = [k for k in text.splitlines() if k.startswith("ecm_worst_tower_failure_ratio{")]
    assert len([p for p in published if f'window="{label}"' in p]) == len(ranked)
    ratio_all = len(failed) / len(rows)
    p95_s = exact
    expected = 2 if ratio_all > 0.05 or p95_s > 8 else 1 if ratio_all > 0.01 or p95_s > 4 else 0
    assert value(text, "ecm_window_status", window=label) == expected


def test_rebuild_and_incremental_match_independent_values(
    test_db: EcmDb, job: RefreshJob, clock: FakeClock
) -> None:
    rng = random.Random(7)
    add_towers(test_db.url, TOWERS)
    old = make_calls(rng, clock.now, 4000, 2 * 3600)  # some older than every window
    write_calls(test_db.writer_url, old)
    assert job.refresh()
    text = job.exposition().decode()
    for label in WINDOWS:
        check_window(text, old, clock.now, label)
    # Rows read by the rebuild are not counted: counters start at zero for every tower x reason.
    assert total(text, "ecm_calls_total") == 0
    for tower in TOWERS:
        assert by_tower(text, "ecm_calls_total", tower=tower) == 0
        for reason in REASONS:
            assert by_tower(text, "ecm_calls_failed_total", tower=tower, reason=reason) == 0

    clock.advance(150)  # 2.5 minutes: windows slide, minutes leave the 5m window
    new = make_calls(rng, clock.now, 1500, 300)  # recent, including late rows for older minutes
    late = make_calls(rng, clock.now, 300, 3 * 3600)  # late commits, some still in the hour
    future = [
        Call(clock.now + 90, "TOWER_2", 2500),
        Call(clock.now + 5, "TOWER_8", 900, "PSAP_BUSY"),
    ]
    write_calls(test_db.writer_url, new + late + future)
    assert job.refresh()
    text = job.exposition().decode()
    everything = old + new + late + future
    for label in WINDOWS:
        check_window(text, everything, clock.now, label)
    fresh = new + late + future
    assert total(text, "ecm_calls_total") == len(fresh)
    for tower in TOWERS:
        tc = [c for c in fresh if c.tower == tower]
        assert by_tower(text, "ecm_calls_total", tower=tower) == len(tc)
        for reason in REASONS:
            n = sum(1 for c in tc if c.reason == reason)
            assert by_tower(text, "ecm_calls_failed_total", tower=tower, reason=reason) == n
        assert by_tower(text, "ecm_call_latency_seconds_count", tower=tower) == len(tc)
        under_2s = sum(1 for c in tc if c.latency_ms <= 2000)
        assert by_tower(text, "ecm_call_latency_seconds_bucket", tower=tower, le="2.0") == under_2s
        assert by_tower(text, "ecm_call_latency_seconds_sum", tower=tower) == pytest.approx(
            sum(c.latency_ms for c in tc) / 1000
        )

    clock.advance(3600 + 120)  # nothing new for an hour: every window empties
    assert job.refresh()
    text = job.exposition().decode()
    for label in WINDOWS:
        assert value(text, "ecm_window_calls", window=label) == 0
        assert value(text, "ecm_window_latency_p95_seconds", window=label) is None
        assert value(text, "ecm_window_status", window=label) == 0


def test_windows_withdrawn_when_no_refresh_finishes(
    test_db: EcmDb, job: RefreshJob, clock: FakeClock
) -> None:
    write_calls(test_db.writer_url, [Call(clock.now - 5, "TOWER_1", 900)] * 3)
    assert job.refresh()
    assert job.stale_after_s == 45  # three 15 s intervals
    clock.advance(44)
    assert value(job.exposition().decode(), "ecm_window_calls", window="5m") == 3
    clock.advance(2)  # a refresh is stuck (hung database): the old values are no longer fresh
    text = job.exposition().decode()
    assert "ecm_window_calls{" not in text and "ecm_tower_window_calls{" not in text
    assert by_tower(text, "ecm_calls_total", tower="TOWER_1") == 0
    assert job.refresh()
    assert value(job.exposition().decode(), "ecm_window_calls", window="5m") == 3
