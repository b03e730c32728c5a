"""End to end on loopback with the real binaries: failing calls, the exporter, Prometheus,
Alertmanager, the pager (its own process and login), the ECM API (its run-time rules read by
Prometheus) and an SMTP server. The incident opens, the level-1 email arrives with a working
acknowledge link, the incident resolves when the calls recover, the dead man's switch pages when
Alertmanager goes silent, and a rule made through the API pages, moves and goes."""

from __future__ import annotations

import contextlib
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_string
from pathlib import Path
from typing import Any

import pytest
import requests

from db.roles import API_LOGIN, LOGINS, PAGER_LOGIN, ensure_login, url_for
from ecm_common.config import read_yaml
from stack import promconfig, rules
from stack.runner import Child, Supervisor
from stack.sink import WebhookSink
from tests.fixtures.postgres import PgServer
from tests.fixtures.tools import require_binary
from tests.pager.conftest import Mailbox
from tests.stack.livestack import E2E_RULES, Traffic, create_database
from tests.stack.services import poll, start_service

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.integration]

WRITE_TOKEN = "e2e-write-token"
API_TOKEN = "e2e-api-token"
AM_TOKEN = "e2e-alertmanager-token"
# Repeats every few seconds: the Watchdog keeps coming, and each firing alert is re-posted
# (the pager must treat the repeats as retries).
AM_TIMERS = {"group_wait": "1s", "group_interval": "1s", "repeat_interval": "2s"}
WATCHDOG_SILENCE_S = 15
WAIT_S = 120


@dataclass
class PagerStack:
    """The running parts the test talks to."""

    pager: Child
    alertmanager: Child
    prometheus: Child
    traffic: Traffic
    mailbox: Mailbox
    sup: Supervisor
    ecm_api: Child
    tickets: WebhookSink

    def api(self, path: str) -> Any:
        """GET a pager API path as JSON."""
        return requests.get(self.pager.url + path, timeout=5).json()

    def mails(self, subject_part: str) -> list[Any]:
        """Parsed emails whose subject contains subject_part."""
        parsed = [message_from_string(m["data"]) for m in self.mailbox.messages]
        return [m for m in parsed if subject_part in m["Subject"]]

    def diagnostics(self) -> str:
        """Logs and state when a wait times out."""
        parts = [f"mails: {[m['Subject'] for m in self.mails('')]}"]
        with contextlib.suppress(Exception):
            parts.append(f"incidents: {json.dumps(self.api('/v1/incidents'))[:2000]}")
        with contextlib.suppress(Exception):
            held = requests.get(self.alertmanager.url + "/api/v2/alerts", timeout=5).json()
            parts.append(
                "alertmanager holds: "
                + ", ".join(
                    f"{a['labels'].get('alertname')}{{{a['labels'].get('severity')}}}"
                    f"={a['status']['state']} until {a['endsAt']}"
                    for a in held
                )
            )
        for child in (self.pager, self.alertmanager, self.prometheus, self.ecm_api):
            parts.append(f"--- {child.name} ---\n{child.tail(30)}")
        return "\n".join(parts)


