"""The one home of every alert threshold and service-level objective.

The exporter's defaults, its --help and its classifier, the rule builder (stack/rules.py) and
the dashboard builder (stack/dashboards.py) all read SLO; tests/stack check that the committed
rule files and dashboards agree with it. The values are the domain's targets: call success
below 99% warns and below 95% is critical; setup latency p95 over 4 s warns and over 8 s is
critical; a window needs 20 calls to be judged.

Detection (docs/DETECTION.md): a page must reach its receiver within 2 minutes of an outage's
start, so every call alert judges the shortest of DETECT_WINDOWS that holds enough calls for the
judgement to be sound against the baseline failure rate (0.2-0.5%, docs/DOMAIN.md), and the SLO burn
rate is also read over minutes, not only hours.
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
    "EcmTowerSilent",
    "EcmCallSuccessBudgetBurn",
)
# Volume-adaptive windows, shortest first: a busy network is judged over a minute, a quiet one
# over longer windows, each only once it holds the minimum calls of the alert's severity.
DETECT_WINDOWS = ("1m", "5m", "15m", "1h")
# A condition over a window longer than this is confirmed over this one (still true now), so
# that an alert resets within about 2 minutes of the end whatever window raised it.
CONFIRM_WINDOW = "2m"


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
    # The workbook's factors (14.4x, 6x, 1x) over windows compressed to minutes: an emergency
    # call outage cannot wait for an hour-long window to fill. Each condition pairs a long window
    # that guards (enough budget burnt) with a short one that confirms (still burning); short
    # windows of at most 2m let every alert resolve within 5 minutes of the end. 2x over 5m
    # tickets a partial failure (8% of calls) within two minutes.
    burn_page: tuple[BurnRateWindow, ...] = field(
        default=(BurnRateWindow("5m", "1m", 14.4), BurnRateWindow("15m", "2m", 6.0))
    )
    burn_ticket: tuple[BurnRateWindow, ...] = field(
        default=(BurnRateWindow("5m", "1m", 2.0), BurnRateWindow("1h", "2m", 1.0))
    )
    # Minimum calls in a window before it is judged, per alert and severity. Chosen so that the
    # baseline (0.5% failed, 2.9% of calls slower than 4 s, 0.15% slower than 8 s) rarely crosses
    # the line by chance: e.g. 3000 calls at 0.5% expect 15 failures, and more than 30 (the 1%
    # line) has a probability of about 1e-4 per window. Judged every 10 s that still came to a
    # false ticket a day at the rate where a window holds just 3000 calls, so a failure-ratio
    # ticket's window also needs its failures ticket_sigmas over a healthy network's worst
    # baseline_failure_ratio (stack.rules.guard).
    page_min_calls: int = 200
    ticket_min_calls: int = 3000
    tower_page_min_calls: int = 6
    tower_ticket_min_calls: int = 50
    latency_page_min_calls: int = 100
    latency_ticket_min_calls: int = 1000
    burn_min_calls: int = 200
    # The ticket's lines (2% and 1% at the 99% objective) sit near the baseline: they need the
    # calls a 1% ticket needs. 200 let a network's first minutes (an hour-long window holding
    # a few hundred calls) raise a false ticket in the real-time run.
    burn_ticket_min_calls: int = 3000
    # A failure-ratio or budget-burn ticket also judges a window under its minimum calls (the
    # shortest window, so a busy network's ticket is not diluted by the calls before the
    # failures) once it holds significant_min_calls and its failed calls exceed what the
    # network's own usual failure ratio expects (stack.rules.guard) by ticket_sigmas on the
    # square-root scale. A normal z-score over a fixed 0.5% from 1000 calls raised about 100
    # false tickets a year at 20 calls/s; with both paths, at most 3 a year at 0.5-100 calls/s
    # (python -m tests.stack.detection.chance).
    ticket_sigmas: float = 4.5
    significant_min_calls: int = 1000
    # The highest failure ratio of a healthy network (docs/DOMAIN.md: 0.2-0.5%).
    baseline_failure_ratio: float = 0.005
    # Failed calls a tower's short window needs to confirm a longer window's verdict.
    tower_confirm_failed: int = 2
    # Silence: a window with no call at all is an outage once the usual traffic (the last hour's
    # rate) would have brought this many calls into it (e^-15: about 3e-7 by chance).
    silence_expected_calls: float = 15.0

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
        for name in (
            "min_calls", "min_tower_calls", "page_min_calls", "ticket_min_calls",
            "tower_page_min_calls", "tower_ticket_min_calls", "latency_page_min_calls",
            "latency_ticket_min_calls", "burn_min_calls", "burn_ticket_min_calls",
            "significant_min_calls",
        ):  # fmt: skip
            if getattr(self, name) < 1:
                raise ConfigError(f"slo {name} must be >= 1")
        if not 0 < self.baseline_failure_ratio < self.warn_failure_ratio:
            raise ConfigError(
                "slo baseline_failure_ratio: need a value above 0 and below warn_failure_ratio"
            )
        if not self.ticket_sigmas > 0:
            raise ConfigError("slo ticket_sigmas must be positive")
        if not self.silence_expected_calls > 0:
            raise ConfigError("slo silence_expected_calls must be positive")
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
