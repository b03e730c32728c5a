"""Progress of campaigns and senders, from the counters alone (never a scan of the messages).

States follow from the counters: every message is pending, in flight, delivered, failed or
cancelled, and these add up to the campaign's total.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import psycopg

from broadcast import queries
from broadcast.outcome import REASONS, WITHDRAWN, quantile

# Campaigns shown by the monitor and published as metrics: the most recent ones.
MAX_CAMPAIGNS = 20
MAX_SENDERS = 100


@dataclass
class CampaignProgress:
    """One campaign's counts, times and pace."""

    name: str
    total: int
    priority: int
    encoding: str
    segments: int
    cancelled_at: str | None
    pending: int = 0
    in_flight: int = 0
    delivered: int = 0
    failed: dict[str, int] = field(default_factory=dict)
    cancelled: int = 0
    retried: int = 0
    reclaimed: int = 0
    avg_seconds: float | None = None
    p95_seconds: float | None = None
    throughput: float | None = None
    eta_seconds: float | None = None

    @property
    def failed_total(self) -> int:
        """Messages failed for good, all reasons."""
        return sum(self.failed.values())

    @property
    def finished(self) -> int:
        """Messages in a final state."""
        return self.delivered + self.failed_total + self.cancelled


@dataclass
class SenderProgress:
    """One sender's outcomes over the campaigns shown, and its settings."""

    sender_id: str
    delivered: int = 0
    failed: int = 0
    avg_seconds: float | None = None
    mean_time: float | None = None
    failure_rate: float | None = None
    window: int | None = None
    last_seen_at: str | None = None


@dataclass
class Snapshot:
    """Everything the monitor shows."""

    campaigns: list[CampaignProgress]
    senders: list[SenderProgress]

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready view (failed_total included)."""
        out = asdict(self)
        for c, d in zip(self.campaigns, out["campaigns"], strict=True):
            d["failed_total"] = c.failed_total
        return out


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t else None


def snapshot(
    conn: psycopg.Connection, campaign: str | None = None, limit: int = MAX_CAMPAIGNS
) -> Snapshot:
    """Read the campaigns (newest first) and senders; one short transaction."""
    with conn.transaction():
        camps = conn.execute(queries.CAMPAIGNS, {"name": campaign, "limit": limit}).fetchall()
        ids = [r[0] for r in camps]
        counts = conn.execute(queries.COUNTS, {"campaigns": ids}).fetchall()
        senders = conn.execute(queries.SENDERS, {"limit": MAX_SENDERS}).fetchall()
    kinds: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    seconds: dict[int, float] = defaultdict(float)
    span: dict[int, list[datetime]] = {}
    per_sender: dict[str, list[float]] = defaultdict(lambda: [0, 0, 0.0])
    for cid, sender, kind, n, secs, first_at, last_at in counts:
        kinds[cid][kind] += n
        outcome = kind == "delivered" or kind.startswith("failed:")
        if outcome or kind == WITHDRAWN:
            seconds[cid] += secs
            lo, hi = span.get(cid, [first_at, last_at])
            span[cid] = [min(lo, first_at), max(hi, last_at)]
        if outcome:
            acc = per_sender[sender]
            acc[0 if kind == "delivered" else 1] += n
            acc[2] += secs
    out = []
    for cid, name, total, priority, segments, encoding, _created, cancelled_at in camps:
        k = kinds[cid]
        p = CampaignProgress(name, total, priority, encoding, segments, _iso(cancelled_at))
        requeued = sum(n for kind, n in k.items() if kind.startswith("requeued:"))
        taken = k["claimed"] - k["reclaimed"] - requeued
        p.failed = {r: k[f"failed:{r}"] for r in REASONS}
        p.delivered = k["delivered"]
        p.cancelled = k["cancelled"] + k[WITHDRAWN]
        p.pending = total - k["cancelled"] - taken
        p.in_flight = taken - p.delivered - p.failed_total - k[WITHDRAWN]
        p.retried, p.reclaimed = requeued, k["reclaimed"]
        outcomes = p.delivered + p.failed_total
        if outcomes:
            p.avg_seconds = seconds[cid] / outcomes
            p.p95_seconds = quantile(
                0.95, {kind[3:]: n for kind, n in k.items() if kind.startswith("le:")}
            )
        if cid in span:
            elapsed = (span[cid][1] - span[cid][0]).total_seconds()
            if elapsed > 0:
                p.throughput = (outcomes + k[WITHDRAWN]) / elapsed
        left = p.pending + p.in_flight
        if p.throughput:
            p.eta_seconds = left / p.throughput
        elif left == 0:
            p.eta_seconds = 0.0
        out.append(p)
    sender_rows = []
    for sid, mean_time, failure_rate, window, _started, last_seen in senders:
        acc = per_sender.pop(sid, [0, 0, 0.0])
        sender_rows.append(_sender(sid, acc, mean_time, failure_rate, window, _iso(last_seen)))
    for sid, acc in sorted(per_sender.items()):
        sender_rows.append(_sender(sid, acc, None, None, None, None))
    return Snapshot(out, sender_rows)


def _sender(
    sid: str,
    acc: list[float],
    mean_time: float | None,
    failure_rate: float | None,
    window: int | None,
    last_seen: str | None,
) -> SenderProgress:
    done = int(acc[0] + acc[1])
    return SenderProgress(
        sid,
        int(acc[0]),
        int(acc[1]),
        acc[2] / done if done else None,
        mean_time,
        failure_rate,
        window,
        last_seen,
    )
