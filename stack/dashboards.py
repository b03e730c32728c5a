"""Grafana dashboards for ECM, built as JSON from code.

`python -m stack.dashboards` writes grafana/dashboards/*.json; `--check` exits 1 when the
committed files differ. Panels read the recording rules of stack/rules.py (its rate window) and
the exporter's window gauges, through the provisioned datasource with a fixed uid. Threshold
colours come from the SLO home (ecm_common/slo.py) through the same RuleParams as the rules.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from ecm_common import cli
from ecm_common.durations import parse_duration
from exporter.assess import Status
from stack import generated
from stack.dashboards_broadcast import broadcast_dashboard
from stack.dashboards_pager import pager_panels
from stack.dashboards_regions import regions_dashboard
from stack.grafana_json import (
    STATUS_MAPPINGS,
    alerts_table,
    dashboard,
    panel,
    query_variable,
    series,
    stat,
    target,
    thresholds,
)
from stack.rules import RuleParams, num

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
DASHBOARDS_DIR = ROOT / "grafana" / "dashboards"
OVERVIEW_UID = "ecm-overview"
TOWER_UID = "ecm-tower"


def pct(ratio: float) -> str:
    """A ratio as a percentage for descriptions: 0.01 -> '1%'."""
    return f"{num(ratio * 100)}%"


def _spoken(window: str) -> str:
    """'5m' -> '5 minutes', for descriptions."""
    minutes = parse_duration(window) / 60
    return f"{num(minutes)} minutes" if minutes != 1 else "minute"


def overview(p: RuleParams) -> dict[str, Any]:
    """Dashboard "Emergency calls": the whole network at a glance."""
    slo, w, job = p.slo, p.rate_window, f'job="{p.job}"'
    last = _spoken(w)
    ratio_steps = thresholds((slo.warn_failure_ratio, "orange"), (slo.alert_failure_ratio, "red"))
    p95_steps = thresholds((slo.warn_p95_seconds, "orange"), (slo.alert_p95_seconds, "red"))
    tower_steps = thresholds(
        (slo.warn_tower_failure_ratio, "orange"), (slo.alert_tower_failure_ratio, "red")
    )
    panels = [
        stat(
            1,
            "Window status",
            "The exporter's classification of each trailing window: OK, WARN or ALERT "
            "(failure ratio and p95 setup latency against its thresholds).",
            "none",
            0,
            f"max by (window) (ecm_window_status{{{job}}})",
            legend="{{window}}",
            defaults={
                "mappings": STATUS_MAPPINGS,
                "thresholds": thresholds((int(Status.WARN), "orange"), (int(Status.ALERT), "red")),
            },
        ),
        stat(
            2,
            "Calls per minute",
            f"Emergency calls stored per minute, averaged over the last {last}.",
            "cpm",
            6,
            f"job:ecm_calls:rate{w} * 60",
            defaults={"thresholds": thresholds(), "color": {"mode": "fixed", "fixedColor": "blue"}},
        ),
        stat(
            3,
            f"Failure ratio ({w})",
            f"Share of emergency calls that failed over the last {last}. Orange above "
            f"{pct(slo.warn_failure_ratio)} (success objective {pct(slo.success_target)}), red "
            f"above {pct(slo.alert_failure_ratio)}.",
            "percentunit",
            12,
            f"job:ecm_calls_failed:ratio_rate{w}",
            defaults={"thresholds": ratio_steps, "decimals": 2},
        ),
        stat(
            4,
            f"Setup latency p95 ({w})",
            f"95th percentile of call setup latency over the last {last}, from the "
            f"histogram. Orange above {num(slo.warn_p95_seconds)} s, red above "
            f"{num(slo.alert_p95_seconds)} s.",
            "s",
            18,
            f"job:ecm_call_latency_seconds:p95_rate{w}",
            defaults={"thresholds": p95_steps, "decimals": 2},
        ),
        series(
            5,
            "Calls per minute",
            f"All stored emergency calls and the failed ones, per minute ({w} rate).",
            "cpm",
            (0, 5, 12, 8),
            [
                target(f"job:ecm_calls:rate{w} * 60", "all calls", ref="A"),
                target(f"job:ecm_calls_failed:rate{w} * 60", "failed", ref="B"),
            ],
        ),
        series(
            6,
            "Failure ratio",
            f"Share of failed calls: the {w} rate from the counters, and the exporter's "
            "exact value for each of its windows.",
            "percentunit",
            (12, 5, 12, 8),
            [
                target(f"job:ecm_calls_failed:ratio_rate{w}", f"{w} rate", ref="A"),
                target(f"ecm_window_failure_ratio{{{job}}}", "{{window}} window", ref="B"),
            ],
            defaults={"min": 0},
        ),
        series(
            7,
            "Setup latency p95",
            f"95th percentile of call setup latency: from the histogram over {last}, and "
            "the exporter's value for each of its windows.",
            "s",
            (0, 13, 12, 8),
            [
                target(f"job:ecm_call_latency_seconds:p95_rate{w}", f"{w} histogram", ref="A"),
                target(f"ecm_window_latency_p95_seconds{{{job}}}", "{{window}} window", ref="B"),
            ],
            defaults={"min": 0},
        ),
        series(
            8,
            "Failures by reason",
            f"Failed calls per minute by failure reason ({w} rate), stacked.",
            "cpm",
            (12, 13, 12, 8),
            [target(f"reason:ecm_calls_failed:rate{w} * 60", "{{reason}}")],
            stacked=True,
        ),
        panel(
            9,
            "table",
            "Towers, worst first",
            f"Every tower's failure ratio, calls per minute and setup p95 over the last {last}, "
            "worst failure ratio first. Click a tower for its dashboard.",
            "percentunit",
            (0, 21, 14, 10),
            [
                target(f"tower:ecm_calls_failed:ratio_rate{w}", ref="A", table=True),
                target(f"tower:ecm_calls:rate{w} * 60", ref="B", table=True),
                target(f"tower:ecm_call_latency_seconds:p95_rate{w}", ref="C", table=True),
            ],
            defaults={
                "decimals": 2,
                "links": [
                    {
                        "title": "Tower dashboard",
                        "url": f"/d/{TOWER_UID}?var-tower=${{__data.fields.tower}}"
                        "&${__url_time_range}",
                    }
                ],
            },
            overrides=[
                {
                    "matcher": {"id": "byName", "options": "Calls per minute"},
                    "properties": [{"id": "unit", "value": "cpm"}],
                },
                {
                    "matcher": {"id": "byName", "options": "Setup p95"},
                    "properties": [{"id": "unit", "value": "s"}],
                },
                {
                    "matcher": {"id": "byName", "options": "Failure ratio"},
                    "properties": [
                        {"id": "custom.cellOptions", "value": {"type": "color-background"}},
                        {"id": "thresholds", "value": tower_steps},
                    ],
                },
            ],
            options={
                "showHeader": True,
                "footer": {"show": False},
                "sortBy": [{"displayName": "Failure ratio", "desc": True}],
            },
            transformations=[
                {"id": "merge", "options": {}},
                {
                    "id": "organize",
                    "options": {
                        "excludeByName": {"Time": True, "job": True},
                        "renameByName": {
                            "Value #A": "Failure ratio",
                            "Value #B": "Calls per minute",
                            "Value #C": "Setup p95",
                        },
                        "indexByName": {"tower": 0, "Value #A": 1, "Value #B": 2, "Value #C": 3},
                    },
                },
                {"id": "sortBy", "options": {"sort": [{"field": "Failure ratio", "desc": True}]}},
            ],
        ),
        alerts_table(
            10,
            "Firing alerts",
            "ECM alerts firing now in Prometheus (the ALERTS series), with their "
            "severity and the tower or window they concern.",
            (14, 21, 10, 10),
            'ALERTS{alertstate="firing", alertname=~"Ecm.*"}',
        ),
        *pager_panels(first_id=11, y=31),
    ]
    return dashboard(
        OVERVIEW_UID,
        "Emergency calls",
        "Emergency calls across the network: status, volume, failures, latency, towers and alerts.",
        panels,
    )


def tower(p: RuleParams) -> dict[str, Any]:
    """Dashboard "Emergency calls: one tower", chosen with the `tower` variable."""
    slo, w, job = p.slo, p.rate_window, f'job="{p.job}"'
    last = _spoken(w)
    p95_steps = thresholds((slo.warn_p95_seconds, "orange"), (slo.alert_p95_seconds, "red"))
    tower_steps = thresholds(
        (slo.warn_tower_failure_ratio, "orange"), (slo.alert_tower_failure_ratio, "red")
    )
    sel = 'tower="$tower"'
    variable = query_variable("tower", "Tower", f"label_values(ecm_calls_total{{{job}}}, tower)")
    panels = [
        stat(
            1,
            "Calls per minute",
            f"Emergency calls through this tower per minute ({w} rate).",
            "cpm",
            0,
            f"tower:ecm_calls:rate{w}{{{sel}}} * 60",
            defaults={"thresholds": thresholds(), "color": {"mode": "fixed", "fixedColor": "blue"}},
        ),
        stat(
            2,
            f"Failure ratio ({w})",
            f"Share of this tower's calls that failed over the last {last}. Orange above "
            f"{pct(slo.warn_tower_failure_ratio)}, red above {pct(slo.alert_tower_failure_ratio)} "
            "(the tower alert's thresholds).",
            "percentunit",
            6,
            f"tower:ecm_calls_failed:ratio_rate{w}{{{sel}}}",
            defaults={"thresholds": tower_steps, "decimals": 2},
        ),
        stat(
            3,
            f"Setup latency p95 ({w})",
            f"95th percentile of this tower's call setup latency over the last {last}.",
            "s",
            12,
            f"tower:ecm_call_latency_seconds:p95_rate{w}{{{sel}}}",
            defaults={"thresholds": p95_steps, "decimals": 2},
        ),
        stat(
            4,
            "Failure ratio by window",
            "The exporter's exact failure ratio of this tower for each of its windows.",
            "percentunit",
            18,
            f"ecm_tower_window_failure_ratio{{{job}, {sel}}}",
            legend="{{window}}",
            defaults={"thresholds": tower_steps, "decimals": 2},
        ),
        series(
            5,
            "Calls per minute",
            f"Calls through this tower and the failed ones, per minute ({w} rate).",
            "cpm",
            (0, 5, 12, 8),
            [
                target(f"tower:ecm_calls:rate{w}{{{sel}}} * 60", "all calls", ref="A"),
                target(f"tower:ecm_calls_failed:rate{w}{{{sel}}} * 60", "failed", ref="B"),
            ],
        ),
        series(
            6,
            "Failure ratio",
            f"This tower's failure ratio against the whole network's ({w} rates).",
            "percentunit",
            (12, 5, 12, 8),
            [
                target(f"tower:ecm_calls_failed:ratio_rate{w}{{{sel}}}", "$tower", ref="A"),
                target(f"job:ecm_calls_failed:ratio_rate{w}", "all towers", ref="B"),
            ],
            defaults={"min": 0},
        ),
        series(
            7,
            "Setup latency p95",
            f"This tower's setup latency p95 against the whole network's ({w} histograms).",
            "s",
            (0, 13, 12, 8),
            [
                target(f"tower:ecm_call_latency_seconds:p95_rate{w}{{{sel}}}", "$tower", ref="A"),
                target(f"job:ecm_call_latency_seconds:p95_rate{w}", "all towers", ref="B"),
            ],
            defaults={"min": 0},
        ),
        series(
            8,
            "Failures by reason",
            f"This tower's failed calls per minute by reason ({w} rate), stacked.",
            "cpm",
            (12, 13, 12, 8),
            [
                target(
                    f"sum by (reason) (rate(ecm_calls_failed_total{{{job}, {sel}}}[{w}])) * 60",
                    "{{reason}}",
                )
            ],
            stacked=True,
        ),
        alerts_table(
            9,
            "Firing alerts for this tower",
            "ECM alerts firing now that name this tower.",
            (0, 21, 24, 6),
            f'ALERTS{{alertstate="firing", {sel}}}',
        ),
    ]
    return dashboard(
        TOWER_UID,
        "Emergency calls: one tower",
        "One tower's emergency calls: volume, failures by reason, latency, alerts.",
        panels,
        [variable],
    )


def render(p: RuleParams | None = None) -> dict[str, str]:
    """File name to JSON text of every dashboard, for the rules' parameters (default: SLO)."""
    p = p or RuleParams()
    return {
        f"{d['uid']}.json": json.dumps(d, indent=2, ensure_ascii=False) + "\n"
        for d in (overview(p), tower(p), regions_dashboard(p), broadcast_dashboard())
    }


def stale_files(out_dir: Path, p: RuleParams | None = None) -> list[str]:
    """Names of committed dashboards that differ from the rendering (missing ones included)."""
    return generated.stale(render(p), out_dir)


def main(argv: list[str] | None = None) -> int:
    """Write the dashboards, or check that they are up to date."""
    ap = argparse.ArgumentParser(prog="python -m stack.dashboards", description=__doc__)
    ap.add_argument("--out-dir", type=Path, default=DASHBOARDS_DIR)
    ap.add_argument("--check", action="store_true", help="exit 1 when the files are not up to date")
    ns = ap.parse_args(argv)
    return generated.write_or_check(render(), ns.out_dir, check=ns.check, target="dashboards")


if __name__ == "__main__":
    sys.exit(cli.run(main, "stack.dashboards"))
