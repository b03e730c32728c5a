"""Fixtures of the pager tests: settings with a two-level policy, engines on the pager's own
login, a fake clock, and real receivers (SMTP via aiosmtpd, HTTP) for the notifications."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from prometheus_client import CollectorRegistry
from psycopg_pool import ConnectionPool

from db.roles import LOGINS, PAGER_LOGIN, ensure_login, url_for
from pager.acklink import AckSigner
from pager.config import PagerSettings, load_settings
from pager.engine import Engine
from pager.metrics import PagerMetrics
from tests.fixtures.clock import FakeClock
from tests.fixtures.postgres import EcmDb

START = 1_800_000_000.0
MINUTE = 60.0
SECRET = b"test-ack-secret"


def policy_config(**extra: Any) -> dict[str, Any]:
    """Two levels (email + webhook, then sms), 15-minute default timeouts, one repeat."""
    return {
        "sms_gateway_url": "http://127.0.0.1:9/sms",
        "policies": {
            "standard": {
                "repeat": 1,
                "levels": [
                    {
                        "targets": [
                            {"email": "first@example.org"},
                            {"webhook": "http://127.0.0.1:9/hook"},
                        ]
                    },
                    {"targets": [{"sms": "+15550100"}], "timeout": "10m"},
                ],
            }
        },
        "services": {
            "ecm": {"policy": "standard"},
            "ecm-monitoring": {"policy": "standard"},
            "billing": {"policy": "standard"},
        },
        **extra,
    }


@pytest.fixture
def clock() -> FakeClock:
    """A fixed start time the tests move by hand."""
    return FakeClock(START)


@pytest.fixture
def settings() -> PagerSettings:
    """The test policy as a user's YAML would give it."""
    return load_settings(flags=policy_config(), environ={})


@pytest.fixture
def pager_url(test_db: EcmDb) -> str:
    """URL of the pager's own login (member of ecm_pager_rw) on the test database."""
    ensure_login(test_db.url, PAGER_LOGIN, None, LOGINS[PAGER_LOGIN])
    return url_for(test_db.url, PAGER_LOGIN, None)


@pytest.fixture
def make_engine(
    pager_url: str, clock: FakeClock, settings: PagerSettings
) -> Iterator[Callable[..., Engine]]:
    """Engines (each a 'pager process' with its own pool) on the test database."""
    pools: list[ConnectionPool] = []

    def make(
        settings: PagerSettings = settings, registry: CollectorRegistry | None = None
    ) -> Engine:
        pool = ConnectionPool(
            pager_url, min_size=1, max_size=4, kwargs={"autocommit": True}, open=True
        )
        pools.append(pool)
        metrics = PagerMetrics(registry or CollectorRegistry())
        return Engine(pool, settings, AckSigner(SECRET), clock, metrics)

    yield make
    for pool in pools:
        pool.close()


@pytest.fixture
def engine(make_engine: Callable[..., Engine]) -> Engine:
    """One pager."""
    return make_engine()


@dataclass
class Receiver:
    """A local HTTP endpoint that records what it is sent; answers `fail` statuses first."""

    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    fail: list[int] = field(default_factory=list)


@pytest.fixture
def http_receiver() -> Iterator[Receiver]:
    """A real HTTP server on a free loopback port."""
    receiver = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            size = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(size))
            status = receiver.fail.pop(0) if receiver.fail else 200
            receiver.requests.append(
                {
                    "path": self.path,
                    "body": body,
                    "authorization": self.headers.get("Authorization"),
                    "status": status,
                }
            )
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield receiver
    server.shutdown()
    server.server_close()


@dataclass
class Mailbox:
    """Messages a real SMTP server (aiosmtpd) received."""

    host: str
    port: int
    messages: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def smtp_server() -> Iterator[Mailbox]:
    """An SMTP server on a free loopback port that keeps every message."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    box = Mailbox("127.0.0.1", port)

    class Keep:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            box.messages.append(
                {
                    "from": envelope.mail_from,
                    "to": list(envelope.rcpt_tos),
                    "data": envelope.content.decode("utf-8", "replace"),
                }
            )
            return "250 OK"

    controller = Controller(Keep(), hostname="127.0.0.1", port=port)
    controller.start()
    yield box
    controller.stop()
