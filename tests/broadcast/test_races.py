"""Exactly one outcome per message under races: senders in parallel, a sender killed with
SIGKILL mid-batch, leases that expire and hand messages to others."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from broadcast.metrics import SenderMetrics
from broadcast.outcome import REASONS
from broadcast.producer import Campaign
from broadcast.progress import snapshot
from broadcast.sender import Sender
from ecm_common.clock import SystemClock
from tests.broadcast.conftest import sender_settings, states

pytestmark = [pytest.mark.integration, pytest.mark.slow]
MESSAGES = int(os.environ.get("ECM_BROADCAST_RACE_MESSAGES", "100000"))
DEADLINE_S = 120


def _wait_for(what: str, check: Callable[[], bool]) -> None:
    end = time.monotonic() + DEADLINE_S
    while not check():
        if time.monotonic() > end:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def outcomes_by_sender(conn: psycopg.Connection) -> dict[str, int]:
    """Final outcomes each sender recorded, from the progress counters."""
    rows = conn.execute(
        "SELECT sender_id, sum(n) FROM broadcast_counts"
        " WHERE kind = 'delivered' OR kind LIKE 'failed:%' GROUP BY sender_id"
    )
    return {sid: int(n) for sid, n in rows}


def test_four_senders_record_every_message_once(
    conn: psycopg.Connection, bc_url: str, make_campaign: Callable[..., Campaign]
) -> None:
    make_campaign(MESSAGES, now=time.time(), max_attempts=2)
    senders = [
        Sender(
            bc_url,
            sender_settings(
                mean_time=0.0, failure_rate=0.2, window=50, seed=i, retry_base_delay=0.01
            ),
            f"s{i}",
            clock=SystemClock(),
            rng=random.Random(i),
            metrics=SenderMetrics(),
        )
        for i in range(4)
    ]
    threads = [threading.Thread(target=s.run) for s in senders]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE_S)
    assert not any(t.is_alive() for t in threads)
    final = states(conn)
    assert set(final) == {"delivered", "failed"}
    assert final["delivered"] + final["failed"] == MESSAGES
    # Every sender took part, and what each one's metrics say adds up to the table.
    by_sender = outcomes_by_sender(conn)
    assert sorted(by_sender) == ["s0", "s1", "s2", "s3"] and min(by_sender.values()) > 0
    reg = [s.metrics.registry for s in senders]
    delivered = sum(r.get_sample_value("ecm_broadcast_messages_delivered_total") or 0 for r in reg)
    failed = sum(
        r.get_sample_value("ecm_broadcast_messages_failed_total", {"reason": reason}) or 0
        for r in reg
        for reason in REASONS
    )
    assert (delivered, failed) == (final["delivered"], final["failed"])
    assert sum(s.counts.discarded for s in senders) == 0
    (p,) = snapshot(conn).campaigns
    assert (p.delivered, p.failed_total, p.pending, p.in_flight) == (
        final["delivered"],
        final["failed"],
        0,
        0,
    )


def _sender_process(url: str, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "ECM_DATABASE_URL": url}
    cmd = [sys.executable, "-m", "broadcast", "sender", "--metrics-port", "0", *args]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_killed_sender_messages_are_finished_by_another_after_the_lease(
    conn: psycopg.Connection, bc_url: str, make_campaign: Callable[..., Campaign]
) -> None:
    make_campaign(200, now=time.time())
    # A slow sender claims its window and is killed while every message is in flight.
    slow = _sender_process(
        bc_url, "--sender-id", "doomed", "--mean-time", "60", "--window", "50", "--lease", "1s"
    )
    try:
        _wait_for(
            "the doomed sender's claims",
            lambda: states(conn).get("in_flight", 0) == 50,
        )
    finally:
        slow.send_signal(signal.SIGKILL)
        slow.communicate()
    held = conn.execute(
        "SELECT count(*) FROM broadcast_messages WHERE lease_owner = 'doomed'"
    ).fetchone()
    assert held == (50,)
    rescuer = Sender(
        bc_url,
        sender_settings(mean_time=0.0, failure_rate=0.0, lease=1.0, poll_interval=0.05),
        "rescuer",
        clock=SystemClock(),
        rng=random.Random(1),
    )
    counts = rescuer.run()
    assert states(conn) == {"delivered": 200}
    assert counts.delivered == 200 and counts.reclaimed == 50
    assert outcomes_by_sender(conn) == {"rescuer": 200}


def test_pool_with_a_child_killed_mid_run_finishes_every_message_once(
    conn: psycopg.Connection, bc_url: str, make_campaign: Callable[..., Campaign]
) -> None:
    total = min(MESSAGES, 5_000)
    make_campaign(total, now=time.time(), max_attempts=2)
    pool = _sender_process(
        bc_url,
        *("--senders", "4", "--sender-id", "pool", "--mean-time", "0.05", "--window", "20"),
        *("--failure-rate", "0.1", "--lease", "1s", "--poll-interval", "0.05", "--until-empty"),
        *("--retry-base-delay", "0.01"),
    )
    try:
        _wait_for(
            "pool-1 to hold messages",
            lambda: bool(
                conn.execute(
                    "SELECT 1 FROM broadcast_messages WHERE lease_owner = 'pool-1' LIMIT 1"
                ).fetchone()
            ),
        )
        children = Path(f"/proc/{pool.pid}/task/{pool.pid}/children").read_text().split()
        assert len(children) == 4
        first = min(int(pid) for pid in children)
        os.kill(first, signal.SIGKILL)
        out, _ = pool.communicate(timeout=DEADLINE_S)
    finally:
        if pool.poll() is None:
            pool.kill()
            pool.communicate()
    # The pool reports the killed child's status.
    assert pool.returncode != 0
    assert out.decode().count("sender pool-") == 3
    final = states(conn)
    assert set(final) <= {"delivered", "failed"}
    assert final.get("delivered", 0) + final.get("failed", 0) == total
    by_sender = outcomes_by_sender(conn)
    assert sum(by_sender.values()) == total
    reclaimed = conn.execute(
        "SELECT coalesce(sum(n), 0) FROM broadcast_counts WHERE kind = 'reclaimed'"
    ).fetchone()
    assert reclaimed is not None and reclaimed[0] > 0
