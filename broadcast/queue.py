"""The message queue on PostgreSQL: claim under a lease, renew, reclaim, record, count.

Each function runs one transaction on an autocommit connection; the progress counters change
in the same transaction as the messages they count, so they never disagree after a crash.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg

from broadcast import queries
from broadcast.outcome import RETRYABLE, WITHDRAWN, bucket_of

log = logging.getLogger(__name__)

# Reclaimed per statement: bounds the work one sender does for another's expired lease.
RECLAIM_BATCH = 1000


def ts(seconds: float) -> datetime:
    """A Unix time as an aware datetime for the database."""
    return datetime.fromtimestamp(seconds, UTC)


@dataclass(frozen=True)
class Claim:
    """A message held under a lease: only this token can record its outcome."""

    message_id: int
    campaign_id: int
    recipient: str
    token: int
    attempt: int
    cancelled: bool


@dataclass(frozen=True)
class Outcome:
    """What happened to one claimed message: 'delivered', 'withdrawn' or a failure reason."""

    claim: Claim
    outcome: str
    seconds: float


@dataclass(frozen=True)
class Recorded:
    """An outcome the database accepted, and the state the message is now in."""

    message_id: int
    campaign_id: int
    outcome: str
    state: str
    seconds: float


@dataclass(frozen=True)
class Backoff:
    """Retry delay: base * 2^(attempt-1), at most max_delay seconds."""

    base: float
    max_delay: float


def add_counts(
    conn: psycopg.Connection,
    sender: str,
    now: float,
    rows: Iterable[tuple[int, str, int, float]],
) -> None:
    """Add (campaign, kind, n, seconds) to the progress counters of sender."""
    summed: dict[tuple[int, str], list[float]] = {}
    for campaign, kind, n, seconds in rows:
        acc = summed.setdefault((campaign, kind), [0, 0.0])
        acc[0] += n
        acc[1] += seconds
    if not summed:
        return
    keys = sorted(summed)
    conn.execute(
        queries.ADD_COUNTS,
        {
            "sender": sender,
            "now": ts(now),
            "campaigns": [k[0] for k in keys],
            "kinds": [k[1] for k in keys],
            "ns": [int(summed[k][0]) for k in keys],
            "secs": [summed[k][1] for k in keys],
        },
    )


def claim(conn: psycopg.Connection, owner: str, n: int, now: float, lease: float) -> list[Claim]:
    """Up to n due pending messages, highest priority first, leased to owner until now+lease."""
    with conn.transaction():
        rows = conn.execute(
            queries.CLAIM, {"now": ts(now), "n": n, "owner": owner, "lease": lease}
        ).fetchall()
        claims = [Claim(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows]
        per = Counter(c.campaign_id for c in claims)
        add_counts(conn, owner, now, ((cid, "claimed", k, 0.0) for cid, k in per.items()))
    return claims


def reclaim(conn: psycopg.Connection, owner: str, now: float) -> int:
    """Return messages whose lease expired to the queue; how many were returned."""
    with conn.transaction():
        rows = conn.execute(queries.RECLAIM, {"now": ts(now), "n": RECLAIM_BATCH}).fetchall()
        per = Counter(r[0] for r in rows)
        add_counts(conn, owner, now, ((cid, "reclaimed", k, 0.0) for cid, k in per.items()))
    if rows:
        log.info("returned %d messages with an expired lease to the queue", len(rows))
    return len(rows)


def renew(conn: psycopg.Connection, claims: Sequence[Claim], now: float, lease: float) -> set[int]:
    """Extend the leases still held; the ids of the messages whose lease was renewed."""
    if not claims:
        return set()
    with conn.transaction():
        rows = conn.execute(
            queries.RENEW,
            {
                "now": ts(now),
                "lease": lease,
                "ids": [c.message_id for c in claims],
                "tokens": [c.token for c in claims],
            },
        ).fetchall()
    return {r[0] for r in rows}


def _kinds(r: Recorded) -> list[tuple[int, str, int, float]]:
    if r.outcome == WITHDRAWN:
        return [(r.campaign_id, WITHDRAWN, 1, 0.0)]
    if r.state == "pending":
        return [(r.campaign_id, f"requeued:{r.outcome}", 1, r.seconds)]
    kind = "delivered" if r.state == "delivered" else f"failed:{r.outcome}"
    return [
        (r.campaign_id, kind, 1, r.seconds),
        (r.campaign_id, "le:" + bucket_of(r.seconds), 1, 0),
    ]


def record(
    conn: psycopg.Connection,
    owner: str,
    outcomes: Sequence[Outcome],
    now: float,
    backoff: Backoff,
) -> list[Recorded]:
    """Store the outcomes whose lease is still held (the others are left alone); those stored."""
    if not outcomes:
        return []
    with conn.transaction():
        rows = conn.execute(
            queries.RECORD,
            {
                "now": ts(now),
                "ids": [o.claim.message_id for o in outcomes],
                "tokens": [o.claim.token for o in outcomes],
                "outcomes": [o.outcome for o in outcomes],
                "seconds": [o.seconds for o in outcomes],
                "retryable": list(RETRYABLE),
                "base_delay": backoff.base,
                "max_delay": backoff.max_delay,
            },
        ).fetchall()
        recorded = [Recorded(r[0], r[1], r[2], r[3], r[4]) for r in rows]
        add_counts(conn, owner, now, (k for r in recorded for k in _kinds(r)))
    return recorded


def queue_empty(conn: psycopg.Connection) -> bool:
    """True when no message is pending or in flight, in any campaign."""
    row = conn.execute(queries.QUEUE_EMPTY).fetchone()
    return bool(row and row[0])
