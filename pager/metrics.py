"""Every metric of the pager, with its HELP text; the database snapshot is refreshed by the worker
each tick and published fresh from a custom collector (a service with no open incident leaves
/metrics)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pager.config import CHANNELS

# Seconds: a minute to a day, where acknowledgements and resolutions land.
RESPONSE_BUCKETS = (60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 86400.0)
STATES = ("triggered", "acknowledged")


@dataclass
class Snapshot:
    """What the worker last read from the database."""

    open_incidents: dict[tuple[str, str], int] = field(default_factory=dict)
    outbox_depth: int = 0
    outbox_oldest_age_s: float = 0.0
    watchdog_age_s: float | None = None
    database_up: bool = False
    taken_at: float = 0.0


class PagerMetrics:
    """Counters and histograms the engine and the sender update, plus the snapshot collector."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.sent = Counter(
            "ecm_pager_notifications_sent",
            "Notifications delivered, by channel (email, sms, webhook).",
            ["channel"],
            registry=registry,
        )
        self.failed = Counter(
            "ecm_pager_notification_failures",
            "Notification attempts that failed (each retry counts), by channel.",
            ["channel"],
            registry=registry,
        )
        self.abandoned = Counter(
            "ecm_pager_notifications_abandoned",
            "Notifications given up after their last attempt, by channel.",
            ["channel"],
            registry=registry,
        )
        for channel in CHANNELS:
            for counter in (self.sent, self.failed, self.abandoned):
                counter.labels(channel)
        self.escalations = Counter(
            "ecm_pager_escalations",
            "Escalation levels notified (the first level of an incident included).",
            registry=registry,
        )
        self.opened = Counter("ecm_pager_incidents_opened", "Incidents opened.", registry=registry)
        self.alerts = Counter(
            "ecm_pager_webhook_alerts",
            "Alerts received in Alertmanager webhooks (a retried post counts again).",
            registry=registry,
        )
        self.time_to_ack = Histogram(
            "ecm_pager_time_to_acknowledge_seconds",
            "Seconds from an incident's opening to its first acknowledgement.",
            buckets=RESPONSE_BUCKETS,
            registry=registry,
        )
        self.time_to_resolve = Histogram(
            "ecm_pager_time_to_resolve_seconds",
            "Seconds from an incident's opening to its resolution.",
            buckets=RESPONSE_BUCKETS,
            registry=registry,
        )
        self.snapshot_collector = SnapshotCollector()
        registry.register(self.snapshot_collector)

    def publish(self, snapshot: Snapshot) -> None:
        """Replace the database snapshot /metrics shows."""
        self.snapshot_collector.set(snapshot)


class SnapshotCollector(Collector):
    """The last database snapshot as fresh gauge families."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snapshot = Snapshot()

    def set(self, snapshot: Snapshot) -> None:
        """Publish a new snapshot."""
        with self._lock:
            self._snapshot = snapshot

    def current(self) -> Snapshot:
        """The snapshot being published."""
        with self._lock:
            return self._snapshot

    def collect(self) -> Iterator[Metric]:
        """Gauges built from the current snapshot."""
        with self._lock:
            snap = self._snapshot
        up = GaugeMetricFamily(
            "ecm_pager_database_up",
            "1 when the pager's last tick (every `tick` seconds) reached the database, else 0.",
        )
        up.add_metric([], 1.0 if snap.database_up else 0.0)
        yield up
        opened = GaugeMetricFamily(
            "ecm_pager_open_incidents",
            "Incidents not yet resolved, by service and state, as of the last tick.",
            labels=["service", "state"],
        )
        for (service, state), count in sorted(snap.open_incidents.items()):
            opened.add_metric([service, state], float(count))
        yield opened
        depth = GaugeMetricFamily(
            "ecm_pager_outbox_depth",
            "Notifications waiting to be sent (pending, retries included), as of the last tick.",
        )
        depth.add_metric([], float(snap.outbox_depth))
        yield depth
        oldest = GaugeMetricFamily(
            "ecm_pager_outbox_oldest_age_seconds",
            "Age in seconds of the oldest notification still waiting (0 when none).",
        )
        oldest.add_metric([], snap.outbox_oldest_age_s)
        yield oldest
        if snap.watchdog_age_s is not None:
            age = GaugeMetricFamily(
                "ecm_pager_watchdog_age_seconds",
                "Seconds since the Watchdog alert last arrived (the dead man's switch).",
            )
            age.add_metric([], snap.watchdog_age_s)
            yield age
        tick = GaugeMetricFamily(
            "ecm_pager_last_tick_timestamp_seconds",
            "Unix time of the worker's last successful tick (escalations, sending, switch).",
        )
        tick.add_metric([], snap.taken_at)
        yield tick
