"""Section 10: the SMS broadcast queue's own limit, beside raw UPDATEs of the same rows.

Senders run as users run them (`python -m broadcast sender --senders K --until-empty`, their
own processes). Each run starts from empty tables: a campaign is produced (not timed), the
senders drain it, and the pace is read from the messages themselves: messages over the span
from the first claim to the last outcome (process start-up is left out). Baseline, in the same
run and on the same rows: one connection moving the messages pending -> in_flight -> delivered
with two plain UPDATEs per batch of the senders' batch size, no lock, lease or counter.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass

import psycopg

from bench.report import Row, verdict
from ecm_common.db import connect

log = logging.getLogger(__name__)

SENDERS = (1, 2, 4)
BATCH = 50
WINDOW = 50
SLOW_MEAN_S = 0.1
SLOW_WINDOW = 20
QUEUE_GOAL = 0.3
SCALE_GOAL = 3.5
RUN_TIMEOUT_S = 900

NOTE = (
    "10: the SMS broadcast. A campaign is produced into empty tables (not timed), then "
    "`python -m broadcast sender --senders K --until-empty` drains it; messages per second over "
    "the span from the first claim to the last recorded outcome, read from the messages. Zero "
    f"send time shows the queue's own limit (claim with SKIP LOCKED under a lease, record under "
    f"the lease token, counters in the same transactions; window {WINDOW}, batches of "
    f"{BATCH}); the baseline moves the same rows pending -> in_flight -> delivered with two "
    "plain UPDATEs per batch on one connection. Then a mean send time of "
    f"{SLOW_MEAN_S:g} s (exponential) with window {SLOW_WINDOW}: 4 senders against 1. Latency: "
    "claim to recorded outcome per message, p95."
)


@dataclass(frozen=True)
class BroadcastPlan:
    """Messages per run."""

    fast_messages: int
    slow_messages_per_sender: int


QUICK_PLAN = BroadcastPlan(fast_messages=2_000, slow_messages_per_sender=100)
FULL_PLAN = BroadcastPlan(fast_messages=100_000, slow_messages_per_sender=1_500)


@dataclass(frozen=True)
class Drain:
    """One run: messages, how many ended delivered, rate, p95 claim-to-outcome."""

    senders: int
    messages: int
    delivered: int
    per_s: float
    p95_s: float


@dataclass(frozen=True)
class BroadcastResult:
    """Every run of section 10."""

    plan: BroadcastPlan
    fast: list[Drain]
    raw_per_s: float
    slow: list[Drain]


def _reset(conn: psycopg.Connection) -> None:
    conn.execute(
        "TRUNCATE broadcast_counts, broadcast_messages, broadcast_campaigns, broadcast_senders"
    )


def _produce(url: str, n: int) -> None:
    subprocess.run(
        [sys.executable, "-m", "broadcast", "produce", "--count", str(n), "--no-progress"],
        env={**os.environ, "ECM_DATABASE_URL": url, "ECM_LOG_LEVEL": "WARNING"},
        check=True,
        capture_output=True,
        timeout=RUN_TIMEOUT_S,
    )


def _drain(url: str, senders: int, mean_time: float, window: int) -> None:
    subprocess.run(
        [sys.executable, "-m", "broadcast", "sender", "--senders", str(senders),
         "--mean-time", str(mean_time), "--failure-rate", "0", "--window", str(window),
         "--batch-size", str(BATCH), "--until-empty", "--poll-interval", "0.05",
         "--metrics-port", "0", "--log-level", "WARNING"],
        env={**os.environ, "ECM_DATABASE_URL": url},
        check=True,
        capture_output=True,
        timeout=RUN_TIMEOUT_S,
    )  # fmt: skip


def _measure(conn: psycopg.Connection, senders: int) -> Drain:
    row = conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE state = 'delivered'),"
        " extract(epoch FROM max(finished_at) - min(claimed_at)),"
        " percentile_cont(0.95) WITHIN GROUP"
        " (ORDER BY extract(epoch FROM finished_at - claimed_at))"
        " FROM broadcast_messages"
    ).fetchone()
    assert row is not None
    n, delivered, span, p95 = row
    return Drain(senders, n, delivered, n / float(span) if span else 0.0, float(p95 or 0))


def _run(url: str, n: int, senders: int, mean_time: float, window: int) -> Drain:
    with connect(url, autocommit=True, app="ecm-bench") as conn:
        _reset(conn)
        _produce(url, n)
        _drain(url, senders, mean_time, window)
        return _measure(conn, senders)


def _raw(url: str, n: int) -> float:
    """Messages per second moved by two plain UPDATEs per batch, one connection."""
    with connect(url, autocommit=True, app="ecm-bench") as conn:
        _reset(conn)
        _produce(url, n)
        ids = [r[0] for r in conn.execute("SELECT message_id FROM broadcast_messages ORDER BY 1")]
        t0 = time.perf_counter()
        for i in range(0, len(ids), BATCH):
            batch = ids[i : i + BATCH]
            with conn.transaction():
                conn.execute(
                    "UPDATE broadcast_messages SET state = 'in_flight', claimed_at = now(),"
                    " lease_expires_at = now() WHERE message_id = ANY(%s)",
                    (batch,),
                )
            with conn.transaction():
                conn.execute(
                    "UPDATE broadcast_messages SET state = 'delivered', finished_at = now(),"
                    " lease_expires_at = NULL WHERE message_id = ANY(%s)",
                    (batch,),
                )
        return n / (time.perf_counter() - t0)


def run(url: str, plan: BroadcastPlan) -> BroadcastResult:
    """Every run of the section, on the database at url (owner; migrated)."""
    fast = []
    for k in SENDERS:
        log.info("broadcast: %d sender(s), zero send time", k)
        fast.append(_run(url, plan.fast_messages, k, 0.0, WINDOW))
    raw = _raw(url, plan.fast_messages)
    slow = []
    for k in (1, 4):
        log.info("broadcast: %d sender(s), mean send time %g s", k, SLOW_MEAN_S)
        slow.append(_run(url, plan.slow_messages_per_sender * k, k, SLOW_MEAN_S, SLOW_WINDOW))
    with connect(url, autocommit=True, app="ecm-bench") as conn:
        _reset(conn)
    return BroadcastResult(plan, fast, raw, slow)


def _all_once(drains: list[Drain]) -> bool:
    return all(d.delivered == d.messages for d in drains)


def rows(r: BroadcastResult) -> list[Row]:
    """Section 10's rows: the queue against raw UPDATEs, the senders' scaling, latency."""
    four = r.fast[-1]
    one_slow, four_slow = r.slow
    scale = four_slow.per_s / one_slow.per_s if one_slow.per_s else 0.0
    delivered = sum(d.delivered for d in r.fast + r.slow)
    total = sum(d.messages for d in r.fast + r.slow)
    return [
        Row(
            "10",
            f"SMS queue, zero send time, {r.plan.fast_messages:,} messages: messages/s with "
            + " / ".join(str(d.senders) for d in r.fast)
            + " senders",
            " / ".join(f"{d.per_s:,.0f}" for d in r.fast) + " msg/s",
            f"raw UPDATEs of the same rows: {r.raw_per_s:,.0f} msg/s",
            f"{four.per_s / r.raw_per_s:.2f}" if r.raw_per_s else "-",
            f">= {QUEUE_GOAL:g} of raw (4 senders)",
            verdict(r.raw_per_s > 0 and four.per_s >= QUEUE_GOAL * r.raw_per_s),
        ),
        Row(
            "10",
            f"SMS senders, mean send time {SLOW_MEAN_S:g} s, window {SLOW_WINDOW}: 4 senders "
            "against 1",
            f"{four_slow.per_s:,.0f} msg/s ({four_slow.messages:,} messages)",
            f"1 sender: {one_slow.per_s:,.0f} msg/s ({one_slow.messages:,} messages)",
            f"{scale:.2f}",
            f">= {SCALE_GOAL:g}",
            verdict(scale >= SCALE_GOAL),
        ),
        Row(
            "10",
            "SMS claim-to-outcome p95: zero send time, 4 senders / send time "
            f"{SLOW_MEAN_S:g} s, 4 senders",
            f"{four.p95_s * 1e3:,.1f} ms / {four_slow.p95_s * 1e3:,.1f} ms",
        ),
        Row(
            "10",
            "SMS runs: every message delivered exactly once",
            f"{delivered:,} of {total:,}",
            "-",
            "-",
            "all",
            verdict(delivered == total and _all_once(r.fast + r.slow)),
        ),
    ]
