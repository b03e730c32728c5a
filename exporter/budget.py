"""The series budget: which towers get per-tower series, and how many series that makes at most.

Full detail is published per region; per tower only what an operator acts on: the top_n worst
towers and the failing towers of each window, and per-tower counters and gauges for the towers
with detail (every tower while the network has at most tower_detail_max towers, and the towers
listed in detail_towers). docs/metrics.md states the same formula as series_budget().
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import Field, field_validator

from ecm_common.config import StrictModel
from exporter.metrics import BUCKET_LE, QUERIES, REBUILD_REASONS, SELF_DEFS, SKIP_REASONS

MAX_DETAIL_TOWERS = 10_000  # towers listed in detail_towers
MAX_TOWER_ID = 200  # characters of a listed tower id

# Series per counter label set: calls, failed per reason, histogram buckets + _count + _sum.
HISTOGRAM_SERIES = len(BUCKET_LE) + 2
# Self-metric series: one per plain gauge or counter, except those with labels.
_LABELLED = 2 + 2 + len(SKIP_REASONS) + len(REBUILD_REASONS) + 3 * len(QUERIES)
SELF_SERIES = len(SELF_DEFS) - 7 + _LABELLED  # TH_RATIO, TH_P95, skipped, rebuilds, 3 query


class Budget(StrictModel):
    """How many towers get per-tower series (the YAML keys, ECM_* variables and flags)."""

    # Per-tower counters and gauges for every tower while the network has at most this many.
    tower_detail_max: int = Field(default=1000, ge=0, le=1_000_000)
    # Towers that always get per-tower counters and gauges, whatever the network's size.
    detail_towers: tuple[str, ...] = ()
    # Failing towers published per window at most (worst first).
    failing_towers_max: int = Field(default=500, ge=0, le=100_000)

    @field_validator("detail_towers", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("detail_towers")
    @classmethod
    def _bounded(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(value) > MAX_DETAIL_TOWERS:
            raise ValueError(f"at most {MAX_DETAIL_TOWERS} towers")
        if any(not t or len(t) > MAX_TOWER_ID for t in value):
            raise ValueError(f"tower ids are 1 to {MAX_TOWER_ID} characters")
        return value


@dataclass(frozen=True)
class Sizes:
    """What the series count depends on."""

    towers: int  # T: known towers
    detail: int  # D: towers with detail
    regions: int  # G
    reasons: int  # R
    windows: int  # W
    top_n: int  # N
    failing_max: int  # F


def series_budget(s: Sizes) -> int:
    """The most series the exposition can hold for these sizes."""
    per_counter_set = 1 + s.reasons + HISTOGRAM_SERIES
    counters = (s.detail + s.regions) * per_counter_set
    overall = s.windows * (6 + 2 * s.reasons)
    regions = s.windows * s.regions * (5 + s.reasons)
    published = min(s.towers, s.detail + s.top_n + s.failing_max)
    towers = s.windows * (4 * published + min(s.top_n, s.towers))
    return counters + overall + regions + towers + SELF_SERIES


FORMULA = (
    f"(D + G) x (R + {1 + HISTOGRAM_SERIES}) + W x (6 + 2R) + W x G x (5 + R) "
    f"+ W x (4 x min(T, D + N + F) + min(N, T)) + {SELF_SERIES}"
)


def describe(s: Sizes) -> str:
    """The formula with its values, for the start-up log line."""
    return (
        f"series budget {FORMULA} = {series_budget(s):,} with T={s.towers:,} towers, "
        f"D={s.detail:,} with detail, G={s.regions} regions, R={s.reasons} reasons, "
        f"W={s.windows} windows, N={s.top_n}, F={s.failing_max}"
    )
