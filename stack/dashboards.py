"""Grafana dashboards for ECM, built as JSON from code.

`python -m stack.dashboards` writes grafana/dashboards/*.json; `--check` exits 1 when the
committed files differ. Panels read the recording rules of stack/rules.py (default windows) and
the exporter's window gauges, through the provisioned datasource with a fixed uid.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from ecm_common import cli
from stack.grafana_json import (
    DATASOURCE,
    STATUS_MAPPINGS,
    alerts_table,
    dashboard,
    panel,
    series,
    stat,
    target,
    thresholds,
)

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
DASHBOARDS_DIR = ROOT / "grafana" / "dashboards"
OVERVIEW_UID = "ecm-overview"
TOWER_UID = "ecm-tower"
JOB = 'job="ecm-exporter"'


def overview() -> dict[str, Any]:
    """Dashboard "Emergency calls": the whole network at a glance."""
    panels = [
        stat(
            1,
            "Window status",
            "The exporter's classification of each trailing window: OK, WARN or ALERT "
            "(failure ratio and p95 setup latency against its thresholds).",
            "none",
            0,
            f"max by (window) (ecm_window_status{{{JOB}}})",
            legend="{{window}}",
            defaults={
                "mappings": STATUS_MAPPINGS,
                "thresholds": thresholds((1, "orange"), (2, "red")),
            },
        ),
        stat(
            2,
            "Calls per minute",
            "Emergency calls stored per minute, averaged over the last 5 minutes.",
            "cpm",
            6,
            "job:ecm_calls:rate5m * 60",
            defaults={"thresholds": thresholds(), "color": {"mode": "fixed", "fixedColor": "blue"}},
        ),
        stat(
            3,
            "Failure ratio (5m)",
            "Share of emergency calls that failed over the last 5 minutes. Orange above 1% "
            "(success objective 99%), red above 5%.",
            "percentunit",
            12,
            "job:ecm_calls_failed:ratio_rate5m",
            defaults={"thresholds": thresholds((0.01, "orange"), (0.05, "red")), "decimals": 2},
        ),
        stat(
            4,
            "Setup latency p95 (5m)",
            "95th percentile of call setup latency over the last 5 minutes, from the "
            "histogram. Orange above 4 s, red above 8 s.",
            "s",
            18,
            "job:ecm_call_latency_seconds:p95_rate5m",
            defaults={"thresholds": thresholds((4, "orange"), (8, "red")), "decimals": 2},
        ),
        series(
            5,
            "Calls per minute",
            "All stored emergency calls and the failed ones, per minute (5-minute rate).",
            "cpm",
            (0, 5, 12, 8),
            [
                target("job:ecm_calls:rate5m * 60", "all calls", ref="A"),
                target("job:ecm_calls_failed:rate5m * 60", "failed", ref="B"),
            ],
        ),
        series(
            6,
            "Failure ratio",
            "Share of failed calls: the 5-minute rate from the counters, and the exporter's "
            "exact value for each of its windows.",
            "percentunit",
            (12, 5, 12, 8),
            [
                target("job:ecm_calls_failed:ratio_rate5m", "5m rate", ref="A"),
                target(f"ecm_window_failure_ratio{{{JOB}}}", "{{window}} window", ref="B"),
            ],
            defaults={"min": 0},
        ),
        series(
            7,
            "Setup latency p95",
            "95th percentile of call setup latency: from the histogram over 5 minutes, and "
            "the exporter's value for each of its windows.",
            "s",
            (0, 13, 12, 8),
            [
                target("job:ecm_call_latency_seconds:p95_rate5m", "5m histogram", ref="A"),
                target(f"ecm_window_latency_p95_seconds{{{JOB}}}", "{{window}} window", ref="B"),
            ],
            defaults={"min": 0},
        ),
        series(
            8,
            "Failures by reason",
            "Failed calls per minute by failure reason (5-minute rate), stacked.",
            "cpm",
            (12, 13, 12, 8),
            [target("reason:ecm_calls_failed:rate5m * 60", "{{reason}}")],
            stacked=True,
        ),
        panel(
            9,
            "table",
            "Towers, worst first",
            "Every tower's failure ratio, calls per minute and setup p95 over the last 5 "
            "minutes, worst failure ratio first. Click a tower for its dashboard.",
            "percentunit",
            (0, 21, 14, 10),
            [
                target("tower:ecm_calls_failed:ratio_rate5m", ref="A", table=True),
                target("tower:ecm_calls:rate5m * 60", ref="B", table=True),
                target("tower:ecm_call_latency_seconds:p95_rate5m", ref="C", table=True),
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
                        {"id": "thresholds", "value": thresholds((0.1, "orange"), (0.5, "red"))},
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
    ]
    return dashboard(
        OVERVIEW_UID,
        "Emergency calls",
        "Emergency calls across the network: status, volume, failures, latency, towers and alerts.",
        panels,
    )


def tower() -> dict[str, Any]:
    """Dashboard "Emergency calls: one tower", chosen with the `tower` variable."""
    sel = 'tower="$tower"'
    variable = {
        "name": "tower",
        "label": "Tower",
        "type": "query",
        "datasource": DATASOURCE,
        "definition": f"label_values(ecm_calls_total{{{JOB}}}, tower)",
        "query": {
            "query": f"label_values(ecm_calls_total{{{JOB}}}, tower)",
            "refId": "PrometheusVariableQueryEditor-VariableQuery",
        },
        "refresh": 2,
        "sort": 3,
        "multi": False,
        "includeAll": False,
        "current": {},
        "options": [],
        "hide": 0,
    }
    panels = [
        stat(
            1,
            "Calls per minute",
            "Emergency calls through this tower per minute (5-minute rate).",
            "cpm",
            0,
            f"tower:ecm_calls:rate5m{{{sel}}} * 60",
            defaults={"thresholds": thresholds(), "color": {"mode": "fixed", "fixedColor": "blue"}},
        ),
        stat(
            2,
            "Failure ratio (5m)",
            "Share of this tower's calls that failed over the last "
            "5 minutes. Orange above 10%, red above 50% (the tower alert's thresholds).",
            "percentunit",
            6,
            f"tower:ecm_calls_failed:ratio_rate5m{{{sel}}}",
            defaults={"thresholds": thresholds((0.1, "orange"), (0.5, "red")), "decimals": 2},
        ),
        stat(
            3,
            "Setup latency p95 (5m)",
            "95th percentile of this tower's call setup latency over the last 5 minutes.",
            "s",
            12,
            f"tower:ecm_call_latency_seconds:p95_rate5m{{{sel}}}",
            defaults={"thresholds": thresholds((4, "orange"), (8, "red")), "decimals": 2},
        ),
        stat(
            4,
            "Failure ratio by window",
            "The exporter's exact failure ratio of this tower for each of its windows.",
            "percentunit",
            18,
            f"ecm_tower_window_failure_ratio{{{JOB}, {sel}}}",
            legend="{{window}}",
            defaults={"thresholds": thresholds((0.1, "orange"), (0.5, "red")), "decimals": 2},
        ),
        series(
            5,
            "Calls per minute",
            "Calls through this tower and the failed ones, per minute (5-minute rate).",
            "cpm",
            (0, 5, 12, 8),
            [
                target(f"tower:ecm_calls:rate5m{{{sel}}} * 60", "all calls", ref="A"),
                target(f"tower:ecm_calls_failed:rate5m{{{sel}}} * 60", "failed", ref="B"),
            ],
        ),
        series(
            6,
            "Failure ratio",
            "This tower's failure ratio against the whole network's (5-minute rates).",
            "percentunit",
            (12, 5, 12, 8),
            [
                target(f"tower:ecm_calls_failed:ratio_rate5m{{{sel}}}", "$tower", ref="A"),
                target("job:ecm_calls_failed:ratio_rate5m", "all towers", ref="B"),
            ],
            defaults={"min": 0},
        ),
        series(
            7,
            "Setup latency p95",
            "This tower's setup latency p95 against the whole network's (5-minute histograms).",
            "s",
            (0, 13, 12, 8),
            [
                target(f"tower:ecm_call_latency_seconds:p95_rate5m{{{sel}}}", "$tower", ref="A"),
                target("job:ecm_call_latency_seconds:p95_rate5m", "all towers", ref="B"),
            ],
            defaults={"min": 0},
        ),
        series(
            8,
            "Failures by reason",
            "This tower's failed calls per minute by reason (5-minute rate), stacked.",
            "cpm",
            (12, 13, 12, 8),
            [
                target(
                    f"sum by (reason) (rate(ecm_calls_failed_total{{{JOB}, {sel}}}[5m])) * 60",
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


def render() -> dict[str, str]:
    """File name to JSON text of every dashboard."""
    return {
        f"{d['uid']}.json": json.dumps(d, indent=2, ensure_ascii=False) + "\n"
        for d in (overview(), tower())
    }


def stale_files(out_dir: Path) -> list[str]:
    """Names of committed dashboards that differ from the rendering (missing ones included)."""
    return [
        name
        for name, text in render().items()
        if not (out_dir / name).is_file() or (out_dir / name).read_text(encoding="utf-8") != text
    ]


def main(argv: list[str] | None = None) -> int:
    """Write the dashboards, or check that they are up to date."""
    ap = argparse.ArgumentParser(prog="python -m stack.dashboards", description=__doc__)
    ap.add_argument("--out-dir", type=Path, default=DASHBOARDS_DIR)
    ap.add_argument("--check", action="store_true", help="exit 1 when the files are not up to date")
    ns = ap.parse_args(argv)
    if ns.check:
        stale = stale_files(ns.out_dir)
        for name in stale:
            print(f"{ns.out_dir / name} is not up to date: run `make dashboards`", file=sys.stderr)
        return 1 if stale else 0
    ns.out_dir.mkdir(parents=True, exist_ok=True)
    for name, text in render().items():
        (ns.out_dir / name).write_text(text, encoding="utf-8")
        print(f"wrote {ns.out_dir / name}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main, "stack.dashboards"))
