"""Sending the outbox through real receivers: an SMTP server (aiosmtpd) and HTTP endpoints."""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from email import message_from_string
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from pager.channels import Channels
from pager.config import PagerSettings, Secrets, load_settings
from pager.engine import Engine
from pager.outbox import OutboxSender
from tests.fixtures.clock import FakeClock
from tests.pager.conftest import MINUTE, Mailbox, Receiver, policy_config
from tests.pager.helpers import alert, hook, rows

pytestmark = pytest.mark.integration

SMS_TOKEN = "sms-gateway-token"


def _settings(mailbox: Mailbox, receiver: Receiver, **extra: object) -> PagerSettings:
    cfg = policy_config(
        smtp_host=mailbox.host,
        smtp_port=mailbox.port,
        sms_gateway_url=f"{receiver.url}/sms",
        send_backoff="30s",
        send_attempts=3,
        **extra,
    )
    cfg["policies"]["standard"]["levels"][0]["targets"][1] = {"webhook": f"{receiver.url}/hook"}
    return load_settings(flags=cfg, environ={})


def _sender(engine: Engine, clock: FakeClock) -> OutboxSender:
    secrets = Secrets(None, None, None, None, SecretStr(SMS_TOKEN))
    return OutboxSender(
        engine.pool, engine.settings, Channels(engine.settings, secrets), clock, engine.metrics
    )


def _sample(registry: CollectorRegistry, name: str, channel: str) -> float:
    return registry.get_sample_value(name, {"channel": channel}) or 0.0


@dataclass
class Paging:
    """An engine and its outbox sender wired to the real receivers, and its metrics."""

    engine: Engine
    sender: OutboxSender
    registry: CollectorRegistry


@pytest.fixture
def paging(
    make_engine: Callable[..., Engine],
    smtp_server: Mailbox,
    http_receiver: Receiver,
    clock: FakeClock,
) -> Paging:
    """The test policy with the SMTP server and the HTTP receiver as its targets."""
    registry = CollectorRegistry()
    engine = make_engine(_settings(smtp_server, http_receiver), registry)
    return Paging(engine, _sender(engine, clock), registry)


def test_each_channel_delivers_with_an_ack_link(
    paging: Paging,
    smtp_server: Mailbox,
    http_receiver: Receiver,
    clock: FakeClock,
    pager_url: str,
) -> None:
    engine, sender, registry = paging.engine, paging.sender, paging.registry
    incident = engine.ingest(hook(alert("a1"))).opened[0]
    assert sender.send_due() == 2
    [mail] = smtp_server.messages
    assert mail["to"] == ["first@example.org"]
    parsed = message_from_string(mail["data"])
    assert parsed["Subject"].startswith(f"[ECM] incident #{incident} on ecm:")
    assert f"http://127.0.0.1:9744/v1/ack/{incident}." in parsed.get_payload()
    [hook_call] = http_receiver.requests
    assert hook_call["path"] == "/hook"
    assert hook_call["body"]["incident_id"] == incident
    assert hook_call["body"]["ack_url"].startswith(f"http://127.0.0.1:9744/v1/ack/{incident}.")
    # Level 2 is the SMS: the documented body and the gateway token.
    clock.advance(15 * MINUTE)
    engine.escalate_due()
    assert sender.send_due() == 1
    sms = http_receiver.requests[-1]
    assert sms["path"] == "/sms"
    assert sms["authorization"] == f"Bearer {SMS_TOKEN}"
    assert sorted(sms["body"]) == ["ack_url", "incident_id", "text", "to"]
    assert sms["body"]["to"] == "+15550100"
    assert _sample(registry, "ecm_pager_notifications_sent_total", "email") == 1
    assert _sample(registry, "ecm_pager_notifications_sent_total", "sms") == 1
    assert rows(pager_url, "SELECT DISTINCT state FROM pager_outbox") == [("sent",)]


