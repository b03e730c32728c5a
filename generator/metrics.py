"""The generator's own metrics (docs/CONTRACT.md), in a registry of their own."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ecm_common.metrics_http import MetricsServer, serve_registry

log = logging.getLogger(__name__)

WRITE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass
class GeneratorMetrics:
    """Counters, gauges and the batch write histogram of one generator process."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.generated = Counter(
            "ecm_generator_calls_generated",
            "Calls generated and handed to the write path.",
            registry=r,
        )
        self.written = Counter(
            "ecm_generator_calls_written",
            "Calls this process stored in the database (rows found already stored are not).",
            registry=r,
        )
        self.retries = Counter(
            "ecm_generator_write_retries", "Batch writes retried after a failure.", registry=r
        )
        self.spooled = Counter(
            "ecm_generator_calls_spooled",
            "Calls written to the on-disk spool (fsync'd).",
            registry=r,
        )
        self.already_stored = Counter(
            "ecm_generator_calls_already_stored",
            "Calls found already stored on a retry or a spool replay (not counted as written).",
            registry=r,
        )
        self.lost = Counter(
            "ecm_generator_calls_lost",
            "Accepted calls neither stored nor kept on disk; the run stops when this happens.",
            registry=r,
        )
        self.spool_corrupt_records = Counter(
            "ecm_generator_spool_corrupt_records",
            "Damaged spool records moved to the quarantine directory instead of being replayed.",
            registry=r,
        )
        self.dead_lettered = Counter(
            "ecm_generator_calls_dead_lettered",
            "Calls sent to the dead-letter file (invalid, or refused by the database).",
            registry=r,
        )
        self.queue_depth = Gauge(
            "ecm_generator_queue_depth", "Calls waiting in the in-memory queue.", registry=r
        )
        self.write_duration = Histogram(
            "ecm_generator_batch_write_duration_seconds",
            "Time to write one batch to the database, in seconds.",
            buckets=WRITE_BUCKETS,
            registry=r,
        )
        self.last_write = Gauge(
            "ecm_generator_last_write_timestamp_seconds",
            "Unix time of the last successful batch write.",
            registry=r,
        )

    def serve(self, port: int, addr: str = "0.0.0.0") -> MetricsServer:
        """Serve /metrics, rendered at each scrape, on addr:port; returns the started server."""
        return serve_registry("ECM call generator", self.registry, addr, port)
