"""Dashboard "Emergency calls by region": every region, then one region's towers to act on.

At national scale per-tower counters are not published (docs/metrics.md, series budget): the
region panels read the region recording rules (stack/rules_regions.py), the tower panels the
exporter's tower gauges, which hold the failing and the worst towers, region-labelled. A tower
with its own counters links to the one-tower dashboard.
"""

from __future__ import annotations

from typing import Any

from stack.grafana_json import dashboard, panel, query_variable, series, target, thresholds
from stack.rules import RuleParams
from stack.rules_regions import RegionRuleParams

REGIONS_UID = "ecm-regions"


def _table(
    pid: int,
    title: str,
    description: str,
    pos: tuple[int, int, int, int],
    key: str,
    columns: list[tuple[str, str, str]],
    link: dict[str, str],
    ratio_steps: dict[str, Any],
) -> dict[str, Any]:
    """An instant table, one row per key: (expr, column name, unit) columns, worst ratio first."""
    refs = "ABCDEFGH"
    return panel(
        pid,
        "table",
        title,
        description,
        "none",
        pos,
        [target(expr, ref=refs[i], table=True) for i, (expr, _, _) in enumerate(columns)],
        defaults={"decimals": 2, "links": [link]},
        overrides=[
            {
                "matcher": {"id": "byName", "options": name},
                "properties": [{"id": "unit", "value": unit}]
                + (
                    [
                        {"id": "custom.cellOptions", "value": {"type": "color-background"}},
                        {"id": "thresholds", "value": ratio_steps},
                    ]
                    if i == 0
                    else []
                ),
            }
            for i, (_, name, unit) in enumerate(columns)
        ],
        options={
            "showHeader": True,
            "footer": {"show": False},
            "sortBy": [{"displayName": columns[0][1], "desc": True}],
        },
        transformations=[
            {"id": "merge", "options": {}},
            {
                "id": "organize",
                "options": {
                    "excludeByName": {"Time": True, "job": True, "instance": True, "window": True},
                    "renameByName": {f"Value #{refs[i]}": c[1] for i, c in enumerate(columns)},
                    "indexByName": {key: 0}
                    | {f"Value #{refs[i]}": i + 1 for i in range(len(columns))},
                },
            },
        ],
    )


def regions_dashboard(p: RuleParams, q: RegionRuleParams | None = None) -> dict[str, Any]:
    """Every region's failure ratio, volume and p95; then the chosen region's towers."""
    from stack.dashboards import TOWER_UID  # it imports this module

    q = q or RegionRuleParams()
    slo, w, job = p.slo, q.rate_window, f'job="{p.job}"'
    region_steps = thresholds((slo.warn_failure_ratio, "orange"), (slo.alert_failure_ratio, "red"))
    tower_steps = thresholds(
        (slo.warn_tower_failure_ratio, "orange"), (slo.alert_tower_failure_ratio, "red")
    )
    tw = f'window="{q.tower_window}"'
    sel = f'{job}, {tw}, region="$region"'
    variable = query_variable(
        "region", "Region", f"label_values(ecm_region_window_calls{{{job}}}, region)"
    )
    panels = [
        _table(
            1,
            "Regions, worst first",
            f"Every region's failure ratio, calls per minute and setup p95 ({w} rates), worst "
            "failure ratio first. Click a region for its towers.",
            (0, 0, 12, 10),
            "region",
            [
                (f"region:ecm_calls_failed:ratio_rate{w}", "Failure ratio", "percentunit"),
                (f"region:ecm_calls:rate{w} * 60", "Calls per minute", "cpm"),
                (f"region:ecm_call_latency_seconds:p95_rate{w}", "Setup p95", "s"),
            ],
            {
                "title": "Region's towers",
                "url": f"/d/{REGIONS_UID}?var-region=${{__data.fields.region}}"
                "&${__url_time_range}",
            },
            region_steps,
        ),
        series(
            2,
            f"Failure ratio in $region ({w})",
            f"Share of the region's calls that failed ({w} rate). Orange above "
            f"{slo.warn_failure_ratio:.0%}, red above {slo.alert_failure_ratio:.0%} (the region "
            "alert's thresholds).",
            "percentunit",
            (12, 0, 12, 10),
            [target(f'region:ecm_calls_failed:ratio_rate{w}{{region="$region"}}', "{{region}}")],
            defaults={"thresholds": region_steps},
        ),
        _table(
            3,
            "Towers to act on in $region",
            f"The region's towers the exporter publishes over its {q.tower_window} window: the "
            "failing towers (over the tower warning line with enough calls), the worst ones and "
            "those with their own counters. Click a tower with counters for its dashboard.",
            (0, 10, 14, 10),
            "tower",
            [
                (f"ecm_tower_window_failure_ratio{{{sel}}}", "Failure ratio", "percentunit"),
                (f"ecm_tower_window_calls{{{sel}}}", "Calls", "none"),
                (f"ecm_tower_window_latency_p95_seconds{{{sel}}}", "Setup p95", "s"),
            ],
            {
                "title": "Tower dashboard",
                "url": f"/d/{TOWER_UID}?var-tower=${{__data.fields.tower}}&${{__url_time_range}}",
            },
            tower_steps,
        ),
        series(
            4,
            f"Failed calls by reason in $region ({q.tower_window} window)",
            f"The exporter's failed calls of the region by failure reason, over its "
            f"{q.tower_window} window.",
            "none",
            (14, 10, 10, 10),
            [
                target(
                    f"ecm_region_window_reason_failed_calls{{{sel}}}",
                    "{{reason}}",
                )
            ],
            stacked=True,
        ),
    ]
    return dashboard(
        REGIONS_UID,
        "Emergency calls by region",
        "Emergency calls per region, then a region's towers to act on (national scale).",
        panels,
        [variable],
    )
