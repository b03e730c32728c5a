"""The SMS broadcast in the local run: the demo campaign is queued, the sender delivers it, and
Prometheus scrapes the sender's progress gauges."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import requests

from stack.pgcluster import find_bindir
from tests.fixtures.tools import in_ci, require_binary
from tests.local_run.run import LocalRun, start_stack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def delivered(run: LocalRun) -> float | None:
    """The demo sender's delivered counter, None before its first outcome."""
    url = f"http://127.0.0.1:{run.port['broadcast']}/metrics"
    text = requests.get(url, timeout=2).text
    m = re.search(r"^ecm_broadcast_messages_delivered_total (\S+)$", text, re.M)
    return float(m.group(1)) if m and float(m.group(1)) > 0 else None


def test_demo_campaign_is_delivered_and_scraped(tmp_path: Path) -> None:
    if find_bindir() is None:
        reason = "no PostgreSQL server binaries for the local database"
        if in_ci():
            pytest.fail(reason)
        pytest.skip(reason)
    require_binary("prometheus", "prometheus")
    require_binary("prometheus-alertmanager", "prometheus-alertmanager")
    run = start_stack(tmp_path, "--broadcast-messages", "200")
    prom = f"http://127.0.0.1:{run.port['prom']}"
    try:
        assert "SMS sender metrics" in run.banner()
        run.wait_for(lambda: delivered(run), "the demo sender's first deliveries")

        def scraped() -> float | None:
            r = requests.get(
                f"{prom}/api/v1/query",
                params={"query": 'sum(ecm_broadcast_campaign_messages{job="ecm-broadcast"})'},
                timeout=2,
            ).json()["data"]["result"]
            return float(r[0]["value"][1]) if r else None

        # The campaign's states add up to its 200 messages.
        assert run.wait_for(scraped, "the campaign gauges in Prometheus") == 200
    finally:
        out = run.interrupt()
    assert run.proc.returncode == 0, out