@pytest.fixture
def pager_stack(pg_server: PgServer, smtp_server: Mailbox, tmp_path: Path) -> Iterator[PagerStack]:
    """Everything started in dependency order on a fresh database."""
    prometheus_bin = require_binary("prometheus", "prometheus")
    alertmanager_bin = require_binary("prometheus-alertmanager", "prometheus-alertmanager")
    name = "ecm_e2e_pager"
    url, reader_url = create_database(pg_server, name)
    ensure_login(url, PAGER_LOGIN, None, LOGINS[PAGER_LOGIN])
    ensure_login(url, API_LOGIN, None, LOGINS[API_LOGIN])
    traffic = Traffic(url)
    tickets = WebhookSink().start()
    sup = Supervisor()
    try:
        traffic.start()
        exporter = start_service(
            sup,
            "exporter",
            lambda port: [
                sys.executable,
                "-m",
                "exporter",
                "--interval",
                "1",
                "--port",
                str(port),
                "--listen-address",
                "127.0.0.1",
            ],
            tmp_path,
            "/metrics",
            env={"ECM_DATABASE_URL": reader_url},
        )
        pager = _start_pager(sup, tmp_path, url_for(url, PAGER_LOGIN, None), smtp_server)
        token_file = tmp_path / "am-token"
        token_file.write_text(AM_TOKEN + "\n")
        webhook = f"{pager.url}/v1/alertmanager"
        am_cfg = promconfig.render_alertmanager_config(
            tmp_path / "am",
            {
                "ECM_PAGER_WEBHOOK_URL": webhook,
                "ECM_HEARTBEAT_WEBHOOK_URL": webhook,
                "ECM_TICKETS_WEBHOOK_URL": tickets.url("tickets"),
            },
            timers=AM_TIMERS,
            credentials_files={"pager": str(token_file), "heartbeat": str(token_file)},
        )
        alertmanager = start_service(
            sup,
            "alertmanager",
            lambda port: promconfig.alertmanager_command(
                am_cfg, tmp_path / "am-data", f"127.0.0.1:{port}", binary=alertmanager_bin
            ),
            tmp_path,
            "/-/ready",
        )
        am_address = alertmanager.url.removeprefix("http://")
        # The committed rules, and the directory the API writes its run-time rules into.
        user_rules = tmp_path / "user-rules"
        user_rules.mkdir()
        rule_files = [*rules.write(E2E_RULES, tmp_path / "rules"), user_rules / "*.yml"]
        scrape_jobs = read_yaml(promconfig.PROMETHEUS_YML)["scrape_configs"]

        def prom_argv(port: int) -> list[str]:
            cfg = promconfig.render_prometheus_config(
                tmp_path / "prom",
                {
                    # The jobs of parts this test does not run are left out.
                    **{job["job_name"]: None for job in scrape_jobs},
                    "ecm-exporter": exporter.url.removeprefix("http://"),
                    "prometheus": f"127.0.0.1:{port}",
                    "alertmanager": am_address,
                    "ecm-pager": pager.url.removeprefix("http://"),
                },
                am_address,
                rule_files=rule_files,
                scrape_interval="1s",
                evaluation_interval="1s",
            )
            return promconfig.prometheus_command(
                cfg, tmp_path / "prom-data", f"127.0.0.1:{port}", binary=prometheus_bin,
                extra_args=["--rules.alert.resend-delay=1s"],
            )  # fmt: skip

        prometheus = start_service(sup, "prometheus", prom_argv, tmp_path, "/-/ready")
        api = start_service(
            sup,
            "api",
            lambda port: [sys.executable, "-m", "api", *api_args(port, user_rules, prometheus.url)],
            tmp_path,
            "/readyz",
            env={"ECM_DATABASE_URL": url_for(url, API_LOGIN, None), "ECM_API_TOKEN": API_TOKEN},
        )
        yield PagerStack(pager, alertmanager, prometheus, traffic, smtp_server, sup, api, tickets)
    finally:
        sup.stop_all()
        traffic.stop()
        tickets.stop()
        with pg_server.admin() as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def api_args(port: int, rules_dir: Path, prometheus_url: str) -> list[str]:
    """The API's flags: loopback, and its rules where Prometheus reads them."""
    return [
        "--port",
        str(port),
        "--listen-address",
        "127.0.0.1",
        "--rules-dir",
        str(rules_dir),
        "--prometheus-url",
        prometheus_url,
    ]


def _start_pager(sup: Supervisor, workdir: Path, db_url: str, mailbox: Mailbox) -> Child:
    config = workdir / "pager.yml"

    def argv(port: int) -> list[str]:
        doc = {
            "public_url": f"http://127.0.0.1:{port}",
            "smtp_host": mailbox.host,
            "smtp_port": mailbox.port,
            "tick": "0.5s",
            "watchdog_silence": f"{WATCHDOG_SILENCE_S}s",
            "policies": {"oncall": {"levels": [{"targets": [{"email": "oncall@example.org"}]}]}},
            "services": {"ecm": {"policy": "oncall"}, "ecm-monitoring": {"policy": "oncall"}},
        }
        config.write_text(json.dumps(doc))
        return [sys.executable, "-m", "pager", "--config", str(config), "--port", str(port)]

    return start_service(
        sup,
        "pager",
        argv,
        workdir,
        "/readyz",
        env={
            "ECM_DATABASE_URL": db_url,
            "ECM_PAGER_TOKEN": WRITE_TOKEN,
            "ECM_PAGER_ALERTMANAGER_TOKEN": AM_TOKEN,
            "ECM_PAGER_ACK_SECRET": "e2e-ack-secret",
        },
    )


