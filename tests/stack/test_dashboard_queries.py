"""Every dashboard query and template variable, run against Prometheus scraping the exporter."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.stack.livestack import TOWERS, LiveStack
from tests.stack.services import get_json, poll

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
# The SMS broadcast's panels run against a Prometheus scraping a sender in
# tests/broadcast/test_dashboard.py.
DASHBOARDS = sorted(
    p for p in (ROOT / "grafana" / "dashboards").glob("*.json") if p.name != "ecm-broadcast.json"
)
# The live stack's towers are inserted without a region: the towers table's default.
REGION = "default"
# Panels that are empty on healthy traffic: no alert concerns a tower then.
MAY_BE_EMPTY = {"Firing alerts for this tower"}


def panels() -> list[tuple[str, dict[str, Any]]]:
    """(dashboard uid, panel) for every panel."""
    out = []
    for path in DASHBOARDS:
        doc = json.loads(path.read_text())
        out += [(doc["uid"], p) for p in doc["panels"]]
    return out


def variables() -> list[dict[str, Any]]:
    """Every template variable."""
    return [v for path in DASHBOARDS for v in json.loads(path.read_text())["templating"]["list"]]


@pytest.fixture(scope="module")
def warmed(live: LiveStack) -> LiveStack:
    """The stack once the recording rules (the region group too: groups are evaluated apart)
    and the exporter's tower gauges have values."""
    poll(
        "recorded rates and tower gauges",
        lambda: (
            (
                live.query("job:ecm_call_latency_seconds:p95_rate5m > 0")
                and live.query("region:ecm_calls_failed:ratio_rate5m")
                and live.query("ecm_tower_window_failure_ratio")
                and live.query('ALERTS{alertname="EcmWatchdog", alertstate="firing"}')
            )
            or None
        ),
        60,
        diagnostics=live.diagnostics,
    )
    return live


def label_values(live: LiveStack, query: str) -> list[str]:
    """What Grafana asks Prometheus for label_values(selector, label)."""
    inner = query.removeprefix("label_values(").removesuffix(")")
    selector, _, label = inner.rpartition(",")
    assert live.prometheus is not None
    doc = get_json(
        f"{live.prometheus.url}/api/v1/label/{label.strip()}/values",
        **{"match[]": selector.strip()},
    )
    assert doc["status"] == "success"
    values: list[str] = doc["data"]
    return values


@pytest.mark.parametrize("var", variables(), ids=lambda v: v["name"])
def test_template_variable_lists_the_towers(warmed: LiveStack, var: dict[str, Any]) -> None:
    """label_values(...) returns every tower (or region) the traffic uses."""
    expected = {"tower": list(TOWERS), "region": [REGION]}[var["name"]]
    assert sorted(label_values(warmed, var["query"]["query"])) == sorted(expected)


@pytest.mark.parametrize("uid_panel", panels(), ids=lambda up: f"{up[0]}:{up[1]['title']}")
def test_panel_queries_run_and_return_data(
    warmed: LiveStack, uid_panel: tuple[str, dict[str, Any]]
) -> None:
    """No query errors (instant, and over a range for graphs); data where data is expected."""
    _uid, panel = uid_panel
    assert warmed.prometheus is not None
    for t in panel["targets"]:
        expr = t["expr"].replace("$tower", TOWERS[2]).replace("$region", REGION)
        result = warmed.query(expr)
        if panel["title"] not in MAY_BE_EMPTY:
            assert result, f"{panel['title']}: no data for {expr}"
        if panel["type"] == "timeseries":
            now = time.time()
            doc = get_json(
                warmed.prometheus.url + "/api/v1/query_range",
                query=expr,
                start=now - 60,
                end=now,
                step=5,
            )
            assert doc["status"] == "success"
            assert doc["data"]["result"], f"{panel['title']}: no range data for {expr}"
