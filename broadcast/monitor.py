"""The terminal progress view (the seed's monitor): campaigns and senders, refreshed.

Throughput is measured between two refreshes when the monitor keeps running, and over the
campaign's whole span (first to last outcome) for a single snapshot.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import TextIO

from broadcast.progress import CampaignProgress, Snapshot
from ecm_common.clock import Clock


def _secs(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 3600:
        return f"{value / 3600:.1f}h"
    if value >= 60:
        return f"{value / 60:.1f}m"
    return f"{value:.3f}s" if value < 10 else f"{value:.0f}s"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}/s"


def render(snap: Snapshot) -> str:
    """The progress view as text."""
    lines = []
    if not snap.campaigns:
        lines.append("no campaigns yet (ecm-broadcast produce --count N)")
    for c in snap.campaigns:
        state = " CANCELLED" if c.cancelled_at else ""
        pct = 100 * c.finished / c.total if c.total else 100.0
        lines.append(
            f"campaign {c.name}{state}: {c.total} messages, priority {c.priority}, "
            f"{c.segments} {c.encoding} segment(s), {pct:.1f}% done"
        )
        reasons = ", ".join(f"{r} {n}" for r, n in c.failed.items() if n) or "none"
        lines.append(
            f"  pending {c.pending}  in flight {c.in_flight}  delivered {c.delivered}  "
            f"failed {c.failed_total} ({reasons})  cancelled {c.cancelled}  retried {c.retried}"
        )
        lines.append(
            f"  time per message avg {_secs(c.avg_seconds)} p95 {_secs(c.p95_seconds)}  "
            f"throughput {_rate(c.throughput)}  ETA {_secs(c.eta_seconds)}"
        )
    if snap.senders:
        lines.append("")
        lines.append(f"{'sender':<30} {'delivered':>10} {'failed':>8} {'avg send':>9}  settings")
        for s in snap.senders:
            settings = (
                f"mean {s.mean_time:g}s, failure {s.failure_rate:g}, window {s.window}"
                if s.mean_time is not None
                else ""
            )
            lines.append(
                f"{s.sender_id[:30]:<30} {s.delivered:>10} {s.failed:>8} "
                f"{_secs(s.avg_seconds):>9}  {settings}"
            )
    return "\n".join(lines) + "\n"


def _pace(now: Snapshot, before: Snapshot | None, elapsed: float) -> None:
    """Throughput and ETA from the change since the previous refresh."""
    if before is None or elapsed <= 0:
        return
    old: dict[str, CampaignProgress] = {c.name: c for c in before.campaigns}
    for c in now.campaigns:
        prev = old.get(c.name)
        if prev is None:
            continue
        c.throughput = max(0, c.finished - prev.finished) / elapsed
        left = c.pending + c.in_flight
        c.eta_seconds = left / c.throughput if c.throughput else (0.0 if not left else None)


def watch(
    read: Callable[[], Snapshot],
    out: TextIO,
    *,
    clock: Clock,
    interval: float,
    once: bool,
    as_json: bool,
    stop: threading.Event,
) -> None:
    """Print the view once, or every interval until stopped (clearing the terminal between)."""
    before: Snapshot | None = None
    at = clock.monotonic()
    clear = out.isatty() and not as_json
    while True:
        snap = read()
        now = clock.monotonic()
        _pace(snap, before, now - at)
        before, at = snap, now
        if as_json:
            out.write(json.dumps(snap.as_dict(), sort_keys=True) + "\n")
        else:
            out.write(("\x1b[H\x1b[2J" if clear else "") + render(snap))
        out.flush()
        if once or clock.wait(interval, stop):
            return