def test_an_outage_pages_is_acknowledged_by_link_and_resolves(pager_stack: PagerStack) -> None:
    s = pager_stack
    poll(
        "the Watchdog at the pager",
        lambda: _watchdog_seen(s) or None,
        WAIT_S,
        diagnostics=s.diagnostics,
    )
    s.traffic.failing.add("TOWER_3")
    [mail] = poll(
        "the level-1 email",
        lambda: s.mails("incident #") or None,
        WAIT_S,
        diagnostics=s.diagnostics,
    )
    incident = int(re.search(r"incident #(\d+) on ecm:", mail["Subject"]).group(1))  # type: ignore[union-attr]
    # As a mail client shows it: long lines travel quoted-printable.
    body = mail.get_payload(decode=True).decode()
    link = re.search(r"Acknowledge: (\S+)", body)
    assert link is not None, body
    assert link.group(1).startswith(f"{s.pager.url}/v1/ack/")
    page = requests.get(link.group(1), timeout=5)
    assert page.status_code == 200 and "Acknowledge incident" in page.text
    assert s.api(f"/v1/incidents/{incident}")["state"] == "triggered"
    assert requests.post(link.group(1), timeout=5).status_code == 200
    detail = s.api(f"/v1/incidents/{incident}")
    assert detail["state"] == "acknowledged" and detail["acknowledged_by"] == "ack link"
    # The tower's own alert fires a little later and joins the same incident.
    poll(
        "the tower alert attached to the incident",
        lambda: _alertnames(s, incident) >= {"EcmTowerFailureRatioHigh"} or None,
        WAIT_S,
        diagnostics=s.diagnostics,
    )

    s.traffic.failing.clear()
    resolved = poll(
        "the incident to resolve when the calls recover",
        lambda: _resolved(s, incident),
        WAIT_S * 2,
        diagnostics=s.diagnostics,
    )
    assert resolved["resolved_by"] == "alertmanager"
    services = {x["service"]: x["healthy"] for x in s.api("/v1/services")["services"]}
    assert services["ecm"] is True
    # One incident however often Alertmanager repeated its notifications.
    assert [i["id"] for i in s.api("/v1/incidents?service=ecm")["incidents"]] == [incident]


def test_silent_alertmanager_opens_the_pipeline_incident(pager_stack: PagerStack) -> None:
    s = pager_stack
    poll("the Watchdog at the pager", lambda: _watchdog_seen(s) or None, WAIT_S)
    s.alertmanager.stop()
    poll(
        "the 'monitoring pipeline silent' page",
        lambda: s.mails("on ecm-monitoring: monitoring pipeline silent") or None,
        WATCHDOG_SILENCE_S + WAIT_S,
        diagnostics=s.diagnostics,
    )
    [silent] = s.api("/v1/incidents?service=ecm-monitoring")["incidents"]
    assert silent["state"] == "triggered"


