"""The one home of every alert threshold and service-level objective.

The exporter's defaults, its --help and its classifier, the rule builder (stack/rules.py) and
the dashboard builder (stack/dashboards.py) all read SLO; tests/stack check that the committed
rule files and dashboards agree with it. The values are the domain's targets: call success
below 99% warns and below 95% is critical; setup latency p95 over 4 s warns and over 8 s is
critical; a window needs 20 calls to be judged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ecm_common.errors import ConfigError

# Alerts computed from the calls themselves (stack/rules.py builds them; a scenario may name the
# ones it raises).
DATA_ALERTS = (
    "EcmWindowWarn",
    "EcmWindowAlert",
    "EcmCallFailureRatioHigh",
    "EcmTowerFailureRatioHigh",
    "EcmCallLatencyP95High",
    "EcmNoCalls",
    "EcmCallSuccessBudgetBurn",
)


@dataclass(frozen=True)
class BurnRateWindow:
    """One multiwindow burn-rate condition: both windows burn faster than factor x budget."""

    long: str
    short: str
    factor: float


@dataclass(frozen=True)
class Slo:
    """Thresholds and objectives; warn is always strictly below alert."""

    # Share of failed calls (0..1) over a window.
    warn_failure_ratio: float = 0.01
    alert_failure_ratio: float = 0.05
    # Call setup latency p95, seconds.
    warn_p95_seconds: float = 4.0
    alert_p95_seconds: float = 8.0
    # Calls a window (network-wide) and a tower need before they are judged.
    min_calls: int = 20
    min_tower_calls: int = 20
    # A tower carries few calls, so its ratio is noisy: warn at 10%, page when most calls fail.
    warn_tower_failure_ratio: float = 0.10
    alert_tower_failure_ratio: float = 0.50
    # SRE workbook multiwindow, multi-burn-rate alerts on the call success objective.
    success_target: float = 0.99
    burn_page: tuple[BurnRateWindow, ...] = field(
        default=(BurnRateWindow("1h", "5m", 14.4), BurnRateWindow("6h", "30m", 6.0))
    )
    burn_ticket: tuple[BurnRateWindow, ...] = field(
        default=(BurnRateWindow("1d", "2h", 3.0), BurnRateWindow("3d", "6h", 1.0))
    )

    def __post_init__(self) -> None:
        """Refuse thresholds that could never classify anything sensibly."""
        check_pair("failure_ratio", self.warn_failure_ratio, self.alert_failure_ratio, top=1.0)
        check_pair(
            "tower_failure_ratio",
            self.warn_tower_failure_ratio,
            self.alert_tower_failure_ratio,
            top=1.0,
        )
        check_pair("p95_seconds", self.warn_p95_seconds, self.alert_p95_seconds)
        if not 0 < self.success_target < 1:
            raise ConfigError("slo success_target: need a value between 0 and 1")
        if self.min_calls < 1 or self.min_tower_calls < 1:
            raise ConfigError("slo min_calls and min_tower_calls must be >= 1")
        for bw in (*self.burn_page, *self.burn_ticket):
            if not bw.factor > 0:
                raise ConfigError(f"slo burn rate {bw.long}/{bw.short}: factor must be positive")

    @property
    def error_budget(self) -> float:
        """The share of calls allowed to fail."""
        return round(1 - self.success_target, 10)


def check_pair(name: str, warn: float, alert: float, top: float | None = None) -> None:
    """ConfigError unless 0 < warn < alert (<= top): the one rule for every warn/alert pair."""
    if not 0 < warn < alert or (top is not None and alert > top):
        limit = f" <= {top:g}" if top is not None else ""
        raise ConfigError(
            f"warn_{name} ({warn:g}) must be above 0 and below alert_{name} ({alert:g}){limit}"
        )


SLO = Slo()
