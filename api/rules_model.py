"""A user's alert rule, structured, and the PromQL it stands for.

What it watches: the call failure ratio, the p95 call latency (seconds), the call volume drop
against the same window a day earlier (0..1), or a PM KPI (network-wide gauges of the API). Its
scope is all calls, one tower or one region (the exporter's counter labels). Values are bound
by the model (names, label values, durations), so no text a user sends reaches PromQL unchecked.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from ecm_common.config import StrictModel
from ecm_common.durations import parse_duration

ALERT_PREFIX = "EcmRule"
MAX_WINDOW_S = 86400.0
Comparison = Literal[">", ">=", "<", "<="]
PM_KPIS: dict[str, str] = {
    "dl_prb_utilization": "ecm_pm_dl_prb_utilization_ratio",
    "ul_prb_utilization": "ecm_pm_ul_prb_utilization_ratio",
    "drop": "ecm_pm_drop_ratio",
    "rrc_connected_users": "ecm_pm_rrc_connected_users",
}
Kpi = Literal["dl_prb_utilization", "ul_prb_utilization", "drop", "rrc_connected_users"]
LabelValue = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")]


def _whole_duration(value: str, what: str, low: float) -> str:
    try:
        seconds = parse_duration(value, max_seconds=MAX_WINDOW_S)
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None
    if seconds < low or seconds % 1:
        raise ValueError(f"{what} must be whole seconds from {low:g}s to 1d")
    return f"{int(seconds)}s"


class RuleSpec(StrictModel):
    """The structured rule a client sends (POST, PUT) and reads back."""

    name: Annotated[str, Field(pattern=r"^[A-Z][A-Za-z0-9]{1,63}$")]
    what: Literal["failure_ratio", "p95_latency", "volume_drop", "pm_kpi"]
    kpi: (
        Literal["dl_prb_utilization", "ul_prb_utilization", "drop", "rrc_connected_users"] | None
    ) = None
    scope: Literal["all", "tower", "region"] = "all"
    target: LabelValue | None = None
    comparison: Comparison = ">"
    threshold: float
    window: str = "5m"
    for_: str = Field("5m", alias="for")
    severity: Literal["critical", "warning", "info"] = "warning"
    summary: Annotated[str, Field(min_length=1, max_length=200)]
    enabled: bool = True

    @field_validator("window")
    @classmethod
    def _window(cls, value: str) -> str:
        return _whole_duration(value, "window", 60)

    @field_validator("for_")
    @classmethod
    def _for(cls, value: str) -> str:
        return _whole_duration(value, "for", 0)

    @field_validator("threshold")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("threshold must be a finite number")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> RuleSpec:
        if (self.scope == "all") != (self.target is None):
            raise ValueError("target names the tower or region, and only for those scopes")
        if (self.what == "pm_kpi") != (self.kpi is not None):
            raise ValueError("kpi is required with what=pm_kpi, and only then")
        if self.what == "pm_kpi" and self.scope != "all":
            raise ValueError("PM KPIs are network-wide: scope must be all")
        if self.what in ("failure_ratio", "volume_drop") and not 0 <= self.threshold <= 1:
            raise ValueError(f"{self.what} is a ratio: threshold must be within 0..1")
        return self

    @property
    def alert(self) -> str:
        """The alert's name in Prometheus."""
        return ALERT_PREFIX + self.name

    def expr(self) -> str:
        """The PromQL condition."""
        return f"{self.value_expr()} {self.comparison} {self.threshold!r}"

    def value_expr(self) -> str:
        """The PromQL value the threshold is compared with."""
        w = self.window
        sel = ""
        if self.scope != "all":
            sel = f'{self.scope}="{self.target}"'
        if self.what == "failure_ratio":
            return (
                f"sum(rate(ecm_calls_failed_total{{{sel}}}[{w}]))"
                f" / sum(rate(ecm_calls_total{{{sel}}}[{w}]))"
            )
        if self.what == "p95_latency":
            return (
                "histogram_quantile(0.95, sum by (le) "
                f"(rate(ecm_call_latency_seconds_bucket{{{sel}}}[{w}])))"
            )
        if self.what == "volume_drop":
            return (
                f"1 - sum(rate(ecm_calls_total{{{sel}}}[{w}]))"
                f" / sum(rate(ecm_calls_total{{{sel}}}[{w}] offset 1d))"
            )
        assert self.kpi is not None
        return f"avg_over_time({PM_KPIS[self.kpi]}[{w}])"