def test_a_rule_made_through_the_api_pages_moves_to_tickets_and_goes(
    pager_stack: PagerStack,
) -> None:
    """A run-time rule fires on the traffic, reaches Alertmanager and opens a pager incident;
    made a warning it resolves there and goes to the tickets; deleted, it resolves there."""
    s = pager_stack
    auth = {"Authorization": f"Bearer {API_TOKEN}", "X-ECM-Actor": "e2e"}
    # Stricter than any committed rule: TOWER_2's healthy calls take 1 s (tests/stack/livestack.py),
    # so only this rule fires and the incident is its own.
    rule = {
        "name": "TowerTwoSlow",
        "what": "p95_latency",
        "scope": "tower",
        "target": "TOWER_2",
        "comparison": ">",
        "threshold": 0.5,
        "window": "1m",
        "for": "0s",
        "severity": "critical",
        "summary": "TOWER_2 answers slower than 0.5 s",
    }
    resp = requests.post(f"{s.ecm_api.url}/v1/rules", json=rule, headers=auth, timeout=30)
    assert resp.status_code == 201, resp.text
    assert resp.json()["prometheus"] == "reloaded"
    rule_id = resp.json()["rule_id"]
    key = {"alertname": "EcmRuleTowerTwoSlow", "tower": "TOWER_2"}
    incident = poll(
        "the rule's incident at the pager",
        lambda: _incident_with(s, "EcmRuleTowerTwoSlow"),
        WAIT_S,
        diagnostics=s.diagnostics,
    )
    incident_id = int(incident["id"])
    assert _alertnames(s, incident_id) == {"EcmRuleTowerTwoSlow"}
    poll(
        "the rule's email",
        lambda: s.mails("TOWER_2 answers slower than 0.5 s") or None,
        WAIT_S,
        diagnostics=s.diagnostics,
    )
    status = requests.get(f"{s.ecm_api.url}/v1/rules/{rule_id}/status", timeout=10).json()
    assert status["loaded"] is True and status["state"] == "firing"
    assert [a["tower"] for a in status["active_alerts"]] == ["TOWER_2"]

    warning = {**rule, "severity": "warning"}
    resp = requests.put(
        f"{s.ecm_api.url}/v1/rules/{rule_id}", json=warning, headers=auth, timeout=30
    )
    assert resp.status_code == 200 and resp.json()["version"] == 2, resp.text
    # Prometheus drops the critical alert with the old rule; Alertmanager resolves it when its
    # last notice runs out (4 evaluations), and the pager closes the incident.
    poll(
        "the critical rule's incident to resolve once the rule is a warning",
        lambda: _resolved(s, incident_id),
        WAIT_S,
        diagnostics=s.diagnostics,
    )
    poll(
        "the warning at the tickets receiver",
        lambda: _notified(s.tickets, "firing", severity="warning", **key),
        WAIT_S,
        diagnostics=s.diagnostics,
    )
    resp = requests.delete(f"{s.ecm_api.url}/v1/rules/{rule_id}", headers=auth, timeout=30)
    assert resp.status_code == 200, resp.text
    poll(
        "the deleted rule's alert resolved at the tickets receiver",
        lambda: _notified(s.tickets, "resolved", severity="warning", **key),
        WAIT_S,
        diagnostics=s.diagnostics,
    )
    # The warning never paged: the rule's one incident is the only one.
    assert [i["id"] for i in s.api("/v1/incidents?service=ecm")["incidents"]] == [incident_id]


def _incident_with(s: PagerStack, alertname: str) -> dict[str, Any] | None:
    for summary in s.api("/v1/incidents?service=ecm")["incidents"]:
        if alertname in _alertnames(s, summary["id"]):
            return dict(summary)
    return None


def _notified(sink: WebhookSink, status: str, **labels: str) -> bool | None:
    for note in sink.received():
        if any(a["status"] == status for a in note.alerts(**labels)):
            return True
    return None


def _alertnames(s: PagerStack, incident: int) -> set[str]:
    return {a["alertname"] for a in s.api(f"/v1/incidents/{incident}")["alerts"]}


def _resolved(s: PagerStack, incident: int) -> dict[str, Any] | None:
    detail: dict[str, Any] = s.api(f"/v1/incidents/{incident}")
    return detail if detail["state"] == "resolved" else None


def _watchdog_seen(s: PagerStack) -> bool:
    text = requests.get(s.pager.url + "/metrics", timeout=5).text
    m = re.search(r"^ecm_pager_watchdog_age_seconds (\S+)$", text, re.M)
    # Armed at start with age 0: wait until a real Watchdog has refreshed it recently.
    return m is not None and float(m.group(1)) < 5 and _beats(s) > 0


def _beats(s: PagerStack) -> int:
    text = requests.get(s.pager.url + "/metrics", timeout=5).text
    m = re.search(r"^ecm_pager_webhook_alerts_total (\S+)$", text, re.M)
    return int(float(m.group(1))) if m else 0
