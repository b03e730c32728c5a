"""Judging a window: OK/WARN/ALERT against thresholds, the worst towers by failure ratio, and
which towers are failing (and so published even when the network is too big for every tower)."""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from pydantic import Field, model_validator

from ecm_common.config import StrictModel
from ecm_common.errors import ConfigError
from ecm_common.slo import SLO, Slo, check_pair
from exporter.rollup import TowerResult, WindowResult

# Upper bounds that keep every value meaningful: a p95 over 10 minutes is no call setup.
MAX_P95_SECONDS = 600.0
MAX_CALLS = 1_000_000_000

IntArray = npt.NDArray[np.int64]


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
    # A tower with min_tower_calls calls failing more than this is failing: always published.
    warn_tower_failure_ratio: float = Field(default=SLO.warn_tower_failure_ratio, gt=0, le=1)
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
    return classify_values(result.calls, result.failed, result.p95_ms, th)


def classify_values(calls: int, failed: int, p95_ms: float, th: Thresholds) -> Status:
    """classify() for a window's or a region's calls, failed calls and p95 in ms."""
    if calls == 0 or calls < th.min_calls:
        return Status.OK
    ratio = failed / calls
    p95_s = p95_ms / 1000.0 if not math.isnan(p95_ms) else 0.0
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
    names, regions = result.tower_names, result.tower_regions
    cands = [
        TowerResult(names[active[keep[i]]], int(calls[keep[i]]), int(failed[keep[i]]),
                    float(ratio[i]), float(result.active_p95_ms[keep[i]]),
                    regions[active[keep[i]]] if regions else "")
        for i in chosen.tolist()
    ]  # fmt: skip
    cands.sort(key=lambda t: (-t.failure_ratio, -t.failed, t.tower))
    return cands[: th.top_n]


def _top(
    cand: IntArray, calls: IntArray, failed: IntArray, k: int, names: Sequence[str]
) -> IntArray:
    """The k candidates ranked first by (failure ratio, failed calls) descending, then name."""
    if k <= 0 or not len(cand):
        return np.zeros(0, np.int64)
    ratio = failed[cand] / calls[cand]
    order = np.lexsort((-failed[cand], -ratio))
    if len(order) <= k:
        return np.sort(cand)
    last = order[k - 1]
    key_r, key_f = ratio[last], failed[cand][last]
    better = (ratio > key_r) | ((ratio == key_r) & (failed[cand] > key_f))
    tied = np.flatnonzero((ratio == key_r) & (failed[cand] == key_f))
    # Names decide only among the towers tied at the cut.
    room = k - int(np.count_nonzero(better))
    by_name = sorted(tied.tolist(), key=lambda i: names[int(cand[i])])[:room]
    return np.sort(np.concatenate([cand[better], cand[np.asarray(by_name, np.int64)]]))


def towers_to_publish(
    calls: IntArray, failed: IntArray, names: Sequence[str], th: Thresholds, failing_max: int
) -> IntArray:
    """Sorted indices of the top_n worst towers and of up to failing_max failing towers (with
    min_tower_calls calls and a failure ratio above warn_tower_failure_ratio, worst first).

    One pass over the towers that failed a call in the window; the rest is over those only.
    """
    cand = np.flatnonzero(failed)
    cand = cand[calls[cand] >= th.min_tower_calls]
    worst = _top(cand, calls, failed, th.top_n, names)
    failing = cand[failed[cand] / calls[cand] > th.warn_tower_failure_ratio]
    return np.union1d(worst, _top(failing, calls, failed, failing_max, names))
