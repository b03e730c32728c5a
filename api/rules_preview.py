"""A rule's dry run: its condition evaluated by Prometheus over the last hours (query_range) and
when it would have fired, its `for` taken into account (a series fires once the condition has
held for `for`, until it stops holding)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import requests

from api.rules_model import RuleSpec
from ecm_common.durations import parse_duration
from ecm_common.errors import EcmError

MAX_POINTS = 1000
MIN_STEP_S = 15
MAX_INTERVALS = 100
TIMEOUT_S = 20.0


def preview(prometheus_url: str, spec: RuleSpec, hours: float) -> dict[str, Any]:
    """When the rule would have fired over the last hours, per series."""
    end = time.time()
    start = end - hours * 3600
    step = max(MIN_STEP_S, int(hours * 3600 / MAX_POINTS) + 1)
    query: dict[str, str | float] = {
        "query": spec.expr(),
        "start": start,
        "end": end,
        "step": step,
    }
    try:
        resp = requests.get(
            f"{prometheus_url.rstrip('/')}/api/v1/query_range",
            params=query,
            timeout=TIMEOUT_S,
        )
        body = resp.json()
    except (requests.RequestException, ValueError) as exc:
        raise EcmError(f"Prometheus did not answer: {type(exc).__name__}") from None
    if body.get("status") != "success":
        raise EcmError(f"Prometheus refused the query: {str(body.get('error'))[:300]}")
    hold_s = parse_duration(spec.for_)
    intervals: list[dict[str, Any]] = []
    for series in body["data"]["result"]:
        times = [float(t) for t, _ in series["values"]]
        intervals += [
            {"labels": series["metric"], "from": _iso(a), "to": _iso(b)}
            for a, b in _firing(times, step, hold_s)
        ]
    intervals.sort(key=lambda i: i["from"])
    return {
        "alert": spec.alert,
        "expr": spec.expr(),
        "from": _iso(start),
        "to": _iso(end),
        "step_seconds": step,
        "would_fire": bool(intervals),
        "intervals": intervals[:MAX_INTERVALS],
    }


def _firing(times: list[float], step: float, hold_s: float) -> list[tuple[float, float]]:
    """Firing intervals from the times the condition held (a gap over a step ends a run)."""
    out: list[tuple[float, float]] = []
    run_start = prev = None
    for t in [*times, None]:
        if t is not None and prev is not None and t - prev <= step * 1.5:
            prev = t
            continue
        if run_start is not None and prev is not None and prev - run_start >= hold_s:
            out.append((run_start + hold_s, prev))
        run_start = prev = t
    return out


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")
