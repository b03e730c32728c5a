"""The queue on a real PostgreSQL: leases, stale holders, retries with backoff, cancel."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable

import psycopg
import pytest

from broadcast.metrics import SenderMetrics
from broadcast.producer import Campaign, NoSuchCampaign, cancel
from broadcast.progress import snapshot
from broadcast.queue import Backoff, Outcome, claim, reclaim, record
from broadcast.sender import Sender
from tests.broadcast.conftest import START, sender_settings, states
from tests.fixtures.clock import FakeClock
from tests.fixtures.postgres import EcmDb

pytestmark = pytest.mark.integration
BACKOFF = Backoff(base=10.0, max_delay=60.0)


def test_claims_do_not_overlap_and_follow_priority(
    conn: psycopg.Connection, make_campaign: Callable[..., Campaign], clock: FakeClock
) -> None:
    make_campaign(5, campaign="low", priority=1)
    make_campaign(5, campaign="high", priority=9)
    first = claim(conn, "a", 6, clock.time(), 30)
    second = claim(conn, "b", 6, clock.time(), 30)
    ids = [c.message_id for c in first + second]
    assert len(ids) == len(set(ids)) == 10
    assert claim(conn, "c", 6, clock.time(), 30) == []
    high = conn.execute(
        "SELECT campaign_id FROM broadcast_campaigns WHERE name = 'high'"
    ).fetchone()
    assert high is not None
    assert [c.campaign_id for c in first[:5]] == [high[0]] * 5


def test_stale_lease_holder_cannot_record(
    conn: psycopg.Connection, make_campaign: Callable[..., Campaign], clock: FakeClock
) -> None:
    make_campaign(1)
    (old,) = claim(conn, "a", 1, clock.time(), 5)
    clock.advance(6)
    assert reclaim(conn, "b", clock.time()) == 1
    (new,) = claim(conn, "b", 1, clock.time(), 5)
    assert new.message_id == old.message_id and new.token != old.token
    # The old holder answers late: nothing is recorded.
    assert record(conn, "a", [Outcome(old, "delivered", 0.1)], clock.time(), BACKOFF) == []
    stored = record(conn, "b", [Outcome(new, "UNDELIV", 0.2)], clock.time(), BACKOFF)
    assert [(r.state, r.outcome) for r in stored] == [("failed", "UNDELIV")]
    # ... and recording twice with the same token does nothing either.
    assert record(conn, "b", [Outcome(new, "delivered", 0.2)], clock.time(), BACKOFF) == []
    row = conn.execute("SELECT state, failure_reason, attempts FROM broadcast_messages").fetchone()
    assert row == ("failed", "UNDELIV", 2)


def test_lease_held_is_not_reclaimed(
    conn: psycopg.Connection, make_campaign: Callable[..., Campaign], clock: FakeClock
) -> None:
    make_campaign(3)
    claim(conn, "a", 3, clock.time(), 5)
    clock.advance(4)
    assert reclaim(conn, "b", clock.time()) == 0


def test_retryable_failure_comes_back_after_backoff_until_the_limit(
    conn: psycopg.Connection, make_campaign: Callable[..., Campaign], clock: FakeClock
) -> None:
    make_campaign(1, max_attempts=3)
    delays = []
    for attempt in (1, 2):
        (c,) = claim(conn, "a", 1, clock.time(), 30)
        assert c.attempt == attempt
        (r,) = record(conn, "a", [Outcome(c, "THROTTLED", 0.1)], clock.time(), BACKOFF)
        assert r.state == "pending"
        row = conn.execute(
            "SELECT extract(epoch FROM next_attempt_at) FROM broadcast_messages"
        ).fetchone()
        assert row is not None
        delays.append(float(row[0]) - clock.time())
        # Not due yet: nothing to claim until the backoff has passed.
        assert claim(conn, "a", 1, clock.time(), 30) == []
        clock.advance(delays[-1])
    assert delays == [10.0, 20.0]
    (c,) = claim(conn, "a", 1, clock.time(), 30)
    (r,) = record(conn, "a", [Outcome(c, "THROTTLED", 0.1)], clock.time(), BACKOFF)
    assert (r.state, c.attempt) == ("failed", 3)
    (p,) = snapshot(conn).campaigns
    assert (p.failed["THROTTLED"], p.retried, p.pending, p.in_flight) == (1, 2, 0, 0)


def test_permanent_failure_is_not_retried(
    conn: psycopg.Connection, make_campaign: Callable[..., Campaign], clock: FakeClock
) -> None:
    make_campaign(1, max_attempts=5)
    (c,) = claim(conn, "a", 1, clock.time(), 30)
    (r,) = record(conn, "a", [Outcome(c, "REJECTD", 0.1)], clock.time(), BACKOFF)
    assert r.state == "failed"


def test_cancel_stops_pending_and_in_flight_finish(
    conn: psycopg.Connection, make_campaign: Callable[..., Campaign], clock: FakeClock
) -> None:
    make_campaign(10, campaign="drill")
    held = claim(conn, "a", 4, clock.time(), 30)
    assert cancel(conn, "drill", clock.time()) == 6
    assert claim(conn, "b", 10, clock.time(), 30) == []
    stored = record(
        conn,
        "a",
        [Outcome(c, "delivered", 0.1) for c in held[:3]] + [Outcome(held[3], "THROTTLED", 0.1)],
        clock.time(),
        BACKOFF,
    )
    # A retryable failure of a cancelled campaign is not retried.
    assert sorted(r.state for r in stored) == ["delivered"] * 3 + ["failed"]
    assert states(conn) == {"cancelled": 6, "delivered": 3, "failed": 1}
    (p,) = snapshot(conn).campaigns
    assert (p.cancelled, p.delivered, p.failed_total, p.pending, p.in_flight) == (6, 3, 1, 0, 0)
    assert p.cancelled_at is not None


def test_cancel_unknown_campaign(conn: psycopg.Connection, clock: FakeClock) -> None:
    with pytest.raises(NoSuchCampaign, match="no campaign named 'nope'"):
        cancel(conn, "nope", clock.time())


def test_message_claimed_after_cancel_is_withdrawn(
    conn: psycopg.Connection,
    make_campaign: Callable[..., Campaign],
    make_sender: Callable[..., Sender],
    clock: FakeClock,
) -> None:
    make_campaign(2, campaign="drill")
    # The cancel commits between a sender's claim snapshot and its send: simulate by marking
    # the campaign cancelled without touching its messages.
    conn.execute("UPDATE broadcast_campaigns SET cancelled_at = now()")
    counts = make_sender(mean_time=0.5, failure_rate=0.0).run()
    assert (counts.withdrawn, counts.delivered) == (2, 0)
    assert states(conn) == {"cancelled": 2}
    (p,) = snapshot(conn).campaigns
    assert (p.cancelled, p.pending, p.in_flight) == (2, 0, 0)


def test_sender_finishes_campaign_exactly_once_with_retries(
    conn: psycopg.Connection,
    make_campaign: Callable[..., Campaign],
    make_sender: Callable[..., Sender],
    clock: FakeClock,
) -> None:
    make_campaign(500, max_attempts=3)
    sender = make_sender(mean_time=0.2, failure_rate=0.3, window=20, retry_base_delay=1.0)
    counts = sender.run()
    final = states(conn)
    assert set(final) <= {"delivered", "failed"}
    assert final.get("delivered", 0) + final.get("failed", 0) == 500
    assert counts.delivered == final["delivered"] and counts.failed == final["failed"]
    assert counts.requeued > 0 and counts.discarded == 0
    (p,) = snapshot(conn).campaigns
    assert (p.delivered, p.failed_total, p.pending, p.in_flight) == (
        final["delivered"],
        final["failed"],
        0,
        0,
    )
    # Retried messages took more than one attempt; none more than the limit.
    row = conn.execute(
        "SELECT max(attempts), count(*) FILTER (WHERE attempts > 1) FROM broadcast_messages"
    ).fetchone()
    assert row is not None and row[0] <= 3 and 0 < row[1] <= counts.requeued
    # The sender's metrics say the same as the database.
    reg = sender.metrics.registry
    assert reg.get_sample_value("ecm_broadcast_messages_delivered_total") == final["delivered"]
    failed = sum(
        reg.get_sample_value("ecm_broadcast_messages_failed_total", {"reason": r}) or 0
        for r in ("UNDELIV", "EXPIRED", "REJECTD", "THROTTLED")
    )
    assert failed == final["failed"]


def test_window_bounds_messages_in_flight(
    conn: psycopg.Connection,
    make_campaign: Callable[..., Campaign],
    make_sender: Callable[..., Sender],
    clock: FakeClock,
) -> None:
    make_campaign(100)
    sender = make_sender(mean_time=1.0, failure_rate=0.0, window=7, batch_size=50)
    seen: list[int] = []
    real = sender._claim

    def watch(n: int, now: float) -> int | None:
        got = real(n, now)
        seen.append(len(sender._sending))
        return got

    sender._claim = watch  # type: ignore[method-assign]
    sender.run()
    assert max(seen) == 7
    assert states(conn) == {"delivered": 100}


def test_rate_limit_bounds_sends_per_second(
    conn: psycopg.Connection,
    make_campaign: Callable[..., Campaign],
    make_sender: Callable[..., Sender],
    clock: FakeClock,
) -> None:
    make_campaign(200)
    start = clock.time()
    make_sender(mean_time=0.0, failure_rate=0.0, rate_limit=50, window=100).run()
    assert states(conn) == {"delivered": 200}
    # 200 sends at 50/s, the first second's burst included, take at least 3 simulated seconds.
    assert clock.time() - start >= 3.0


@pytest.mark.parametrize("role", ["reader_url", "writer_url"])
def test_other_roles_cannot_read_recipients(test_db: EcmDb, role: str) -> None:
    with (
        psycopg.connect(getattr(test_db, role)) as c,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        c.execute("SELECT recipient FROM broadcast_messages")


class _DroppingClock(FakeClock):
    """A fake clock that cuts the sender's database connection at its first wait."""

    def __init__(self, now: float, admin_url: str) -> None:
        super().__init__(now)
        self.admin_url, self.cut = admin_url, False

    def wait(self, seconds: float, event: threading.Event) -> bool:
        if not self.cut:
            self.cut = True
            with psycopg.connect(self.admin_url, autocommit=True) as c:
                c.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE application_name = 'ecm-broadcast-sender'"
                )
        return super().wait(seconds, event)


def test_sender_keeps_its_outcomes_through_a_lost_connection(
    conn: psycopg.Connection,
    bc_url: str,
    test_db: EcmDb,
    make_campaign: Callable[..., Campaign],
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = _DroppingClock(START, test_db.url)
    make_campaign(50, now=clock.time())
    metrics = SenderMetrics()
    sender = Sender(
        bc_url,
        sender_settings(mean_time=1.0, failure_rate=0.0, window=50),
        "s1",
        clock=clock,
        rng=random.Random(1),
        metrics=metrics,
    )
    counts = sender.run()
    assert clock.cut
    assert "database unavailable, will retry" in caplog.text
    assert (counts.delivered, counts.discarded) == (50, 0)
    assert states(conn) == {"delivered": 50}
    assert metrics.registry.get_sample_value("ecm_broadcast_database_up") == 1
