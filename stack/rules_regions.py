"""Per-region recording rules and the region and large-network tower alerts, rendered by
`python -m stack.rules` into prometheus/rules/ecm_regions.yml.

At national scale the exporter publishes full detail per region and per tower only what an
operator acts on (docs/metrics.md, series budget): the region rules read the counters summed by
region (towers with detail and each region's other towers, tower=""), and the tower alert for
large networks reads the exporter's tower window gauges, which carry the failing towers. It stays
quiet for towers with their own counters: EcmTowerFailureRatioHigh covers those.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stack.rules import RuleParams, _adaptive, _alert, _ticket, enough_text, firing, num

REGIONS_FILE = "ecm_regions.yml"
REGION_ALERTS = ("EcmRegionFailureRatioHigh", "EcmTowerFailing")


@dataclass(frozen=True)
class RegionRuleParams:
    """Windows and `for:` of the region rules; thresholds come from the SLO (base.slo)."""

    # The regions dashboard's windows; the region alert judges the network's windows.
    rate_window: str = "5m"
    ratio_window: str = "10m"
    # An exporter window (`windows` option) whose tower gauges the dashboard reads.
    tower_window: str = "10m"
    # Exporter windows whose tower gauges the tower alert judges, shortest first; the first
    # also holds a firing alert (hysteresis). Up to 10m, so a verdict ends with its window.
    tower_alert_windows: tuple[str, ...] = ("2m", "5m", "10m")


def _sel(base: RuleParams, metric: str, *matchers: str) -> str:
    inner = ", ".join([f'job="{base.job}"', *matchers])
    return f"{metric}{{{inner}}}"


def region_recording_rules(base: RuleParams, p: RegionRuleParams) -> list[dict[str, str]]:
    """Rates, failure ratios and p95 per region."""
    calls, failed = _sel(base, "ecm_calls_total"), _sel(base, "ecm_calls_failed_total")
    bucket = _sel(base, "ecm_call_latency_seconds_bucket")
    out = []
    # The dashboards' windows, and the alerts' (the network's detect and confirm windows).
    windows = [p.rate_window, p.ratio_window, *base.detect_windows, base.confirm_window]
    windows.append(base.usual_failure_window)
    for w in dict.fromkeys(windows):
        out += [
            {"record": f"region:ecm_calls:rate{w}",
             "expr": f"sum by (job, region) (rate({calls}[{w}]))"},
            {"record": f"region:ecm_calls_failed:rate{w}",
             "expr": f"sum by (job, region) (rate({failed}[{w}]))"},
            {"record": f"region:ecm_calls_failed:ratio_rate{w}",
             "expr": f"region:ecm_calls_failed:rate{w} / region:ecm_calls:rate{w}"},
            {"record": f"region:ecm_calls:increase{w}",
             "expr": f"sum by (job, region) (increase({calls}[{w}]))"},
        ]  # fmt: skip
    w = p.rate_window
    out.append({
        "record": f"region:ecm_call_latency_seconds:p95_rate{w}",
        "expr": f"histogram_quantile(0.95, sum by (job, region, le) (rate({bucket}[{w}])))",
    })  # fmt: skip
    return out


def region_alerts(base: RuleParams, p: RegionRuleParams) -> list[dict[str, Any]]:
    """A region failing, and a failing tower of a network too large for per-tower counters."""
    slo = base.slo
    region = "{{ $labels.region }}"
    pct = "{{ $value | humanizePercentage }}"
    out = []
    for sev, thr, min_calls, for_ in (
        ("critical", slo.alert_failure_ratio, slo.page_min_calls, base.page_for),
        ("warning", slo.warn_failure_ratio, slo.ticket_min_calls, base.ticket_for),
    ):
        # As the network's failure ratio, per region: the shortest window holding enough calls,
        # confirmed over the short one, a page held while over the warning line.
        name = "EcmRegionFailureRatioHigh"
        hold = slo.warn_failure_ratio if sev == "critical" else None
        expr = _adaptive(
            base,
            "region",
            "region:ecm_calls_failed:ratio_rate{w}",
            thr,
            min_calls,
            name,
            sev,
            hold,
            significant=sev == "warning",
        )
        out.append(
            _alert(
                base,
                name,
                _ticket(base, sev, expr, name, "job, region"),
                for_,
                sev,
                f"Region {region} fails more than {num(thr * 100)}% of emergency calls.",
                f"{pct} of emergency calls in region {region} failed (threshold "
                f"{num(thr * 100)}%), over the shortest window of "
                f"{', '.join(base.detect_windows)} holding {enough_text(base, min_calls, sev)}. "
                "Drill down from the regions dashboard to the region's towers.",
                base.keep_firing_for,
            )
        )
    detailed = _sel(base, "ecm_calls_total", 'tower!=""')
    tower = "{{ $labels.tower }}"
    wins = ", ".join(p.tower_alert_windows)
    for sev, thr, guard, for_ in (
        ("critical", slo.alert_tower_failure_ratio, slo.tower_page_min_calls, base.page_for),
        ("warning", slo.warn_tower_failure_ratio, slo.tower_ticket_min_calls, base.ticket_for),
    ):
        # The exporter publishes a tower's window only with min_tower_calls calls.
        min_calls = max(guard, slo.min_tower_calls)
        expr = _tower_gauges(base, p, thr, min_calls, sev, slo.warn_tower_failure_ratio)
        out.append(
            _alert(
                base,
                "EcmTowerFailing",
                f"(\n{_ticket(base, sev, expr, 'EcmTowerFailing', 'job, tower')}\n)\n"
                f"unless on (job, tower)\n  {detailed}",
                for_,
                sev,
                f"Tower {tower} in region {region} fails more than {num(thr * 100)}% of "
                "emergency calls.",
                f"{pct} of emergency calls through tower {tower} (region {region}) failed over "
                f"the shortest of the exporter's {wins} windows holding at least {min_calls} "
                f"calls (threshold {num(thr * 100)}%). The network is too large for per-tower "
                "counters: the exporter publishes its failing towers.",
                base.keep_firing_for,
            )
        )
    return out


def _tower_gauges(
    base: RuleParams,
    p: RegionRuleParams,
    thr: float,
    min_calls: int,
    severity: str,
    hold: float,
) -> str:
    """A published tower over thr in the shortest window holding min_calls calls; once firing,
    held while the first window stays over hold. The window label is dropped: one alert per
    tower, whichever window judged it."""
    on = "job, instance, window, region, tower"
    parts = []
    for w in p.tower_alert_windows:
        ratio = _sel(base, "ecm_tower_window_failure_ratio", f'window="{w}"')
        calls = _sel(base, "ecm_tower_window_calls", f'window="{w}"')
        parts.append(
            f"max without (window) (\n  {ratio} > {num(thr)}\nand on ({on})\n"
            f"  {calls} >= {min_calls}\n)"
        )
    first = _sel(base, "ecm_tower_window_failure_ratio", f'window="{p.tower_alert_windows[0]}"')
    held = firing("EcmTowerFailing", severity)
    parts.append(
        f"(\n  max without (window) ({first} > {num(hold)})\n"
        f"and on (job, instance, region, tower)\n  {held}\n)"
    )
    return "\nor\n".join(parts)


def regions_rules(base: RuleParams, p: RegionRuleParams | None = None) -> dict[str, Any]:
    """The ecm_regions.yml document: one group, its alerts after the series they read."""
    p = p or RegionRuleParams()
    rules = [*region_recording_rules(base, p), *region_alerts(base, p)]
    return {"groups": [{"name": "ecm-regions", "rules": rules}]}
