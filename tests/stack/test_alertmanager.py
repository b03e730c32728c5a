"""Alertmanager: the committed config is valid, routes by severity, inhibits as documented."""

from __future__ import annotations

import json
import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
import yaml

from stack.runner import Child
from tests.fixtures.tools import require_binary
from tests.stack.services import get_json, poll

ROOT = Path(__file__).resolve().parents[2]
ALERTS_FILE = ROOT / "prometheus" / "rules" / "ecm_alerts.yml"


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    """Run amtool offline."""
    binary = require_binary("amtool", "prometheus-alertmanager")
    return subprocess.run([binary, *args], capture_output=True, text=True, check=False)


def test_rendered_config_passes_amtool_check_config(rendered_am: Path) -> None:
    """amtool accepts the config, its receivers and its template."""
    proc = amtool("check-config", str(rendered_am))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3 receivers" in proc.stdout
    assert "1 templates" in proc.stdout


@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        (["alertname=EcmWatchdog", "severity=none"], "heartbeat"),
        (
            ["alertname=EcmTowerFailureRatioHigh", "severity=critical", "tower=TOWER_3"],
            "pager,tickets",
        ),
        (["alertname=EcmExporterDown", "severity=critical", "job=ecm-exporter"], "pager,tickets"),
        (["alertname=EcmCallFailureRatioHigh", "severity=warning"], "tickets"),
        (["alertname=EcmCallSuccessBudgetBurn", "severity=warning"], "tickets"),
        (["alertname=SomethingNew", "severity=info"], "tickets"),
    ],
)
def test_route(rendered_am: Path, labels: list[str], receivers: str) -> None:
    """Each route sends its alerts to the documented receivers and nowhere else."""
    proc = amtool(
        "config",
        "routes",
        "test",
        f"--config.file={rendered_am}",
        f"--verify.receivers={receivers}",
        *labels,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == receivers


def test_webhook_urls_come_from_the_environment(
    rendered_am: Path, example_urls: dict[str, str]
) -> None:
    """Every receiver posts to the URL of its variable, with resolved notices where useful."""
    cfg = yaml.safe_load(rendered_am.read_text())
    hooks = {r["name"]: r["webhook_configs"][0] for r in cfg["receivers"]}
    assert hooks["pager"]["url"] == example_urls["ECM_PAGER_WEBHOOK_URL"]
    assert hooks["tickets"]["url"] == example_urls["ECM_TICKETS_WEBHOOK_URL"]
    assert hooks["heartbeat"]["url"] == example_urls["ECM_HEARTBEAT_WEBHOOK_URL"]
    assert hooks["pager"].get("send_resolved", True) is True
    assert hooks["heartbeat"]["send_resolved"] is False
    assert "${" not in rendered_am.read_text()


def test_inhibited_alerts_are_exactly_the_data_alerts() -> None:
    """The exporter/database alerts mute every alert computed from calls, and nothing else."""
    cfg = yaml.safe_load((ROOT / "alertmanager" / "alertmanager.yml").read_text())
    pipeline = {"EcmExporterDown", "EcmExporterAbsent", "EcmDatabaseDown", "EcmDataStale"}
    rule = next(r for r in cfg["inhibit_rules"] if "EcmExporterDown" in r["source_matchers"][0])
    sources = set(rule["source_matchers"][0].split('"')[1].split("|"))
    targets = set(rule["target_matchers"][0].split('"')[1].split("|"))
    # The call alerts and the per-region ones are both computed from the exporter's calls.
    regions = ALERTS_FILE.parent / "ecm_regions.yml"
    alerts = {
        r["alert"]
        for path in (ALERTS_FILE, regions)
        for g in yaml.safe_load(path.read_text())["groups"]
        for r in g["rules"]
        if "alert" in r
    }
    assert sources == pipeline
    # The generator's own alert is about another job (its writes), so no exporter alert mutes it.
    assert targets == alerts - pipeline - {"EcmWatchdog", "EcmGeneratorWriterStuck"}


PAGE_OF_TICKET = re.compile(r'max_over_time\(ALERTS\{alertname="(\w+)", severity="critical"')


def _quiet_tickets() -> list[tuple[str, str, list[tuple[str, str]]]]:
    """Warnings whose own rule keeps them quiet under their page (stack.rules.quiet_after_page):
    (warning, its page, the (alert, severity) of the rules before it in its group)."""
    out = []
    for path in sorted(ALERTS_FILE.parent.glob("*.yml")):
        for g in yaml.safe_load(path.read_text())["groups"]:
            before: list[tuple[str, str]] = []
            for r in g["rules"]:
                sev = r.get("labels", {}).get("severity", "")
                page = PAGE_OF_TICKET.search(r["expr"]) if sev == "warning" else None
                if page:
                    out.append((r["alert"], page.group(1), list(before)))
                before.append((r.get("alert", ""), sev))
    return out


def test_critical_mutes_warning_except_where_the_rule_does() -> None:
    """Alertmanager's critical-mutes-warning rule leaves out exactly the warnings whose own rule
    keeps them quiet under their page (muted there, a ticket could go out after the end)."""
    cfg = yaml.safe_load((ROOT / "alertmanager" / "alertmanager.yml").read_text())
    rule = next(r for r in cfg["inhibit_rules"] if r["source_matchers"] == ['severity="critical"'])
    assert rule["target_matchers"][0] == 'severity="warning"'
    left_out = re.fullmatch(r'alertname!~"([\w|]+)"', rule["target_matchers"][1])
    assert left_out is not None, rule["target_matchers"]
    tickets = _quiet_tickets()
    quiet = {name for name, _, _ in tickets}
    assert {"EcmWindowWarn", "EcmCallFailureRatioHigh", "EcmRegionFailureRatioHigh"} <= quiet
    assert set(left_out.group(1).split("|")) == quiet
    # Each of them is ordered after its page, so the two never start in the same evaluation.
    for name, page, before in tickets:
        assert (page, "critical") in before, (name, page)


def test_template_renders_firing_and_resolved(tmp_path: Path) -> None:
    """The notification template lists firing and resolved alerts with tower and runbook."""
    data = {
        "receiver": "pager",
        "status": "firing",
        "externalURL": "http://am",
        "groupLabels": {"alertname": "EcmTowerFailureRatioHigh"},
        "commonLabels": {"alertname": "EcmTowerFailureRatioHigh", "severity": "critical"},
        "commonAnnotations": {},
        "alerts": [
            {
                "status": "firing",
                "startsAt": "2026-01-02T03:04:05Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "labels": {"alertname": "EcmTowerFailureRatioHigh", "tower": "TOWER_3"},
                "annotations": {
                    "summary": "Tower TOWER_3 fails.",
                    "description": "80% failed.",
                    "runbook_url": "https://rb/EcmTowerFailureRatioHigh.md",
                },
            },
            {
                "status": "resolved",
                "startsAt": "2026-01-02T03:00:00Z",
                "endsAt": "2026-01-02T03:30:00Z",
                "labels": {"alertname": "EcmTowerFailureRatioHigh", "tower": "TOWER_4"},
                "annotations": {"summary": "Tower TOWER_4 fails.", "description": "60% failed."},
            },
        ],
    }
    path = tmp_path / "data.json"
    path.write_text(json.dumps(data))
    proc = amtool(
        "template",
        "render",
        f"--template.glob={ROOT / 'alertmanager' / 'templates' / '*.tmpl'}",
        f"--template.data={path}",
        '--template.text={{ template "ecm.title" . }}\n{{ template "ecm.text" . }}',
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "[FIRING:1] EcmTowerFailureRatioHigh (critical)"
    assert "- Tower TOWER_3 fails. [tower TOWER_3]" in lines
    assert "since 2026-01-02 03:04:05 UTC; runbook: https://rb/EcmTowerFailureRatioHigh.md" in (
        proc.stdout
    )
    assert lines.index("Resolved:") > lines.index("Firing:")
    assert "- Tower TOWER_4 fails. [tower TOWER_4]" in lines


def _post(am: Child, *alerts: dict[str, str]) -> None:
    now = datetime.now(UTC)
    body = [
        {
            "labels": labels,
            "annotations": {"summary": "test"},
            "startsAt": (now - timedelta(minutes=1)).isoformat(),
            "endsAt": (now + timedelta(minutes=10)).isoformat(),
        }
        for labels in alerts
    ]
    requests.post(am.url + "/api/v2/alerts", json=body, timeout=5).raise_for_status()


def _states(am: Child) -> dict[tuple[str, str, str], str]:
    out = {}
    for a in get_json(am.url + "/api/v2/alerts"):
        lab = a["labels"]
        out[(lab["alertname"], lab.get("severity", ""), lab.get("tower", ""))] = a["status"][
            "state"
        ]
    return out


@pytest.mark.integration
def test_inhibition_in_a_real_alertmanager(alertmanager: Child) -> None:
    """Critical mutes the same warning on the same tower, unless the warning's own rule keeps it
    quiet (a call ticket that fired is sent, and so is its "resolved"); exporter down mutes data
    alerts of its job only."""
    job = {"job": "ecm-exporter"}
    _post(
        alertmanager,
        {"alertname": "EcmCallFailureRatioHigh", "severity": "warning", **job},
        {"alertname": "EcmCallFailureRatioHigh", "severity": "critical", **job},
        {"alertname": "EcmPmPrbUtilizationHigh", "severity": "warning", "tower": "TOWER_1", **job},
        {"alertname": "EcmPmPrbUtilizationHigh", "severity": "warning", "tower": "TOWER_2", **job},
        {"alertname": "EcmPmPrbUtilizationHigh", "severity": "critical", "tower": "TOWER_1", **job},
        {"alertname": "EcmWatchdog", "severity": "none"},
    )
    expected_before = {
        ("EcmCallFailureRatioHigh", "warning", ""): "active",
        ("EcmCallFailureRatioHigh", "critical", ""): "active",
        ("EcmPmPrbUtilizationHigh", "warning", "TOWER_1"): "suppressed",
        ("EcmPmPrbUtilizationHigh", "warning", "TOWER_2"): "active",
        ("EcmPmPrbUtilizationHigh", "critical", "TOWER_1"): "active",
        ("EcmWatchdog", "none", ""): "active",
    }
    poll(
        "the first inhibitions",
        lambda: True if _states(alertmanager) == expected_before else None,
        10,
        diagnostics=lambda: str(_states(alertmanager)),
    )
    _post(
        alertmanager,
        {"alertname": "EcmExporterDown", "severity": "critical", "instance": "x:9742", **job},
    )
    # The PM alert is about the radio network, not computed from the calls: not muted.
    expected_after = {
        k: ("suppressed" if k[0] == "EcmCallFailureRatioHigh" else v)
        for k, v in expected_before.items()
    }
    expected_after[("EcmExporterDown", "critical", "")] = "active"
    poll(
        "the data alerts to be muted",
        lambda: True if _states(alertmanager) == expected_after else None,
        10,
        diagnostics=lambda: str(_states(alertmanager)),
    )
