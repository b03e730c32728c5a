"""The --once report: the seed's text format or one JSON document, and the exit status."""

from __future__ import annotations

import json
import math
from typing import Any

from exporter.assess import Status, Thresholds
from exporter.metrics import WindowView

EXIT_STATUS = {Status.OK: 0, Status.WARN: 10, Status.ALERT: 20}


def exit_status(v: WindowView) -> int:
    """0 OK, 10 WARN, 20 ALERT."""
    return EXIT_STATUS[v.status]


def text(v: WindowView, minutes: int, th: Thresholds) -> str:
    """The seed's report: one summary line, then the worst towers."""
    r = v.result
    head = f"[{v.status.name}] last_{minutes}m"
    if r.calls == 0:
        return f"{head} total=0 failed=0 (no calls in the window)\n"
    lines = [
        f"{head} total={r.calls} failed={r.failed} failure_rate={100 * r.failure_ratio:.1f}% "
        f"avg_latency={round(r.avg_latency_ms)}ms p95={round(r.p95_ms)}ms"
    ]
    if v.worst:
        lines.append("  worst_towers:")
        lines += [
            f"    - {t.tower}: failure={100 * t.failure_ratio:.2f}% ({t.failed}/{t.calls})"
            for t in v.worst
        ]
    else:
        lines.append(
            f"  worst_towers: none (no tower with failures and >= {th.min_tower_calls} calls)"
        )
    return "\n".join(lines) + "\n"


def _num(x: float) -> float | None:
    return None if math.isnan(x) else x


def document(v: WindowView, minutes: int, th: Thresholds) -> dict[str, Any]:
    """The same numbers as a JSON-ready mapping."""
    r = v.result
    return {
        "window": f"{minutes}m",
        "status": v.status.name,
        "exit_status": exit_status(v),
        "total": r.calls,
        "failed": r.failed,
        "failure_ratio": _num(r.failure_ratio),
        "avg_latency_ms": _num(r.avg_latency_ms),
        "p95_latency_ms": _num(r.p95_ms),
        "reasons": {
            reason: {"failed": n, "ratio": n / r.calls if r.calls else None}
            for reason, n in r.reason_failed.items()
        },
        "towers": {
            t.tower: {
                "calls": t.calls,
                "failed": t.failed,
                "failure_ratio": t.failure_ratio,
                "p95_latency_ms": _num(t.p95_ms),
            }
            for t in r.towers
        },
        "worst_towers": [
            {
                "tower": t.tower,
                "calls": t.calls,
                "failed": t.failed,
                "failure_ratio": t.failure_ratio,
            }
            for t in v.worst
        ],
        "thresholds": {
            "warn_failure_ratio": th.warn_failure_ratio,
            "alert_failure_ratio": th.alert_failure_ratio,
            "warn_p95_seconds": th.warn_p95_seconds,
            "alert_p95_seconds": th.alert_p95_seconds,
            "min_calls": th.min_calls,
            "min_tower_calls": th.min_tower_calls,
            "top_n": th.top_n,
        },
    }


def as_json(v: WindowView, minutes: int, th: Thresholds) -> str:
    """One JSON document."""
    return json.dumps(document(v, minutes, th), indent=2) + "\n"
