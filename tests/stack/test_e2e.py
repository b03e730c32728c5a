"""End to end: real PostgreSQL, exporter, Prometheus and Alertmanager, a webhook sink.

The stack runs the committed rules and routing, rendered with windows of seconds (see
tests/stack/livestack.py); the tests run in file order on one stack.
"""

from __future__ import annotations

from typing import Any

import pytest

from stack.sink import Notification
from tests.stack.livestack import E2E_RULES, LiveStack
from tests.stack.services import poll

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.integration]

DATA_ALERTS = {
    "EcmWindowWarn",
    "EcmWindowAlert",
    "EcmCallFailureRatioHigh",
    "EcmTowerFailureRatioHigh",
    "EcmCallLatencyP95High",
    "EcmNoCalls",
    "EcmTowerSilent",
    "EcmCallSuccessBudgetBurn",
}
RUNBOOK_BASE = "docs/runbooks"
WAIT_S = 60


def find(notes: list[Notification], status: str, **labels: str) -> dict[str, Any] | None:
    """The first alert with this status and labels in these notifications."""
    for n in notes:
        for a in n.alerts(**labels):
            if a["status"] == status:
                return a
    return None


def test_normal_traffic_only_the_watchdog_notifies(live: LiveStack) -> None:
    """With healthy calls, the heartbeat gets the Watchdog and no one else hears anything."""
    poll(
        "the Watchdog at the heartbeat receiver",
        lambda: live.sink.received("heartbeat") or None,
        WAIT_S,
        diagnostics=live.diagnostics,
    )
    # Every rule has had its window of data and its `for:` before looking for false alarms.
    window_s = 30
    poll(
        f"{window_s} s of scraped data",
        lambda: (
            live.query(f'count_over_time(up{{job="ecm-exporter"}}[{window_s}s]) >= {window_s - 2}')
            or None
        ),
        WAIT_S,
        diagnostics=live.diagnostics,
    )
    assert live.query("job:ecm_calls:rate5m > 0"), "no traffic measured"
    others = [
        a["labels"]["alertname"]
        for a in live.prom_alerts()
        if a["labels"]["alertname"] != "EcmWatchdog"
    ]
    assert others == [], live.diagnostics()
    assert live.sink.received("pager") == []
    assert live.sink.received("tickets") == []
    beats = live.sink.received("heartbeat")
    assert {a["labels"]["alertname"] for n in beats for a in n.payload["alerts"]} == {"EcmWatchdog"}
    assert beats[0].payload["receiver"] == "heartbeat"


def test_tower_failure_burst_pages_then_resolves(live: LiveStack) -> None:
    """One tower failing every call pages with its labels; the end of the burst resolves it."""
    since = live.sink.mark()
    key = {"alertname": "EcmTowerFailureRatioHigh", "tower": "TOWER_3", "severity": "critical"}
    live.traffic.failing = {"TOWER_3"}
    try:
        alert = poll(
            "the tower alert at the pager",
            lambda: find(live.sink.received("pager", since), "firing", **key),
            WAIT_S,
            diagnostics=live.diagnostics,
        )
    finally:
        live.traffic.failing = set()
    assert alert["labels"] == {**key, "job": "ecm-exporter"}
    ann = alert["annotations"]
    assert ann["summary"] == "Tower TOWER_3 fails more than 50% of emergency calls."
    assert ann["description"].endswith(
        "of emergency calls through tower TOWER_3 failed (threshold 50%), over the shortest window "
        f"of {', '.join(E2E_RULES.detect_windows)} holding at least "
        f"{E2E_RULES.slo.tower_page_min_calls} calls through the tower."
    )
    assert ann["runbook_url"] == f"{RUNBOOK_BASE}/EcmTowerFailureRatioHigh.md"
    pager = [n for n in live.sink.received("pager", since) if n.alerts(**key)]
    assert pager[0].payload["receiver"] == "pager"
    # continue: true also opens a ticket.
    poll(
        "the tower alert at the tickets receiver",
        lambda: find(live.sink.received("tickets", since), "firing", **key),
        WAIT_S,
        diagnostics=live.diagnostics,
    )
    resolved = poll(
        "the resolved notification",
        lambda: find(live.sink.received("pager", since), "resolved", **key),
        WAIT_S,
        diagnostics=live.diagnostics,
    )
    assert resolved["labels"] == alert["labels"]
    healthy = {"TOWER_1", "TOWER_2", "TOWER_4"}
    towers = {
        a["labels"].get("tower")
        for n in live.sink.received(since=since)
        for a in n.payload["alerts"]
    }
    assert towers & healthy == set(), "a healthy tower was reported"


def test_exporter_killed_fires_down_and_mutes_data_alerts(live: LiveStack) -> None:
    """The exporter dies during a burst: EcmExporterDown pages, the data alerts are inhibited."""
    assert live.exporter is not None
    since = live.sink.mark()
    live.traffic.failing = {"TOWER_3"}
    try:
        poll(
            "the tower alert to be active in Alertmanager",
            lambda: (
                True
                if any(
                    a["labels"]["alertname"] == "EcmTowerFailureRatioHigh"
                    and a["status"]["state"] == "active"
                    for a in live.am_alerts()
                )
                else None
            ),
            WAIT_S,
            diagnostics=live.diagnostics,
        )
        live.exporter.kill()
        down = {"alertname": "EcmExporterDown", "severity": "critical"}
        alert = poll(
            "EcmExporterDown at the pager",
            lambda: find(live.sink.received("pager", since), "firing", **down),
            WAIT_S,
            diagnostics=live.diagnostics,
        )
        assert alert["labels"]["instance"] == f"127.0.0.1:{live.exporter_port}"
        assert alert["annotations"]["runbook_url"] == f"{RUNBOOK_BASE}/EcmExporterDown.md"

        def muted() -> list[dict[str, Any]] | None:
            alerts = live.am_alerts()
            down_fp = {
                a["fingerprint"] for a in alerts if a["labels"]["alertname"] == "EcmExporterDown"
            }
            data = [a for a in alerts if a["labels"]["alertname"] in DATA_ALERTS]
            # Alertmanager names one inhibitor: a warning may show its own critical (itself
            # muted by EcmExporterDown) rather than EcmExporterDown.
            muted_by_down = {
                a["fingerprint"] for a in data if set(a["status"]["inhibitedBy"]) & down_fp
            }
            if (
                down_fp
                and data
                and all(
                    a["status"]["state"] == "suppressed"
                    and set(a["status"]["inhibitedBy"]) & (down_fp | muted_by_down)
                    for a in data
                )
            ):
                return data
            return None

        data = poll(
            "the data alerts to be inhibited by EcmExporterDown",
            muted,
            WAIT_S,
            diagnostics=lambda: f"{live.am_alerts()}\n{live.diagnostics()}",
        )
        assert "EcmTowerFailureRatioHigh" in {a["labels"]["alertname"] for a in data}
    finally:
        live.traffic.failing = set()
        if live.exporter.exited() is not None:
            live.start_exporter()
