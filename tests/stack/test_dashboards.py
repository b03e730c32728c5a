"""Grafana provisioning and dashboards: up to date, clean of export leftovers, consistent."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from stack import dashboards

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "grafana"
FILES = sorted((GRAFANA / "dashboards").glob("*.json"))
LEFTOVER_KEYS = {"__inputs", "__requires", "__elements", "iteration", "gnetId"}


def load(path: Path) -> dict[str, Any]:
    """A committed dashboard."""
    data = json.loads(path.read_text())
    assert isinstance(data, dict)
    return data


def walk(node: Any) -> Iterator[tuple[str, Any]]:
    """Every (key, value) pair at any depth."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield k, v
            yield from walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from walk(v)


def datasource_uid() -> str:
    """The uid the provisioned datasource gets."""
    doc = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    (ds,) = doc["datasources"]
    assert ds["type"] == "prometheus"
    assert ds["url"] == "http://prometheus:9090"
    return str(ds["uid"])


def test_committed_dashboards_are_up_to_date() -> None:
    """The JSON files are exactly what stack/dashboards.py builds (`make dashboards`)."""
    assert dashboards.stale_files(GRAFANA / "dashboards") == []
    proc = subprocess.run(
        [sys.executable, "-m", "stack.dashboards", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def test_two_dashboards_with_unique_uids() -> None:
    """The overview and the one-tower dashboard, each with its own uid."""
    docs = [load(p) for p in FILES]
    assert {d["title"] for d in docs} == {
        "Emergency calls",
        "Emergency calls: one tower",
        "Emergency calls by region",
        "SMS broadcast",
    }
    uids = [d["uid"] for d in docs]
    assert len(uids) == len(set(uids))


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_no_export_leftovers(path: Path) -> None:
    """Provisioned files carry no import inputs, fixed ids or ${DS_...} placeholders."""
    doc = load(path)
    assert doc["id"] is None
    keys = {k for k, _ in walk(doc)}
    assert keys & LEFTOVER_KEYS == set()
    text = path.read_text()
    assert "${DS_" not in text
    for key, value in walk(doc):
        if key == "datasource":
            assert isinstance(value, dict), f"datasource by name, not uid: {value!r}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_panel_is_complete_and_uses_the_datasource_uid(path: Path) -> None:
    """Title, description, unit, unique id, the provisioned uid on panel and queries."""
    uid = datasource_uid()
    doc = load(path)
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    for p in doc["panels"]:
        assert p["title"].strip(), p
        assert p["description"].strip(), p["title"]
        assert p["fieldConfig"]["defaults"]["unit"], p["title"]
        assert p["datasource"] == {"type": "prometheus", "uid": uid}, p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["datasource"] == {"type": "prometheus", "uid": uid}, p["title"]
            assert t["expr"].strip()
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)), p["title"]
    for var in doc["templating"]["list"]:
        assert var["datasource"] == {"type": "prometheus", "uid": uid}


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_panels_do_not_overlap(path: Path) -> None:
    """Panels fit the 24-column grid without covering each other."""
    cells: set[tuple[int, int]] = set()
    for p in load(path)["panels"]:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24, p["title"]
        mine = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert not cells & mine, f"{p['title']} overlaps another panel"
        cells |= mine


def test_overview_has_the_panels_the_issue_asks_for() -> None:
    """Status, calls per minute, failure ratio and p95 over time, reasons, towers, alerts."""
    doc = load(GRAFANA / "dashboards" / "ecm-overview.json")
    by_title = {p["title"]: p for p in doc["panels"]}
    assert by_title["Window status"]["type"] == "stat"
    for title in ("Calls per minute", "Failure ratio", "Setup latency p95", "Failures by reason"):
        assert by_title[title]["type"] == "timeseries"
    towers = by_title["Towers, worst first"]
    assert towers["type"] == "table"
    sort = next(t for t in towers["transformations"] if t["id"] == "sortBy")
    assert sort["options"]["sort"] == [{"field": "Failure ratio", "desc": True}]
    assert "ALERTS{" in by_title["Firing alerts"]["targets"][0]["expr"]


def test_tower_dashboard_has_a_tower_variable_used_by_its_queries() -> None:
    """The variable comes from label_values and every tower panel filters on it."""
    doc = load(GRAFANA / "dashboards" / "ecm-tower.json")
    (var,) = doc["templating"]["list"]
    assert var["name"] == "tower"
    assert var["query"]["query"].startswith("label_values(ecm_calls_total")
    for p in doc["panels"]:
        assert any('tower="$tower"' in t["expr"] for t in p["targets"]), p["title"]


def test_dashboard_provider_reads_the_folder_compose_mounts() -> None:
    """The provider path is where docker-compose mounts grafana/dashboards."""
    doc = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "ecm.yml").read_text())
    (provider,) = doc["providers"]
    assert provider["type"] == "file"
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./grafana/dashboards:{provider['options']['path']}:ro" in mounts


def test_region_dashboard_drills_down_from_regions_to_their_towers() -> None:
    """Regions from the region recording rules, a region's towers from the exporter's gauges."""
    doc = load(GRAFANA / "dashboards" / "ecm-regions.json")
    (variable,) = doc["templating"]["list"]
    assert variable["name"] == "region"
    exprs = [t["expr"] for p in doc["panels"] for t in p["targets"]]
    assert any(e.startswith("region:ecm_calls_failed:ratio_rate") for e in exprs)
    towers = [e for e in exprs if e.startswith("ecm_tower_window_")]
    assert towers and all('region="$region"' in e for e in towers)
    links = [
        lk["url"] for p in doc["panels"] for lk in p["fieldConfig"]["defaults"].get("links", [])
    ]
    assert any("var-region=" in u for u in links) and any("/d/ecm-tower?" in u for u in links)