def test_a_failing_channel_is_retried_with_backoff_and_recorded(
    paging: Paging,
    smtp_server: Mailbox,
    http_receiver: Receiver,
    clock: FakeClock,
    pager_url: str,
) -> None:
    engine, sender, registry = paging.engine, paging.sender, paging.registry
    http_receiver.fail = [500]
    incident = engine.ingest(hook(alert("a1"))).opened[0]
    assert sender.send_due() == 2
    # The email went; the webhook failed once and waits for its backoff.
    assert len(smtp_server.messages) == 1
    assert rows(pager_url, "SELECT channel, state, attempts, last_error FROM pager_outbox") == [
        ("email", "sent", 1, None),
        ("webhook", "pending", 1, "HTTP 500 from the 127.0.0.1 endpoint"),
    ]
    assert _sample(registry, "ecm_pager_notification_failures_total", "webhook") == 1
    clock.advance(29)
    assert sender.send_due() == 0
    clock.advance(1)
    assert sender.send_due() == 1
    assert [r["status"] for r in http_receiver.requests] == [500, 200]
    kinds = rows(
        pager_url,
        "SELECT kind FROM pager_events WHERE kind LIKE 'notification%%' AND incident_id = %s"
        " ORDER BY event_id",
        incident,
    )
    assert kinds == [
        ("notification sent",),
        ("notification attempt failed",),
        ("notification sent",),
    ]


def test_a_dead_channel_gives_up_and_never_stops_the_escalation(
    paging: Paging,
    smtp_server: Mailbox,
    http_receiver: Receiver,
    clock: FakeClock,
    pager_url: str,
) -> None:
    engine, sender, registry = paging.engine, paging.sender, paging.registry
    http_receiver.fail = [503, 503, 503, 503]
    engine.ingest(hook(alert("a1")))
    for wait in (0, 30, 60):
        clock.advance(wait)
        sender.send_due()
    assert rows(
        pager_url, "SELECT state, attempts FROM pager_outbox WHERE channel = 'webhook'"
    ) == [("failed", 3)]
    assert _sample(registry, "ecm_pager_notifications_abandoned_total", "webhook") == 1
    clock.advance(15 * MINUTE)
    assert engine.escalate_due() == 1
    assert rows(pager_url, "SELECT max(level) FROM pager_outbox") == [(2,)]


def test_email_with_no_smtp_server_fails_as_a_recorded_attempt(
    make_engine: Callable[..., Engine], clock: FakeClock, pager_url: str
) -> None:
    engine = make_engine(load_settings(flags=policy_config(send_attempts=1), environ={}))
    sender = _sender(engine, clock)
    engine.ingest(hook(alert("a1")))
    sender.send_due()
    assert rows(pager_url, "SELECT channel, state, last_error FROM pager_outbox") == [
        ("email", "failed", "no smtp_host configured"),
        ("webhook", "failed", "ConnectionError talking to the endpoint"),
    ]


def test_email_logs_in_when_a_user_is_configured(
    make_engine: Callable[..., Engine], clock: FakeClock
) -> None:
    logins: list[tuple[bytes, bytes]] = []

    def authenticate(
        server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        logins.append((data.login, data.password))
        return AuthResult(success=data.password == b"smtp-secret")

    class Keep:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            received.append(envelope.rcpt_tos)
            return "250 OK"

    received: list[list[str]] = []
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # Login over plain SMTP is for this test only: a real server wants STARTTLS first.
    controller = Controller(
        Keep(), hostname="127.0.0.1", port=port, authenticator=authenticate,
        auth_require_tls=False,
    )  # fmt: skip
    controller.start()
    try:
        cfg = policy_config(smtp_host="127.0.0.1", smtp_port=port, smtp_user="pager")
        engine = make_engine(load_settings(flags=cfg, environ={}))
        secrets = Secrets(None, None, None, SecretStr("smtp-secret"), None)
        sender = OutboxSender(
            engine.pool, engine.settings, Channels(engine.settings, secrets), clock
        )
        engine.ingest(hook(alert("a1")))
        sender.send_due()
    finally:
        controller.stop()
    assert logins == [(b"pager", b"smtp-secret")]
    assert received == [["first@example.org"]]
