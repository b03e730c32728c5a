"""Judging a window: OK/WARN/ALERT against thresholds, and the worst towers by failure ratio."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

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
    eligible = [t for t in result.towers if t.calls >= th.min_tower_calls and t.failed > 0]
    eligible.sort(key=lambda t: (-t.failure_ratio, -t.failed, t.tower))
    return eligible[: th.top_n]
