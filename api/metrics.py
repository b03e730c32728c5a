"""Every metric of the API's PM pipeline, defined once; the app factory adds the request metrics.

Ingest counters start at 0 for every rejection reason. The KPI gauges are a snapshot published
by a custom collector: each refresh of the rollup job replaces it whole, so a cell that leaves
the top-N, or a window with no events, leaves /metrics too. Their label sets are bounded by
top_n whatever the number of cells.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from api.pm_events import REASONS

BATCH_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10000, 50000)
STORE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
THRESHOLD_LABELS = (
    ("prb_utilization", "warning"),
    ("prb_utilization", "critical"),
    ("drop", "warning"),
    ("drop", "critical"),
)


class IngestMetrics:
    """Counters of POST /v1/events/pm and of the jobs that keep the rollups."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.accepted = Counter("ecm_pm_events_accepted", "PM events stored.", registry=registry)
        self.duplicate = Counter(
            "ecm_pm_events_duplicate",
            "PM events acknowledged as duplicates of a stored event_id (not stored again).",
            registry=registry,
        )
        self.rejected = Counter(
            "ecm_pm_events_rejected",
            "PM events refused by validation, by reason.",
            ("reason",),
            registry=registry,
        )
        for reason in REASONS:
            self.rejected.labels(reason)
        self.batch_events = Histogram(
            "ecm_pm_batch_events",
            "Events per POST /v1/events/pm request that was read.",
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.store_duration = Histogram(
            "ecm_pm_store_duration_seconds",
            "Time to store one batch in PostgreSQL (one statement), in seconds.",
            buckets=STORE_BUCKETS,
            registry=registry,
        )
        self.store_failures = Counter(
            "ecm_pm_store_failures",
            "Batches not stored because the database was unavailable (answered 503).",
            registry=registry,
        )
        self.rollup_rows = Counter(
            "ecm_pm_rollup_rows", "Raw events folded into the 5-minute rollups.", registry=registry
        )
        self.rollup_failures = Counter(
            "ecm_pm_rollup_failures",
            "Rollup job runs that failed (the rows are folded by a later run).",
            registry=registry,
        )
        self.rollup_last_success = Gauge(
            "ecm_pm_rollup_last_success_timestamp_seconds",
            "Unix time of the last successful rollup job run.",
            registry=registry,
        )
        self.rollup_duration = Gauge(
            "ecm_pm_rollup_duration_seconds",
            "Duration of the last rollup job run (fold and KPI gauges), in seconds.",
            registry=registry,
        )
        self.retention_deleted = Counter(
            "ecm_pm_retention_deleted_rows",
            "Raw events deleted by retention.",
            registry=registry,
        )
        self.database_up = Gauge(
            "ecm_database_up",
            "1 when the last rollup job run reached the database, else 0.",
            registry=registry,
        )


@dataclass(frozen=True)
class PmKpis:
    """The KPI gauges of one refresh; ratios are 0..1 (events carry percentages)."""

    window_s: float
    cells_known: int = 0
    cells_silent: int = 0
    cells_reporting: int = 0
    samples: int = 0
    dl_prb_util: float = math.nan
    ul_prb_util: float = math.nan
    rrc_conn: float = math.nan
    drop: float = math.nan
    over: dict[tuple[str, str], int] = field(default_factory=dict)
    busiest: list[tuple[str, float]] = field(default_factory=list)
    worst_drop: list[tuple[str, float]] = field(default_factory=list)


class KpiCollector(Collector):
    """Publishes the latest PmKpis; nothing until the first refresh."""

    def __init__(self, silent_after_s: float) -> None:
        self.latest: PmKpis | None = None
        self.silent_after_s = silent_after_s

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """The gauges of the latest refresh, built fresh."""
        k = self.latest
        if k is None:
            return
        w = f"over the trailing {k.window_s:g} s of 5-minute rollup buckets"
        yield _gauge("ecm_pm_cells_known", "Cells that ever sent a PM event.", k.cells_known)
        yield _gauge(
            "ecm_pm_cells_silent",
            f"Cells whose latest PM event is older than {self.silent_after_s:g} s "
            "(two granularity periods).",
            k.cells_silent,
        )
        yield _gauge("ecm_pm_cells_reporting", f"Cells with PM events {w}.", k.cells_reporting)
        yield _gauge("ecm_pm_window_events", f"PM events {w}.", k.samples)
        for name, text, value in (
            ("ecm_pm_dl_prb_utilization_ratio", "Average downlink PRB utilisation", k.dl_prb_util),
            ("ecm_pm_ul_prb_utilization_ratio", "Average uplink PRB utilisation", k.ul_prb_util),
            ("ecm_pm_drop_ratio", "Average call drop ratio", k.drop),
        ):
            if not math.isnan(value):
                yield _gauge(name, f"{text} of all cells, 0..1, {w}.", value)
        if not math.isnan(k.rrc_conn):
            yield _gauge(
                "ecm_pm_rrc_connected_users", f"Average RRC connected users per cell {w}.",
                k.rrc_conn,
            )  # fmt: skip
        over = GaugeMetricFamily(
            "ecm_pm_cells_over_threshold",
            f"Cells whose average {w} is over the kpi's threshold of this level.",
            labels=("kpi", "level"),
        )
        for key in THRESHOLD_LABELS:
            over.add_metric(key, k.over.get(key, 0))
        yield over
        yield _top(
            "ecm_pm_cell_dl_prb_utilization_ratio",
            f"Downlink PRB utilisation, 0..1, of the busiest cells {w}.",
            k.busiest,
        )
        yield _top("ecm_pm_cell_drop_ratio", f"Drop ratio of the worst cells {w}.", k.worst_drop)


def _gauge(name: str, text: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, text, value=value)


def _top(name: str, text: str, cells: list[tuple[str, float]]) -> GaugeMetricFamily:
    fam = GaugeMetricFamily(name, text, labels=("cell",))
    for cell, value in cells:
        fam.add_metric((cell,), value)
    return fam


class CallRollupMetrics:
    """Self-metrics of the call rollup job (the analytics routes read its rollups)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.rows = Counter(
            "ecm_api_call_rollup_rows",
            "Emergency calls folded into the per-minute call rollups.",
            registry=registry,
        )
        self.failures = Counter(
            "ecm_api_call_rollup_failures",
            "Call rollup job runs that failed (the calls are folded by a later run).",
            registry=registry,
        )
        self.last_success = Gauge(
            "ecm_api_call_rollup_last_success_timestamp_seconds",
            "Unix time of the last successful call rollup job run.",
            registry=registry,
        )
        self.duration = Gauge(
            "ecm_api_call_rollup_duration_seconds",
            "Duration of the last call rollup job run, in seconds.",
            registry=registry,
        )
