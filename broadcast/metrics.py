"""Every metric of a sender process (docs/CONTRACT.md "SMS broadcast"), in its own registry.

Two kinds: the sender's own counters (what this process claimed and recorded), and campaign
progress read from the counters table at scrape time (at most every CAMPAIGN_REFRESH_S), the
same on every sender: query them with max by (campaign, ...).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import psycopg
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from broadcast.outcome import REASONS, SEND_BUCKETS
from broadcast.progress import Snapshot
from ecm_common.metrics_http import MetricsServer, serve_registry

log = logging.getLogger(__name__)

CAMPAIGN_REFRESH_S = 5.0
STATES = ("pending", "in_flight", "delivered", "failed", "cancelled")


class CampaignCollector(Collector):
    """ecm_broadcast_campaign_* from a progress snapshot, re-read at most every refresh_s."""

    def __init__(self, read: Callable[[], Snapshot], refresh_s: float = CAMPAIGN_REFRESH_S) -> None:
        self._read, self._refresh_s = read, refresh_s
        self._lock = threading.Lock()
        self._cached: Snapshot | None = None
        self._at = -1e18

    def _snapshot(self) -> Snapshot | None:
        with self._lock:
            now = time.monotonic()
            if now - self._at >= self._refresh_s:
                try:
                    self._cached = self._read()
                except psycopg.Error as exc:
                    log.warning("cannot read campaign progress: %s", str(exc).splitlines()[0])
                    self._cached = None
                self._at = now
            return self._cached

    def collect(self) -> Iterable[Metric]:
        """The snapshot as gauges; campaigns no longer among the most recent leave /metrics."""
        messages = GaugeMetricFamily(
            "ecm_broadcast_campaign_messages",
            "Messages of a campaign by state (pending, in_flight, delivered, failed, cancelled); "
            f"the {CAMPAIGN_REFRESH_S:g}s-old snapshot of the database's counters, the same on "
            "every sender.",
            labels=["campaign", "state"],
        )
        failed = GaugeMetricFamily(
            "ecm_broadcast_campaign_failed_messages",
            "Messages of a campaign failed for good, by reason.",
            labels=["campaign", "reason"],
        )
        snap = self._snapshot()
        for c in snap.campaigns if snap else []:
            values = (c.pending, c.in_flight, c.delivered, c.failed_total, c.cancelled)
            for state, value in zip(STATES, values, strict=True):
                messages.add_metric([c.name, state], value)
            for reason, n in c.failed.items():
                failed.add_metric([c.name, reason], n)
        yield messages
        yield failed


@dataclass
class SenderMetrics:
    """Counters, gauges and the send-time histogram of one sender process."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.claimed = Counter(
            "ecm_broadcast_messages_claimed", "Messages claimed under a lease.", registry=r
        )
        self.delivered = Counter(
            "ecm_broadcast_messages_delivered", "Messages recorded delivered.", registry=r
        )
        self.failed = Counter(
            "ecm_broadcast_messages_failed",
            "Messages recorded failed for good, by reason.",
            ["reason"],
            registry=r,
        )
        self.requeued = Counter(
            "ecm_broadcast_messages_requeued",
            "Failed attempts with a retryable reason sent back to the queue, by reason.",
            ["reason"],
            registry=r,
        )
        for reason in REASONS:
            self.failed.labels(reason)
            self.requeued.labels(reason)
        self.withdrawn = Counter(
            "ecm_broadcast_messages_withdrawn",
            "Messages claimed after their campaign was cancelled, never sent.",
            registry=r,
        )
        self.reclaimed = Counter(
            "ecm_broadcast_messages_reclaimed",
            "Messages whose lease had expired that this sender returned to the queue.",
            registry=r,
        )
        self.discarded = Counter(
            "ecm_broadcast_outcomes_discarded",
            "Outcomes not recorded because the lease had passed to another sender.",
            registry=r,
        )
        self.send_duration = Histogram(
            "ecm_broadcast_send_duration_seconds",
            "Simulated send time of each recorded attempt (delivered, failed or retried), seconds.",
            buckets=SEND_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "ecm_broadcast_messages_in_flight",
            "Messages this sender holds under a lease and has not recorded yet.",
            registry=r,
        )
        self.window = Gauge(
            "ecm_broadcast_window_messages",
            "Most messages this sender keeps in flight at once (--window).",
            registry=r,
        )
        self.database_up = Gauge(
            "ecm_broadcast_database_up",
            "1 when the sender's last database statement succeeded, else 0.",
            registry=r,
        )
        self.last_outcome = Gauge(
            "ecm_broadcast_last_outcome_timestamp_seconds",
            "Unix time of the last recorded outcome (0 before the first).",
            registry=r,
        )

    def serve(self, port: int, addr: str, status: Callable[[], str]) -> MetricsServer:
        """Serve /metrics, rendered at each scrape, on addr:port; returns the started server."""
        return serve_registry("ECM SMS broadcast sender", self.registry, addr, port, status)
