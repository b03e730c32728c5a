"""The "RAN PM" dashboard and its PostgreSQL datasource: up to date, complete, and every panel's
SQL, with Grafana's macros expanded as Grafana expands them, run by the read-only Grafana role
against a real PostgreSQL fed by the PM generator through the real API; none reads raw events."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from db.roles import GRAFANA_LOGIN, LOGINS, ensure_login, url_for
from generator.pm import PmRun
from generator.pm_config import PmSettings
from stack import dashboards_pm
from tests.api.conftest import NOW, Served, api_login, serve_api  # noqa: F401 (fixtures)
from tests.fixtures.clock import FakeClock
from tests.fixtures.postgres import PgServer

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "sql" / "ecm-ran-pm.json"
DATASOURCE = GRAFANA / "provisioning" / "datasources" / "postgres.yml"


def load() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return doc


def queries() -> list[tuple[str, str]]:
    """(panel title/refId, rawSql) of every panel."""
    return [
        (f"{p['title']}/{t['refId']}", t["rawSql"]) for p in load()["panels"] for t in p["targets"]
    ]


def test_committed_dashboard_is_up_to_date() -> None:
    assert dashboards_pm.stale_files() == []
    proc = subprocess.run(
        [sys.executable, "-m", "stack.dashboards_pm", "--check"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr


def test_datasource_is_the_read_only_login_with_the_password_from_the_environment() -> None:
    doc = yaml.safe_load(DATASOURCE.read_text())
    (ds,) = doc["datasources"]
    assert ds["uid"] == dashboards_pm.PG_DATASOURCE_UID
    assert ds["type"] == "postgres"
    assert ds["user"] == GRAFANA_LOGIN and LOGINS[GRAFANA_LOGIN] == "ecm_reader"
    assert ds["secureJsonData"]["password"] == "${ECM_GRAFANA_PASSWORD}"
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in mounts
    assert "./grafana/dashboards:/etc/grafana/dashboards:ro" in mounts


def test_the_seeds_panels_on_the_postgres_datasource() -> None:
    doc = load()
    assert doc["title"] == "RAN PM"
    by_title = {p["title"]: p for p in doc["panels"]}
    assert by_title["Average DL PRB utilisation"]["type"] == "timeseries"
    assert by_title["Busiest cells"]["type"] == "table"
    assert by_title["Drop rate"]["type"] == "timeseries"
    assert by_title["Silent cells"]["type"] == "stat"
    (var,) = doc["templating"]["list"]
    assert var["name"] == "cell" and var["datasource"] == dashboards_pm.PG_DATASOURCE
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for p in doc["panels"]:
        assert p["description"].strip() and p["fieldConfig"]["defaults"]["unit"]
        assert p["datasource"] == dashboards_pm.PG_DATASOURCE
        for t in p["targets"]:
            assert t["datasource"] == dashboards_pm.PG_DATASOURCE and t["rawSql"].strip()
        g = p["gridPos"]
        mine = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert g["x"] + g["w"] <= 24 and not cells & mine, p["title"]
        cells |= mine


def grafana_sql(raw: str, start: datetime, end: datetime, cells: list[str]) -> str:
    """The SQL Grafana sends: $__timeFilter(col) as BETWEEN two RFC 3339 literals, the multi-value
    $cell as a quoted list (Grafana's PostgreSQL macro engine and variable interpolation)."""

    def stamp(t: datetime) -> str:
        return t.astimezone(UTC).strftime("'%Y-%m-%dT%H:%M:%SZ'")

    out = re.sub(
        r"\$__timeFilter\(([^)]+)\)",
        lambda m: f"{m.group(1).strip()} BETWEEN {stamp(start)} AND {stamp(end)}",
        raw,
    )
    out = out.replace("$__timeFrom()", stamp(start)).replace("$__timeTo()", stamp(end))
    out = out.replace("$cell", ",".join("'" + c.replace("'", "''") + "'" for c in cells))
    assert "$" not in out, out
    return out


@pytest.mark.integration
def test_every_panel_query_runs_as_grafana_and_the_series_grows(
    serve_api: Callable[..., Served],  # noqa: F811
    pg_server: PgServer,
    tmp_path: Path,
) -> None:
    served = serve_api()
    ensure_login(pg_server.url("postgres"), GRAFANA_LOGIN, None, LOGINS[GRAFANA_LOGIN])
    grafana = url_for(served.db.url, GRAFANA_LOGIN, None)
    url = str(served.client.base_url)
    clock = FakeClock(NOW - 3600)

    def generate(periods: int) -> None:
        s = PmSettings.model_validate(
            {
                "api_url": url,
                "towers": 4,
                "sectors": 3,
                "period": "5m",
                "count": 12 * periods,
                "pm_spool_dir": str(tmp_path),
            }
        )
        assert PmRun(s, clock, threading.Event(), None).run().exit_status() == 0
        assert served.api.rollup.run()

    start = datetime.fromtimestamp(NOW - 6 * 3600, UTC)
    end = datetime.fromtimestamp(NOW + 600, UTC)
    cells = ["TOWER_1-C1", "TOWER_2-C3"]

    def run_all() -> dict[str, list[tuple[Any, ...]]]:
        out = {}
        with psycopg.connect(grafana, autocommit=True) as conn:
            (var,) = load()["templating"]["list"]
            assert len(conn.execute(var["query"]).fetchall()) == 12
            for name, raw in queries():
                text = grafana_sql(raw, start, end, cells)
                out[name] = conn.execute(text.encode()).fetchall()
                plan = "\n".join(r[0] for r in conn.execute(("EXPLAIN " + text).encode()))
                assert "pm_events" not in plan, f"{name} reads raw events:\n{plan}"
        return out

    generate(3)
    first = run_all()
    for name, rows in first.items():
        assert rows, f"{name} returned nothing"
    clock.advance(600)
    generate(2)
    later = run_all()
    events = "PM events per 5 minutes/A"
    assert sum(r[1] for r in later[events]) == 60 > sum(r[1] for r in first[events]) == 36
    dl = "Average DL PRB utilisation/A"
    assert len(later[dl]) > len(first[dl])
    assert all(0 <= r[1] <= 100 for r in later[dl])
    assert {r[1] for r in later["Average DL PRB utilisation/B"]} == set(cells)
    top = later["Busiest cells/A"]
    assert len(top) == 10 and [r[1] for r in top] == sorted((r[1] for r in top), reverse=True)
