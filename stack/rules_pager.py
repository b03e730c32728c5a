"""Alerts on the pager's own health: down (or without its database), outbox backing up,
notifications failing. Rendered into prometheus/rules/ecm_pager_alerts.yml by stack/rules.py.

The pager cannot page about itself: these alerts also reach the tickets receiver (its route
takes critical and warning), and the Watchdog covers Alertmanager and Prometheus.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ecm_common.durations import prometheus_duration
from ecm_common.errors import ConfigError
from stack.rules import RuleParams, _alert, num

PAGER_ALERTS_FILE = "ecm_pager_alerts.yml"
PAGER_ALERTS = ("EcmPagerDown", "EcmPagerOutboxBacklog", "EcmPagerNotificationsFailing")


@dataclass(frozen=True)
class PagerRuleParams:
    """The pager alerts' tunables."""

    job: str = "ecm-pager"
    down_for: str = "2m"
    # A page waiting this long has missed its moment: level timeouts are 15 minutes.
    backlog_age_seconds: int = 300
    backlog_for: str = "2m"
    failing_window: str = "15m"
    failing_ratio: float = 0.5
    failing_for: str = "10m"

    def __post_init__(self) -> None:
        """Reject durations Prometheus would refuse."""
        for name in ("down_for", "backlog_for", "failing_window", "failing_for"):
            try:
                prometheus_duration(getattr(self, name))
            except ValueError as exc:
                raise ConfigError(f"pager rule parameter {name}: {exc}") from None


def pager_alerts(p: RuleParams, q: PagerRuleParams | None = None) -> list[dict[str, Any]]:
    """The three alerts about the pager."""
    q = q or PagerRuleParams()
    sel = f'{{job="{q.job}"}}'
    w = q.failing_window
    failed = (
        f"sum by (job, instance, channel) (rate(ecm_pager_notification_failures_total{sel}[{w}]))"
    )
    sent = f"sum by (job, instance, channel) (rate(ecm_pager_notifications_sent_total{sel}[{w}]))"
    return [
        _alert(
            p,
            "EcmPagerDown",
            f"up{sel} == 0 or ecm_pager_database_up{sel} == 0",
            q.down_for,
            "critical",
            "The pager {{ $labels.instance }} is down or cannot reach its database.",
            "Prometheus cannot scrape the pager, or the pager's worker cannot reach PostgreSQL, "
            f"for {q.down_for}: incidents are neither opened nor escalated.",
        ),
        _alert(
            p,
            "EcmPagerOutboxBacklog",
            f"ecm_pager_outbox_oldest_age_seconds{sel} > {q.backlog_age_seconds}",
            q.backlog_for,
            "critical",
            "Pages wait in the pager's outbox.",
            "The oldest notification waiting on {{ $labels.instance }} was queued "
            "{{ $value | humanizeDuration }} ago "
            f"(more than {q.backlog_age_seconds} s): people are not being paged.",
        ),
        _alert(
            p,
            "EcmPagerNotificationsFailing",
            f"({failed})\n/\n(({failed}) + ({sent}))\n> {num(q.failing_ratio)}",
            q.failing_for,
            "warning",
            "Most {{ $labels.channel }} notifications of the pager fail.",
            f"Over {w}, more than {num(q.failing_ratio * 100)}% of the "
            "{{ $labels.channel }} attempts of {{ $labels.instance }} failed; they are "
            "retried with backoff, and escalation goes on over the other channels.",
        ),
    ]


def pager_alerting_rules(p: RuleParams, q: PagerRuleParams | None = None) -> dict[str, Any]:
    """The pager's rule file: one group."""
    return {"groups": [{"name": "ecm.pager", "rules": pager_alerts(p, q)}]}
