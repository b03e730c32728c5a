"""Every query of the "SMS broadcast" dashboard, run against a real Prometheus scraping a real
sender working through a campaign."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from db.roles import BROADCAST_LOGIN, LOGINS, ensure_login, url_for
from stack import promconfig
from stack.runner import Supervisor
from tests.fixtures.postgres import TEMPLATE, PgServer
from tests.fixtures.tools import require_binary
from tests.stack.services import get_json, poll, start_service

pytestmark = [pytest.mark.integration, pytest.mark.slow]
DASHBOARD = Path(__file__).resolve().parents[2] / "grafana" / "dashboards" / "ecm-broadcast.json"


def panels() -> list[dict[str, Any]]:
    """Every panel of the dashboard."""
    return list(json.loads(DASHBOARD.read_text())["panels"])


@pytest.fixture(scope="module")
def prometheus(pg_server: PgServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Prometheus (1 s scrapes) on a sender delivering a 3000-message campaign; its URL."""
    binary = require_binary("prometheus", "prometheus")
    workdir = tmp_path_factory.mktemp("broadcast-dash")
    name = "ecm_broadcast_dash"
    with pg_server.admin() as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
    ensure_login(pg_server.url(name), BROADCAST_LOGIN, None, LOGINS[BROADCAST_LOGIN])
    url = url_for(pg_server.url(name), BROADCAST_LOGIN, None)
    sup = Supervisor()
    try:
        subprocess.run(
            [sys.executable, "-m", "broadcast", "produce", "--count", "3000", "--campaign", "dash"],
            env={**os.environ, "ECM_DATABASE_URL": url},
            check=True,
            capture_output=True,
        )
        sender = start_service(
            sup,
            "sender",
            lambda port: [
                sys.executable,
                "-m",
                "broadcast",
                "sender",
                "--metrics-port",
                str(port),
                "--metrics-listen-address",
                "127.0.0.1",
                "--mean-time",
                "0.05",
                "--failure-rate",
                "0.3",
                "--window",
                "10",
                "--rate-limit",
                "50",
                "--retry-base-delay",
                "0.2",
            ],
            workdir,
            "/metrics",
            env={"ECM_DATABASE_URL": url},
        )
        targets: dict[str, str | None] = {job: None for job in promconfig.JOBS}
        targets["ecm-broadcast"] = sender.url.removeprefix("http://")
        prom = start_service(
            sup,
            "prometheus",
            lambda port: promconfig.prometheus_command(
                promconfig.render_prometheus_config(
                    workdir / "prom",
                    targets,
                    None,
                    rule_files=[],
                    scrape_interval="1s",
                    evaluation_interval="1s",
                ),
                workdir / "prom-data",
                f"127.0.0.1:{port}",
                binary=binary,
            ),
            workdir,
            "/-/ready",
        )
        poll(
            "two scrapes with outcomes",
            lambda: (
                get_json(
                    prom.url + "/api/v1/query",
                    query="sum(rate(ecm_broadcast_messages_failed_total[1m])) > 0",
                )["data"]["result"]
                or None
            ),
            60,
        )
        yield prom.url
    finally:
        sup.stop_all()
        with pg_server.admin() as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.mark.parametrize("panel", panels(), ids=lambda p: str(p["title"]))
def test_panel_queries_return_data(prometheus: str, panel: dict[str, Any]) -> None:
    """Each query runs and returns data, instantly and (graphs) over a range."""
    for t in panel["targets"]:
        doc = get_json(prometheus + "/api/v1/query", query=t["expr"])
        assert doc["status"] == "success"
        assert doc["data"]["result"], f"{panel['title']}: no data for {t['expr']}"
        if panel["type"] == "timeseries":
            now = time.time()
            doc = get_json(
                prometheus + "/api/v1/query_range", query=t["expr"], start=now - 30, end=now, step=2
            )
            assert doc["data"]["result"], f"{panel['title']}: no range data for {t['expr']}"


def test_dashboard_shows_the_campaign(prometheus: str) -> None:
    """The campaign's states add up to its 3000 messages."""
    doc = get_json(
        prometheus + "/api/v1/query",
        query='sum(max by (state) (ecm_broadcast_campaign_messages{campaign="dash"}))',
    )
    assert float(doc["data"]["result"][0]["value"][1]) == 3000
