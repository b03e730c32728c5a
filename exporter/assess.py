"""Judging a window: OK/WARN/ALERT against thresholds, and the worst towers by failure ratio."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import numpy as np

from exporter.rollup import TowerResult, WindowResult


class Status(enum.IntEnum):
    """Window classification; the value is what ecm_window_status publishes."""

    OK = 0
    WARN = 1
    ALERT = 2


@dataclass(frozen=True)
class Thresholds:
    """Classification limits (defaults from the domain reference: success 99%/95%, p95 4 s/8 s)."""

    warn_failure_ratio: float = 0.01
    alert_failure_ratio: float = 0.05
    warn_p95_seconds: float = 4.0
    alert_p95_seconds: float = 8.0
    min_calls: int = 20
    min_tower_calls: int = 20
    top_n: int = 5


def classify(result: WindowResult, th: Thresholds) -> Status:
    """ALERT/WARN when a limit is exceeded strictly, OK otherwise or below min_calls calls."""
    if result.calls == 0 or result.calls < th.min_calls:
        return Status.OK
    ratio = result.failure_ratio
    p95_s = result.p95_ms / 1000.0 if not math.isnan(result.p95_ms) else 0.0
    if ratio > th.alert_failure_ratio or p95_s > th.alert_p95_seconds:
        return Status.ALERT
    if ratio > th.warn_failure_ratio or p95_s > th.warn_p95_seconds:
        return Status.WARN
    return Status.OK


def worst_towers(result: WindowResult, th: Thresholds) -> list[TowerResult]:
    """Up to top_n towers with failures by failure ratio, among towers with min_tower_calls."""
    active = result.active
    calls = result.tower_calls_n[active]
    failed = result.tower_failed_n[active]
    keep = np.flatnonzero((calls >= th.min_tower_calls) & (failed > 0))
    if not len(keep) or th.top_n <= 0:
        return []
    ratio = failed[keep] / calls[keep]
    # Best candidates by (ratio, failed) first; names only break ties among those few.
    order = np.lexsort((-failed[keep], -ratio))
    cut = order[: th.top_n]
    last = (ratio[cut[-1]], failed[keep][cut[-1]])
    tied = (ratio == last[0]) & (failed[keep] == last[1])
    chosen = np.union1d(cut, np.flatnonzero(tied))
    names = result.tower_names
    cands = [
        TowerResult(names[active[keep[i]]], int(calls[keep[i]]), int(failed[keep[i]]),
                    float(ratio[i]), float(result.active_p95_ms[keep[i]]))
        for i in chosen.tolist()
    ]  # fmt: skip
    cands.sort(key=lambda t: (-t.failure_ratio, -t.failed, t.tower))
    return cands[: th.top_n]
