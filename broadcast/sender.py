"""One sender: claim in batches under a lease, keep up to `window` messages in flight, record.

Sends are simulated (broadcast.simulate), so "in flight" is a heap of completion times: one
thread keeps the whole window, and an injected clock makes a run exact and instant in tests.
An outcome is recorded only while the lease is held (broadcast.queue); leases of messages still
in flight are renewed every third of the lease; when the database goes away the sender keeps
its outcomes and tries again, and outcomes whose lease expired meanwhile are discarded (the
message was handed to another sender, which records it once).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import psycopg

from broadcast import queries
from broadcast.config import SenderSettings
from broadcast.metrics import SenderMetrics
from broadcast.outcome import DELIVERED, WITHDRAWN
from broadcast.queue import (
    Backoff,
    Claim,
    Outcome,
    Recorded,
    claim,
    queue_empty,
    reclaim,
    record,
    renew,
    ts,
)
from broadcast.simulate import Smsc
from ecm_common.clock import Clock
from ecm_common.db import connect, describe
from ecm_common.errors import DatabaseUnavailable

log = logging.getLogger(__name__)

HEARTBEAT_S = 5.0
T = TypeVar("T")


@dataclass
class RunCounts:
    """What one sender did."""

    claimed: int = 0
    delivered: int = 0
    failed: int = 0
    requeued: int = 0
    withdrawn: int = 0
    reclaimed: int = 0
    discarded: int = 0

    def summary(self) -> str:
        """One line for the end of a run."""
        return ", ".join(f"{k} {v}" for k, v in vars(self).items())


@dataclass(order=True)
class _Sending:
    done_at: float
    seq: int
    outcome: Outcome = field(compare=False)


class Sender:
    """A sender loop over one database connection."""

    def __init__(
        self,
        url: str,
        s: SenderSettings,
        sender_id: str,
        *,
        clock: Clock,
        rng: random.Random,
        metrics: SenderMetrics | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.url, self.s, self.sender_id, self.clock = url, s, sender_id, clock
        self.smsc = Smsc(s.mean_time, s.failure_rate, rng)
        self.metrics = metrics or SenderMetrics()
        self.stop = stop or threading.Event()
        self.counts = RunCounts()
        self.backoff = Backoff(s.retry_base_delay, s.retry_max_delay)
        self._conn: psycopg.Connection | None = None
        self._sending: list[_Sending] = []
        self._done: list[Outcome] = []
        self._seq = itertools.count()
        self._tokens = 0.0
        self._tokens_at = clock.time()
        self.metrics.window.set(s.window)
        self.metrics.database_up.set(0)

    # -- database access: an outage becomes a metric and a retry, never a crash ---------------

    def _call(self, fn: Callable[[psycopg.Connection], T]) -> T | None:
        try:
            if self._conn is None or self._conn.closed:
                self._conn = connect(self.url, autocommit=True, app="ecm-broadcast-sender")
            result = fn(self._conn)
        except (psycopg.OperationalError, DatabaseUnavailable) as exc:
            reason = describe(exc) if isinstance(exc, psycopg.Error) else str(exc)
            log.warning("database unavailable, will retry: %s", reason)
            self.metrics.database_up.set(0)
            if self._conn is not None:
                self._conn.close()
            self._conn = None
            return None
        self.metrics.database_up.set(1)
        return result

    def _register(self, now: float) -> None:
        def reg(conn: psycopg.Connection) -> None:
            conn.execute(
                queries.REGISTER_SENDER,
                {
                    "sender": self.sender_id,
                    "mean_time": self.s.mean_time,
                    "failure_rate": self.s.failure_rate,
                    "window": self.s.window,
                    "now": ts(now),
                },
            )

        self._call(reg)

    # -- the loop ------------------------------------------------------------------------------

    def run(self) -> RunCounts:
        """Send until stopped (or, with until_empty, until no message is pending or in flight)."""
        s = self.s
        now = self.clock.time()
        self._register(now)
        next_reclaim = now
        next_renew = now + s.lease / 3
        next_beat = now + HEARTBEAT_S
        min_claim = max(1, min(s.batch_size, s.window) // 4)
        stopping = False
        while True:
            now = self.clock.time()
            while self._sending and self._sending[0].done_at <= now:
                self._done.append(heapq.heappop(self._sending).outcome)
            if self._done:
                self._record(now)
            if stopping and not self._sending and not self._done:
                break
            if now >= next_reclaim:
                self._reclaim(now)
                next_reclaim = now + min(s.poll_interval, s.lease / 2)
            if self._sending and now >= next_renew:
                self._renew(now)
                next_renew = now + s.lease / 3
            if now >= next_beat:
                self._heartbeat(now)
                next_beat = now + HEARTBEAT_S
            free = s.window - len(self._sending)
            idle = False
            wait_until = self._sending[0].done_at if self._sending else math.inf
            if not stopping and free >= min_claim:
                n = min(free, s.batch_size, self._allowed(now))
                if n > 0:
                    got = self._claim(n, now)
                    if got is None or got == 0:
                        idle = True
                        wait_until = min(wait_until, now + s.poll_interval)
                    else:
                        continue
                else:
                    assert s.rate_limit is not None
                    # At least a millisecond: time stored as Unix seconds has about that precision.
                    wait_until = min(wait_until, now + max((1 - self._tokens) / s.rate_limit, 1e-3))
            if self._done:  # a record failed: try again after a pause
                wait_until = min(wait_until, now + s.poll_interval)
            drained = idle and not self._sending and not self._done
            if s.until_empty and drained and self._call(queue_empty):
                break
            if math.isinf(wait_until):
                wait_until = now + s.poll_interval
            if self.clock.wait(wait_until - now, self.stop):
                stopping = True
        if self._conn is not None:
            self._conn.close()
        self.metrics.in_flight.set(0)
        log.info("sender %s stopped: %s", self.sender_id, self.counts.summary())
        return self.counts

    def _reclaim(self, now: float) -> None:
        n = self._call(lambda c: reclaim(c, self.sender_id, now))
        if n:
            self.counts.reclaimed += n
            self.metrics.reclaimed.inc(n)

    def _heartbeat(self, now: float) -> None:
        self._call(
            lambda c: c.execute(queries.HEARTBEAT, {"sender": self.sender_id, "now": ts(now)})
        )

    def _allowed(self, now: float) -> int:
        """Sends the rate limit allows now (a token bucket holding one second of sends)."""
        rate = self.s.rate_limit
        if rate is None:
            return self.s.batch_size
        self._tokens = min(max(rate, 1.0), self._tokens + (now - self._tokens_at) * rate)
        self._tokens_at = now
        return int(self._tokens + 1e-9)

    def _claim(self, n: int, now: float) -> int | None:
        got = self._call(lambda c: claim(c, self.sender_id, n, now, self.s.lease))
        if got is None:
            return None
        for c in got:
            if c.cancelled:
                seconds, outcome = 0.0, WITHDRAWN
            else:
                seconds, outcome = self.smsc.attempt()
                self._tokens -= 1
            heapq.heappush(
                self._sending,
                _Sending(now + seconds, next(self._seq), Outcome(c, outcome, seconds)),
            )
        self.counts.claimed += len(got)
        self.metrics.claimed.inc(len(got))
        self.metrics.in_flight.set(len(self._sending) + len(self._done))
        return len(got)

    def _renew(self, now: float) -> None:
        held: list[Claim] = [x.outcome.claim for x in self._sending]
        kept = self._call(lambda c: renew(c, held, now, self.s.lease))
        if kept is None:
            return
        lost = [x for x in self._sending if x.outcome.claim.message_id not in kept]
        if lost:
            log.warning("lost the lease of %d messages in flight; not recording them", len(lost))
            self._sending = [x for x in self._sending if x.outcome.claim.message_id in kept]
            heapq.heapify(self._sending)
            self.counts.discarded += len(lost)
            self.metrics.discarded.inc(len(lost))
            self.metrics.in_flight.set(len(self._sending) + len(self._done))

    def _record(self, now: float) -> None:
        done = self._done
        stored = self._call(lambda c: record(c, self.sender_id, done, now, self.backoff))
        if stored is None:
            return
        self._done = []
        self._count(stored, len(done), now)

    def _count(self, stored: list[Recorded], sent: int, now: float) -> None:
        m, k = self.metrics, self.counts
        for r in stored:
            if r.outcome == WITHDRAWN:
                k.withdrawn += 1
                m.withdrawn.inc()
                continue
            m.send_duration.observe(r.seconds)
            if r.state == "pending":
                k.requeued += 1
                m.requeued.labels(r.outcome).inc()
            elif r.outcome == DELIVERED:
                k.delivered += 1
                m.delivered.inc()
            else:
                k.failed += 1
                m.failed.labels(r.outcome).inc()
        if sent > len(stored):
            log.warning("%d outcomes not recorded: their lease had expired", sent - len(stored))
            k.discarded += sent - len(stored)
            m.discarded.inc(sent - len(stored))
        if stored:
            m.last_outcome.set(now)
        m.in_flight.set(len(self._sending))
