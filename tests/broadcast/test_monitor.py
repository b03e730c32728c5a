"""The monitor's refreshing view: pace measured between refreshes, on a fake clock."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable

import psycopg
import pytest

from broadcast.monitor import render, watch
from broadcast.producer import Campaign
from broadcast.progress import Snapshot, snapshot
from broadcast.queue import Backoff, Outcome, claim, record
from tests.fixtures.clock import FakeClock

pytestmark = pytest.mark.integration


def test_refreshing_view_measures_throughput_between_refreshes(
    conn: psycopg.Connection, make_campaign: Callable[..., Campaign], clock: FakeClock
) -> None:
    make_campaign(100, campaign="drill")
    stop = threading.Event()
    reads = 0

    def read() -> Snapshot:
        # Between the first and the second refresh (5 s on the fake clock), 40 messages end.
        nonlocal reads
        reads += 1
        if reads == 2:
            held = claim(conn, "s1", 40, clock.time(), 30)
            outcomes = [Outcome(c, "delivered", 0.2) for c in held[:30]]
            outcomes += [Outcome(c, "UNDELIV", 0.4) for c in held[30:]]
            record(conn, "s1", outcomes, clock.time(), Backoff(1, 60))
            stop.set()
        return snapshot(conn)

    out = io.StringIO()
    watch(read, out, clock=clock, interval=5, once=False, as_json=False, stop=stop)
    first, second = out.getvalue().split("campaign drill")[1:]
    assert "pending 100  in flight 0  delivered 0  failed 0 (none)" in first
    assert "throughput -  ETA -" in first
    assert "pending 60  in flight 0  delivered 30  failed 10 (UNDELIV 10)" in second
    # 40 finished in 5 s: 8/s; 60 left: 7.5 s.
    assert "throughput 8.0/s  ETA 7.500s" in second
    assert "40.0% done" in second


def test_render_without_campaigns() -> None:
    assert render(Snapshot([], [])) == "no campaigns yet (ecm-broadcast produce --count N)\n"
