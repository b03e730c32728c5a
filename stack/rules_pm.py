"""Alerting rules on the RAN PM KPIs published by the ECM API (ecm_pm_* gauges), rendered by
`python -m stack.rules` into prometheus/rules/ecm_pm_alerts.yml.

Thresholds come from the PM home (ecm_common/slo_pm.py): PRB utilisation over 85% for two
granularity periods warns and over 95% is critical; drop rate over 1% warns and over 2% is
critical; silent cells warn, and a tower's worth of them at once pages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ecm_common.durations import format_duration
from ecm_common.slo_pm import PM_SLO, VENDOR_PERIOD_S, PmSlo
from stack.rules import RuleParams, _alert, num

PM_ALERTS_FILE = "ecm_pm_alerts.yml"
PM_ALERTS = (
    "EcmPmPrbUtilizationHigh",
    "EcmPmDropRateHigh",
    "EcmPmCellsSilent",
    "EcmApiDown",
    "EcmPmRollupStale",
)


@dataclass(frozen=True)
class PmRuleParams:
    """Tunables of the PM alerts; thresholds from PM_SLO."""

    job: str = "ecm-api"
    slo: PmSlo = PM_SLO
    # "over 85% for two periods": two vendor periods of 15 minutes.
    prb_warning_for: str = format_duration(2 * VENDOR_PERIOD_S)
    prb_critical_for: str = format_duration(VENDOR_PERIOD_S)
    drop_warning_for: str = format_duration(VENDOR_PERIOD_S)
    drop_critical_for: str = format_duration(VENDOR_PERIOD_S)
    silent_for: str = "5m"
    api_down_for: str = "2m"
    rollup_stale_after_seconds: int = 300
    rollup_stale_for: str = "5m"


def _sel(p: PmRuleParams, metric: str, **labels: str) -> str:
    inner = ", ".join([f'job="{p.job}"', *(f'{k}="{v}"' for k, v in labels.items())])
    return f"{metric}{{{inner}}}"


def pm_alerts(base: RuleParams, p: PmRuleParams | None = None) -> list[dict[str, Any]]:
    """The PM alerts (runbook links from base)."""
    p = p or PmRuleParams()
    slo = p.slo
    over = "ecm_pm_cells_over_threshold"
    cells = "{{ $value }} cell(s)"
    out = []
    for level, ratio, for_ in (
        ("warning", slo.warn_prb_util_ratio, p.prb_warning_for),
        ("critical", slo.alert_prb_util_ratio, p.prb_critical_for),
    ):
        out.append(
            _alert(
                base,
                "EcmPmPrbUtilizationHigh",
                f"{_sel(p, over, kpi='prb_utilization', level=level)} > 0",
                for_,
                level,
                f"{cells} average over {num(ratio * 100)}% downlink PRB utilisation.",
                f"For {for_}, {cells} averaged more than {num(ratio * 100)}% of their downlink "
                "PRBs over the KPI window: users there get less throughput and new calls may "
                "be refused. The busiest cells are in ecm_pm_cell_dl_prb_utilization_ratio.",
            )
        )
    for level, ratio, for_ in (
        ("warning", slo.warn_drop_ratio, p.drop_warning_for),
        ("critical", slo.alert_drop_ratio, p.drop_critical_for),
    ):
        out.append(
            _alert(
                base,
                "EcmPmDropRateHigh",
                f"{_sel(p, over, kpi='drop', level=level)} > 0",
                for_,
                level,
                f"{cells} drop more than {num(ratio * 100)}% of their calls.",
                f"For {for_}, {cells} averaged a drop rate over {num(ratio * 100)}% over the "
                "KPI window (regulators cap dropped calls at 2%). The worst cells are in "
                "ecm_pm_cell_drop_ratio.",
            )
        )
    silent = _sel(p, "ecm_pm_cells_silent")
    out += [
        _alert(
            base,
            "EcmPmCellsSilent",
            f"{silent} > 0",
            p.silent_for,
            "warning",
            "{{ $value }} cell(s) sent no PM event for two periods.",
            f"{{{{ $value }}}} cell(s) sent no PM event for {slo.silent_periods} granularity "
            "periods: their site, its backhaul or the PM collection is down.",
        ),
        _alert(
            base,
            "EcmPmCellsSilent",
            f"{silent} >= {slo.tower_cells}",
            p.silent_for,
            "critical",
            "{{ $value }} cells are silent at once: a tower's worth.",
            f"{{{{ $value }}}} cells sent no PM event for {slo.silent_periods} periods, at least "
            f"the {slo.tower_cells} cells of a tower: a site (or a whole area) is likely off "
            "the air, and emergency calls there fail.",
        ),
        _alert(
            base,
            "EcmApiDown",
            f'up{{job="{p.job}"}} == 0',
            p.api_down_for,
            "critical",
            "The ECM API {{ $labels.instance }} cannot be scraped.",
            f"Prometheus failed to scrape {{{{ $labels.instance }}}} for {p.api_down_for}: PM "
            "events are not being ingested and the PM KPIs are not published.",
        ),
        _alert(
            base,
            "EcmPmRollupStale",
            f"time() - {_sel(p, 'ecm_pm_rollup_last_success_timestamp_seconds')}"
            f" > {p.rollup_stale_after_seconds}",
            p.rollup_stale_for,
            "warning",
            "The PM KPI rollups of {{ $labels.instance }} are stale.",
            "The last successful rollup job run was {{ $value | humanizeDuration }} ago: the "
            "dashboard and the PM gauges lag behind the stored events.",
        ),
    ]
    return out


def pm_alerting_rules(base: RuleParams, p: PmRuleParams | None = None) -> dict[str, Any]:
    """The PM alert rule file: one group."""
    return {"groups": [{"name": "ecm.pm", "rules": pm_alerts(base, p)}]}
