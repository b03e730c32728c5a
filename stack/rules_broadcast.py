"""Alerts on the SMS broadcast (broadcast/): delivered ratio low, backlog slow to clear, a
sender stalled, a campaign stuck, a sender down. Rendered into
prometheus/rules/ecm_broadcast_alerts.yml by stack/rules.py.

Campaign gauges are published by every sender (broadcast/metrics.py): the rules take
`max by (campaign, state)` so K senders count a campaign once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ecm_common.durations import format_duration, prometheus_duration
from ecm_common.errors import ConfigError
from stack.rules import RuleParams, _alert, num

BROADCAST_ALERTS_FILE = "ecm_broadcast_alerts.yml"
BROADCAST_ALERTS = (
    "EcmBroadcastDeliveredRatioLow",
    "EcmBroadcastBacklogSlow",
    "EcmBroadcastSenderStalled",
    "EcmBroadcastCampaignStuck",
    "EcmBroadcastSenderDown",
)


@dataclass(frozen=True)
class BroadcastRuleParams:
    """The broadcast alerts' tunables (the one home of their thresholds)."""

    job: str = "ecm-broadcast"
    rate_window: str = "5m"
    # Below this share of outcomes delivered, over at least min_outcomes_per_s, warn.
    delivered_ratio_min: float = 0.9
    min_outcomes_per_s: float = 0.1
    ratio_for: str = "5m"
    # The line: a backlog that takes more than 10 minutes to clear at the current pace.
    backlog_clear_seconds: int = 600
    backlog_for: str = "5m"
    stalled_for: str = "5m"
    stuck_window: str = "10m"
    stuck_for: str = "5m"
    down_for: str = "2m"

    def __post_init__(self) -> None:
        """Reject durations Prometheus would refuse and ratios outside 0..1."""
        for name in ("rate_window", "ratio_for", "backlog_for", "stalled_for", "stuck_window"):
            try:
                prometheus_duration(getattr(self, name))
            except ValueError as exc:
                raise ConfigError(f"broadcast rule parameter {name}: {exc}") from None
        if not 0 < self.delivered_ratio_min < 1:
            raise ConfigError("broadcast rule parameter delivered_ratio_min: must be in 0..1")


def _rate(p: BroadcastRuleParams, metric: str, by: str = "") -> str:
    group = f" by ({by})" if by else ""
    return f'sum{group} (rate({metric}{{job="{p.job}"}}[{p.rate_window}]))'


def _campaign(p: BroadcastRuleParams, states: str) -> str:
    """Messages per campaign in the states (a regex), each campaign counted once."""
    return (
        "sum by (campaign) (max by (campaign, state) "
        f'(ecm_broadcast_campaign_messages{{job="{p.job}", state=~"{states}"}}))'
    )


def broadcast_alerts(
    base: RuleParams, p: BroadcastRuleParams | None = None
) -> list[dict[str, Any]]:
    """The broadcast alerts (runbook links from base)."""
    p = p or BroadcastRuleParams()
    delivered = _rate(p, "ecm_broadcast_messages_delivered_total")
    failed = _rate(p, "ecm_broadcast_messages_failed_total")
    withdrawn = _rate(p, "ecm_broadcast_messages_withdrawn_total")
    outcomes = f"({delivered} + {failed})"
    per_sender = " + ".join(
        _rate(p, f"ecm_broadcast_messages_{m}_total", "instance")
        for m in ("delivered", "failed", "requeued", "withdrawn")
    )
    backlog = f"sum ({_campaign(p, 'pending|in_flight')})"
    clear = format_duration(p.backlog_clear_seconds)
    pct = num(p.delivered_ratio_min * 100)
    return [
        _alert(
            base,
            "EcmBroadcastDeliveredRatioLow",
            f"{delivered} / {outcomes} < {num(p.delivered_ratio_min)}"
            f" and {outcomes} > {num(p.min_outcomes_per_s)}",
            p.ratio_for,
            "warning",
            "Only {{ $value | humanizePercentage }} of SMS alerts are delivered.",
            f"Over {p.rate_window}, fewer than {pct}% of the messages that reached a final "
            "state were delivered: the SMSC rejects or cannot reach handsets. "
            "ecm_broadcast_messages_failed_total by reason says why.",
        ),
        _alert(
            base,
            "EcmBroadcastBacklogSlow",
            f"{backlog} / ({outcomes} + {withdrawn}) > {p.backlog_clear_seconds}"
            f" and on () ({outcomes} > 0)",
            p.backlog_for,
            "warning",
            "The SMS backlog needs {{ $value | humanizeDuration }} to clear.",
            f"At the pace of the last {p.rate_window}, the pending and in-flight messages "
            f"of all campaigns take more than {clear} to clear: add senders "
            "(--senders, docker compose --scale) or raise their window or rate limit.",
        ),
        _alert(
            base,
            "EcmBroadcastSenderStalled",
            f'ecm_broadcast_messages_in_flight{{job="{p.job}"}} > 0'
            f" and on (instance) ({per_sender}) == 0",
            p.stalled_for,
            "warning",
            "Sender {{ $labels.instance }} holds messages but records no outcome.",
            f"For {p.stalled_for}, {{{{ $labels.instance }}}} held {{{{ $value }}}} messages "
            "under a lease and recorded no outcome: its SMSC connection or its database "
            "writes hang. Its messages go to other senders once their lease expires.",
        ),
        _alert(
            base,
            "EcmBroadcastCampaignStuck",
            f"{_campaign(p, 'pending|in_flight')} > 0 unless on (campaign) "
            "(max by (campaign) (changes(ecm_broadcast_campaign_messages"
            f'{{job="{p.job}", state=~"delivered|failed|cancelled"}}[{p.stuck_window}])) > 0)',
            p.stuck_for,
            "critical",
            f"Campaign {{{{ $labels.campaign }}}} has made no progress for {p.stuck_window}.",
            f"Campaign {{{{ $labels.campaign }}}} still has {{{{ $value }}}} messages pending "
            f"or in flight and none reached a final state in {p.stuck_window}: no sender "
            "takes them (all busy with higher priorities, backing off, or failing).",
        ),
        _alert(
            base,
            "EcmBroadcastSenderDown",
            f'up{{job="{p.job}"}} == 0',
            p.down_for,
            "critical",
            "SMS sender {{ $labels.instance }} cannot be scraped.",
            f"Prometheus failed to scrape {{{{ $labels.instance }}}} for {p.down_for}: the "
            "sender is down or hung. Messages it held return to the queue when their lease "
            "expires; the remaining senders carry the load.",
        ),
    ]


def broadcast_alerting_rules(
    base: RuleParams, p: BroadcastRuleParams | None = None
) -> dict[str, Any]:
    """The broadcast alert rule file: one group."""
    return {"groups": [{"name": "ecm.broadcast", "rules": broadcast_alerts(base, p)}]}
