"""Judging a window: OK/WARN/ALERT against thresholds, and the worst towers by failure ratio."""

from __future__ import annotations

import enum
import math

import numpy as np
from pydantic import Field, model_validator

from ecm_common.config import StrictModel
from ecm_common.errors import ConfigError
from ecm_common.slo import SLO, Slo, check_pair
from exporter.rollup import TowerResult, WindowResult

# Upper bounds that keep every value meaningful: a p95 over 10 minutes is no call setup.
MAX_P95_SECONDS = 600.0
MAX_CALLS = 1_000_000_000


class Status(enum.IntEnum):
    """Window classification; the value is what ecm_window_status publishes."""

    OK = 0
    WARN = 1
    ALERT = 2


class Thresholds(StrictModel):
    """Classification limits; defaults are the one home of thresholds (ecm_common/slo.py)."""

    warn_failure_ratio: float = Field(default=SLO.warn_failure_ratio, gt=0, le=1)
    alert_failure_ratio: float = Field(default=SLO.alert_failure_ratio, gt=0, le=1)
    warn_p95_seconds: float = Field(default=SLO.warn_p95_seconds, gt=0, le=MAX_P95_SECONDS)
    alert_p95_seconds: float = Field(default=SLO.alert_p95_seconds, gt=0, le=MAX_P95_SECONDS)
    min_calls: int = Field(default=SLO.min_calls, ge=0, le=MAX_CALLS)
    min_tower_calls: int = Field(default=SLO.min_tower_calls, ge=1, le=MAX_CALLS)
    top_n: int = Field(default=5, ge=0, le=1000)

    @model_validator(mode="after")
    def _warn_below_alert(self) -> Thresholds:
        # The rule builder applies the same check to the same pairs.
        try:
            check_pair("failure_ratio", self.warn_failure_ratio, self.alert_failure_ratio, 1.0)
            check_pair("p95_seconds", self.warn_p95_seconds, self.alert_p95_seconds)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return self

    @classmethod
    def from_slo(cls, slo: Slo, top_n: int = 5) -> Thresholds:
        """The exporter's limits for an SLO (the defaults are SLO itself)."""
        shared = {name: getattr(slo, name) for name in cls.model_fields if hasattr(slo, name)}
        return cls.model_validate({**shared, "top_n": top_n})


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
