"""Fixtures of the API tests: the real app on a real uvicorn socket, on a fresh database, as the
real ecm_api login; the rollup job driven by hand with a clock the test moves."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from api.app import Api, build
from api.config import ApiSettings
from db.roles import API_LOGIN, LOGINS, ensure_login, url_for
from ecm_common.service import BackgroundServer
from tests.fixtures.clock import FakeClock
from tests.fixtures.postgres import EcmDb, PgServer

SEED_METRICS = {
    "dl_prb_util_pct": 73.2,
    "ul_prb_util_pct": 41.8,
    "rrc_conn_avg": 18,
    "drop_rate_pct": 0.7,
}
NOW = 1_780_000_000.0  # 2026-05-28, mid-bucket: 5-minute buckets are whole multiples of 300


@dataclass
class Served:
    """A running API: its client, its parts, its clock and its database."""

    client: httpx.Client
    api: Api
    clock: FakeClock
    db: EcmDb
    api_url: str


def event(
    entity: str = "CELL-000001",
    *,
    at: float = NOW,
    event_id: uuid.UUID | None = None,
    metrics: dict[str, float] | None = None,
) -> dict[str, Any]:
    """A valid event in the seed's shape (metrics default to the seed's example)."""
    return {
        "event_id": str(event_id or uuid.uuid4()),
        "schema_version": 1,
        "source": "pmgen",
        "event_time": datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z"),
        "entity_type": "cell",
        "entity_id": entity,
        "metrics": metrics
        or {
            "dl_prb_util_pct": 73.2,
            "ul_prb_util_pct": 41.8,
            "rrc_conn_avg": 18,
            "drop_rate_pct": 0.7,
        },
    }


@pytest.fixture(scope="session")
def api_login(pg_server: PgServer) -> str:
    """The API's login role (cluster-wide), as init-db creates it."""
    ensure_login(pg_server.url("postgres"), API_LOGIN, None, LOGINS[API_LOGIN])
    return API_LOGIN


@pytest.fixture
def serve_api(test_db: EcmDb, api_login: str) -> Iterator[Callable[..., Served]]:
    """Start the API (jobs off: tests fold by hand) with these settings; a client on its URL."""
    started: list[tuple[BackgroundServer, httpx.Client, Api]] = []

    def start(
        token: str | None = None,
        url: str | None = None,
        read_token: str | None = None,
        **options: Any,
    ) -> Served:
        options.setdefault("port", 0)
        options.setdefault("listen_address", "127.0.0.1")
        options.setdefault("db_timeout", "2s")
        settings = ApiSettings.model_validate(options)
        api_url = url or url_for(test_db.url, api_login, None)
        clock = FakeClock(NOW)
        api = build(
            settings,
            api_url,
            CollectorRegistry(),
            token=SecretStr(token) if token else None,
            read_token=SecretStr(read_token) if read_token else None,
            clock=clock,
            jobs=False,
        )
        srv = BackgroundServer(api.app, settings.http).start()
        client = httpx.Client(base_url=srv.url, timeout=30)
        started.append((srv, client, api))
        return Served(client, api, clock, test_db, api_url)

    yield start
    for srv, client, api in started:
        client.close()
        srv.stop()
        api.rollup.close()
        api.call_rollup.close()


@pytest.fixture
def served(serve_api: Callable[..., Served]) -> Served:
    """The API with default settings."""
    return serve_api()


def wait_for(check: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Poll until check() is true (a server's readiness, never time logic)."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)
