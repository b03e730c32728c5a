"""The seed's acceptance on the local run (`python -m stack`): the stack starts, the PM generator
emits continuously, the API persists with dedup by event_id, Prometheus scrapes the API, and the
RAN PM dashboard's time series, queried as Grafana does, grows."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
import requests

from stack.pgcluster import find_bindir
from tests.fixtures.tools import in_ci, require_binary
from tests.local_run.run import LocalRun, start_stack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

DASHBOARD = Path(__file__).resolve().parents[2] / "grafana/dashboards/sql/ecm-ran-pm.json"
EVENTS_PANEL = "PM events per 5 minutes"


def accepted(run: LocalRun) -> float:
    text = requests.get(f"http://127.0.0.1:{run.port['api']}/metrics", timeout=2).text
    m = re.search(r"^ecm_pm_events_accepted_total (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def database_url(banner: str) -> str:
    m = re.search(r"^ +database +(\S+)$", banner, re.M)
    assert m, banner
    return m.group(1)


def events_series_total(url: str) -> int:
    """The events panel's query with $__timeFilter over the last hour, summed."""
    doc = json.loads(DASHBOARD.read_text())
    (panel,) = [p for p in doc["panels"] if p["title"] == EVENTS_PANEL]
    now = datetime.now(UTC)
    since = (now - timedelta(hours=1)).strftime("'%Y-%m-%dT%H:%M:%SZ'")
    until = (now + timedelta(minutes=10)).strftime("'%Y-%m-%dT%H:%M:%SZ'")
    text = panel["targets"][0]["rawSql"].replace(
        "$__timeFilter(bucket)", f"bucket BETWEEN {since} AND {until}"
    )
    with psycopg.connect(url) as conn:
        return int(sum(row[1] for row in conn.execute(text.encode()).fetchall()))


def test_pm_pipeline_on_the_local_run(tmp_path: Path) -> None:
    if find_bindir() is None:
        reason = "no PostgreSQL server binaries for the local database"
        if in_ci():
            pytest.fail(reason)
        pytest.skip(reason)
    require_binary("prometheus", "prometheus")
    require_binary("prometheus-alertmanager", "prometheus-alertmanager")
    run = start_stack(tmp_path, "--pm-period", "2s", "--towers", "5")
    prom = f"http://127.0.0.1:{run.port['prom']}"
    api = f"http://127.0.0.1:{run.port['api']}"
    try:
        db = database_url(run.banner())
        first = run.wait_for(lambda: accepted(run), "PM events accepted by the API")
        run.wait_for(lambda: accepted(run) > first, "more PM events (continuous)")
        first_total = run.wait_for(lambda: events_series_total(db), "the events series")
        run.wait_for(lambda: events_series_total(db) > first_total, "the series to grow")
        # Dedup by event_id: the same event twice is stored once.
        token = (run.state / "api-token").read_text().strip()
        event = {
            "event_id": str(uuid.uuid4()),
            "schema_version": 1,
            "source": "acceptance",
            "event_time": datetime.now(UTC).isoformat(),
            "entity_type": "cell",
            "entity_id": "ACCEPTANCE-1",
            "metrics": {"dl_prb_util_pct": 50.0},
        }
        auth = {"authorization": f"Bearer {token}"}
        answers = [
            requests.post(f"{api}/v1/events/pm", json=event, headers=auth, timeout=10).json()
            for _ in range(2)
        ]
        assert [a["results"][0]["status"] for a in answers] == ["accepted", "duplicate"]
        with psycopg.connect(db) as conn:
            stored = conn.execute(
                "SELECT count(*) FROM pm_events WHERE event_id = %s", (event["event_id"],)
            ).fetchone()
        assert stored == (1,)

        def api_up() -> bool:
            r = requests.get(f"{prom}/api/v1/query", params={"query": 'up{job="ecm-api"}'},
                             timeout=2).json()  # fmt: skip
            return [s["value"][1] for s in r["data"]["result"]] == ["1"]

        run.wait_for(api_up, "Prometheus scraping the API")
    finally:
        out = run.interrupt()
    assert run.proc.returncode == 0, out
    assert "ECM API" in out
    for name in ("api.log", "pm-generator.log"):
        assert (run.state / name).exists()
