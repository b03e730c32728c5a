"""Grafana dashboard "SMS broadcast": campaign progress, throughput, failures by reason, send
times and a per-sender table, from the senders' /metrics (broadcast/metrics.py).

Campaign gauges are published by every sender alike, so they are read with
`max by (campaign, state)`, as the alerts read them (stack/rules_broadcast.py, which also holds
the delivered-ratio line drawn here).
"""

from __future__ import annotations

from typing import Any

from stack.grafana_json import dashboard, panel, series, stat, target, thresholds
from stack.rules_broadcast import BroadcastRuleParams

BROADCAST_UID = "ecm-broadcast"
# Short enough to follow a campaign of a few minutes.
RATE_WINDOW = "1m"


def _campaigns(job: str, state: str) -> str:
    return (
        "sum(max by (campaign, state) "
        f'(ecm_broadcast_campaign_messages{{job="{job}", state="{state}"}}))'
    )


def _table(pid: int, sel: str, pos: tuple[int, int, int, int]) -> dict[str, Any]:
    """Per-sender totals: one row per scraped sender."""
    queries = {
        "A": f"sum by (instance) (ecm_broadcast_messages_delivered_total{sel})",
        "B": f"sum by (instance) (ecm_broadcast_messages_failed_total{sel})",
        "C": f"sum by (instance) (ecm_broadcast_messages_in_flight{sel})",
        "D": f"sum by (instance) (rate(ecm_broadcast_send_duration_seconds_sum{sel}[5m]))"
        f" / sum by (instance) (rate(ecm_broadcast_send_duration_seconds_count{sel}[5m]))",
    }
    names = {"A": "Delivered", "B": "Failed", "C": "In flight", "D": "Avg send time"}
    return panel(
        pid,
        "table",
        "Senders",
        "One row per sender (scrape target): messages delivered and failed for good since it "
        "started, messages it holds now, and its average send time over 5 minutes.",
        "none",
        pos,
        [target(expr, ref=ref, table=True) for ref, expr in queries.items()],
        overrides=[
            {
                "matcher": {"id": "byName", "options": "Avg send time"},
                "properties": [{"id": "unit", "value": "s"}],
            }
        ],
        options={"showHeader": True, "footer": {"show": False}},
        transformations=[
            {"id": "merge", "options": {}},
            {
                "id": "organize",
                "options": {
                    "excludeByName": {"Time": True},
                    "renameByName": {f"Value #{ref}": name for ref, name in names.items()},
                    "indexByName": {
                        "instance": 0,
                        **{f"Value #{r}": i + 1 for i, r in enumerate(names)},
                    },
                },
            },
        ],
    )


def broadcast_dashboard(q: BroadcastRuleParams | None = None) -> dict[str, Any]:
    """The dashboard JSON."""
    q = q or BroadcastRuleParams()
    sel = f'{{job="{q.job}"}}'
    w = RATE_WINDOW
    delivered = f"sum(rate(ecm_broadcast_messages_delivered_total{sel}[{w}]))"
    failed = f"sum(rate(ecm_broadcast_messages_failed_total{sel}[{w}]))"
    panels = [
        stat(
            1,
            "Pending",
            "Messages of the recent campaigns waiting for a sender (each campaign counted once).",
            "short",
            0,
            _campaigns(q.job, "pending"),
        ),
        stat(
            2,
            "In flight",
            "Messages claimed by a sender under a lease and not yet recorded.",
            "short",
            6,
            _campaigns(q.job, "in_flight"),
        ),
        stat(
            3,
            "Delivered ratio",
            f"Delivered among the messages that reached a final state, over {w}; "
            f"EcmBroadcastDeliveredRatioLow fires under {q.delivered_ratio_min:g} (over "
            f"{q.rate_window}).",
            "percentunit",
            12,
            f"{delivered} / ({delivered} + {failed})",
            defaults={
                "min": 0,
                "max": 1,
                "thresholds": {
                    "mode": "absolute",
                    "steps": [
                        {"color": "red", "value": None},
                        {"color": "green", "value": q.delivered_ratio_min},
                    ],
                },
            },
        ),
        stat(
            4,
            "Senders up",
            "Sender processes Prometheus scrapes successfully.",
            "none",
            18,
            f"sum(up{sel})",
            defaults={"thresholds": thresholds()},
        ),
        series(
            5,
            "Progress by campaign",
            "Messages of each recent campaign by state (pending, in_flight, delivered, failed, "
            "cancelled), from the database's counters.",
            "short",
            (0, 5, 12, 8),
            [
                target(
                    f"max by (campaign, state) (ecm_broadcast_campaign_messages{sel})",
                    "{{campaign}} {{state}}",
                )
            ],
        ),
        series(
            6,
            "Throughput",
            f"Messages delivered and failed for good per second, all senders, over {w}.",
            "short",
            (12, 5, 12, 8),
            [target(delivered, "delivered", ref="A"), target(failed, "failed", ref="B")],
        ),
        series(
            7,
            "Failures by reason",
            f"Final failures and retried attempts per second by SMSC reason, over {w}.",
            "short",
            (0, 13, 12, 8),
            [
                target(
                    f"sum by (reason) (rate(ecm_broadcast_messages_failed_total{sel}[{w}]))",
                    "failed {{reason}}",
                    ref="A",
                ),
                target(
                    f"sum by (reason) (rate(ecm_broadcast_messages_requeued_total{sel}[{w}]))",
                    "retried {{reason}}",
                    ref="B",
                ),
            ],
            stacked=True,
        ),
        series(
            8,
            "Send time p95 by sender",
            "95th percentile of the simulated send time of each sender's attempts, over 5m.",
            "s",
            (12, 13, 12, 8),
            [
                target(
                    "histogram_quantile(0.95, sum by (instance, le) "
                    f"(rate(ecm_broadcast_send_duration_seconds_bucket{sel}[5m])))",
                    "{{instance}}",
                )
            ],
        ),
        _table(9, sel, (0, 21, 24, 8)),
    ]
    return dashboard(
        BROADCAST_UID,
        "SMS broadcast",
        "SMS emergency-alert campaigns: progress, throughput, failures by reason, senders.",
        panels,
    )
