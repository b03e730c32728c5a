"""Fixtures of the broadcast tests: the broadcast login on a fresh database, a fake clock,
settings, and helpers to produce a campaign and run senders in-process."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from broadcast.config import ProduceSettings, SenderSettings
from broadcast.metrics import SenderMetrics
from broadcast.producer import Campaign, produce
from broadcast.sender import Sender
from db.roles import BROADCAST_LOGIN, LOGINS, ensure_login, url_for
from tests.fixtures.clock import FakeClock
from tests.fixtures.postgres import EcmDb

START = 1_800_000_000.0


@pytest.fixture
def clock() -> FakeClock:
    """A fixed start time the tests move by hand."""
    return FakeClock(START)


@pytest.fixture
def bc_url(test_db: EcmDb) -> str:
    """URL of the broadcast's own login (member of ecm_broadcast_rw) on the test database."""
    ensure_login(test_db.url, BROADCAST_LOGIN, None, LOGINS[BROADCAST_LOGIN])
    return url_for(test_db.url, BROADCAST_LOGIN, None)


@pytest.fixture
def conn(bc_url: str) -> Iterator[psycopg.Connection]:
    """An autocommit connection as the broadcast login."""
    with psycopg.connect(bc_url, autocommit=True) as c:
        yield c


def sender_settings(**kw: Any) -> SenderSettings:
    """Sender settings for tests: no metrics port, exit when the queue is empty."""
    base: dict[str, Any] = {"metrics_port": 0, "until_empty": True, "seed": 1}
    return SenderSettings(**{**base, **kw})


@pytest.fixture
def make_campaign(conn: psycopg.Connection, clock: FakeClock) -> Callable[..., Campaign]:
    """Produce a campaign now (by the fake clock)."""

    def make(count: int, now: float | None = None, **kw: Any) -> Campaign:
        s = ProduceSettings(count=count, seed=7, **kw)
        return produce(conn, s, clock.time() if now is None else now)

    return make


@pytest.fixture
def make_sender(bc_url: str, clock: FakeClock) -> Callable[..., Sender]:
    """A sender on the fake clock with its own metrics registry."""

    def make(sender_id: str = "s1", stop: threading.Event | None = None, **kw: Any) -> Sender:
        s = sender_settings(**kw)
        return Sender(
            bc_url,
            s,
            sender_id,
            clock=clock,
            rng=random.Random(s.seed),
            metrics=SenderMetrics(),
            stop=stop,
        )

    return make


def states(conn: psycopg.Connection) -> dict[str, int]:
    """Messages by state, counted on the messages table itself."""
    rows = conn.execute("SELECT state, count(*) FROM broadcast_messages GROUP BY state")
    return {state: n for state, n in rows}
