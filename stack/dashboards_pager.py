"""The pager's panels on the overview dashboard: open incidents, the outbox, its database, the
notifications by channel and the time people take to acknowledge and resolve.

The outbox threshold is the one EcmPagerOutboxBacklog uses (stack/rules_pager.py).
"""

from __future__ import annotations

from typing import Any

from stack.grafana_json import series, stat, target, thresholds
from stack.rules_pager import PagerRuleParams

UP_MAPPINGS = [
    {
        "type": "value",
        "options": {
            "0": {"text": "DOWN", "color": "red", "index": 0},
            "1": {"text": "UP", "color": "green", "index": 1},
        },
    }
]
# Acknowledgements and resolutions are rare: quantiles over an hour.
RESPONSE_WINDOW = "1h"


def pager_panels(first_id: int, y: int, q: PagerRuleParams | None = None) -> list[dict[str, Any]]:
    """Six panels from grid row y down, ids from first_id."""
    q = q or PagerRuleParams()
    sel = f'{{job="{q.job}"}}'
    i = first_id
    quantile = "histogram_quantile(0.9, sum by (le) (rate({}_bucket{}[{}])))"
    return [
        stat(
            i,
            "Pager: open incidents",
            "Incidents triggered or acknowledged and not yet resolved, as of the pager's last "
            "tick (every second).",
            "none",
            0,
            f"sum(ecm_pager_open_incidents{sel}) or vector(0)",
            y=y,
            defaults={"thresholds": thresholds((1, "red"))},
        ),
        stat(
            i + 1,
            "Pager: pages waiting",
            "Notifications queued in the pager's outbox and not yet delivered (retries included).",
            "none",
            6,
            f"sum(ecm_pager_outbox_depth{sel})",
            y=y,
            defaults={"thresholds": thresholds((1, "orange"))},
        ),
        stat(
            i + 2,
            "Pager: oldest page waiting",
            "Age of the oldest undelivered notification; red from "
            f"{q.backlog_age_seconds} s, where EcmPagerOutboxBacklog fires.",
            "s",
            12,
            f"max(ecm_pager_outbox_oldest_age_seconds{sel})",
            y=y,
            defaults={"thresholds": thresholds((q.backlog_age_seconds, "red"))},
        ),
        stat(
            i + 3,
            "Pager: database",
            "Whether the pager's worker reached PostgreSQL on its last tick.",
            "none",
            18,
            f"min(ecm_pager_database_up{sel})",
            y=y,
            defaults={
                "mappings": UP_MAPPINGS,
                "thresholds": {
                    "mode": "absolute",
                    "steps": [{"color": "red", "value": None}, {"color": "green", "value": 1}],
                },
            },
        ),
        series(
            i + 4,
            "Pager: notifications per minute",
            "Notifications delivered and failed attempts per minute, by channel, over 5 minutes.",
            "cpm",
            (0, y + 5, 12, 8),
            [
                target(
                    f"sum by (channel) (rate(ecm_pager_notifications_sent_total{sel}[5m])) * 60",
                    "sent {{channel}}",
                    ref="A",
                ),
                target(
                    f"sum by (channel) (rate(ecm_pager_notification_failures_total{sel}[5m])) * 60",
                    "failed {{channel}}",
                    ref="B",
                ),
            ],
        ),
        series(
            i + 5,
            "Pager: time to acknowledge and resolve (p90)",
            "90th percentile of the time from an incident's opening to its first "
            f"acknowledgement and to its resolution, over the last {RESPONSE_WINDOW}.",
            "s",
            (12, y + 5, 12, 8),
            [
                target(
                    quantile.format("ecm_pager_time_to_acknowledge_seconds", sel, RESPONSE_WINDOW),
                    "acknowledge",
                    ref="A",
                ),
                target(
                    quantile.format("ecm_pager_time_to_resolve_seconds", sel, RESPONSE_WINDOW),
                    "resolve",
                    ref="B",
                ),
            ],
        ),
    ]
