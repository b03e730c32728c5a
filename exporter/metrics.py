"""Every exporter metric, defined once, built fresh from the last refresh's published state."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from exporter.assess import Status, Thresholds
from exporter.counters import LATENCY_BUCKETS_S, Counters
from exporter.rollup import TowerResult, WindowResult

QUERIES = ("new_calls", "rebuild", "towers")
_W = (
    "over the trailing window (label window: the current minute and the whole minutes before it), "
    "refreshed every {interval:g} s"
)


@dataclass(frozen=True)
class Def:
    """A metric's name, HELP text and labels."""

    name: str
    help: str
    labels: tuple[str, ...] = ()
    kind: str = "gauge"  # the exposition's TYPE: gauge, counter or histogram

    def help_text(self, interval_s: float) -> str:
        """HELP with the refresh interval filled in (window gauges name it)."""
        return self.help.format(interval=interval_s)


CALLS_TOTAL = Def(
    "ecm_calls_total",
    "Calls stored since the exporter started, any status.",
    ("tower",),
    "counter",
)
CALLS_FAILED_TOTAL = Def(
    "ecm_calls_failed_total",
    "Failed calls stored since the exporter started, by failure reason.",
    ("tower", "reason"),
    "counter",
)
CALL_LATENCY = Def(
    "ecm_call_latency_seconds",
    "Call setup latency in seconds of calls stored since the exporter started.",
    ("tower",),
    "histogram",
)
WINDOW_CALLS = Def("ecm_window_calls", "Calls " + _W + ".", ("window",))
WINDOW_FAILED = Def("ecm_window_failed_calls", "Failed calls " + _W + ".", ("window",))
WINDOW_RATIO = Def(
    "ecm_window_failure_ratio", "Failed calls / calls (0..1) " + _W + ".", ("window",)
)
WINDOW_AVG = Def(
    "ecm_window_latency_avg_seconds", "Mean call setup latency in seconds " + _W + ".", ("window",)
)
WINDOW_P95 = Def(
    "ecm_window_latency_p95_seconds",
    "95th percentile call setup latency in seconds (within 1% of the exact value) " + _W + ".",
    ("window",),
)
WINDOW_STATUS = Def(
    "ecm_window_status", "Window classification 0 OK, 1 WARN, 2 ALERT " + _W + ".", ("window",)
)
REASON_FAILED = Def(
    "ecm_window_reason_failed_calls", "Failed calls by failure reason " + _W + ".",
    ("window", "reason"),
)  # fmt: skip
REASON_RATIO = Def(
    "ecm_window_reason_ratio",
    "Calls that failed with the reason / all calls (0..1) " + _W + ".",
    ("window", "reason"),
)
TOWER_CALLS = Def("ecm_tower_window_calls", "Calls per tower " + _W + ".", ("window", "tower"))
TOWER_FAILED = Def(
    "ecm_tower_window_failed_calls", "Failed calls per tower " + _W + ".", ("window", "tower")
)
TOWER_RATIO = Def(
    "ecm_tower_window_failure_ratio",
    "Failed calls / calls per tower (0..1), towers with calls only, " + _W + ".",
    ("window", "tower"),
)
TOWER_P95 = Def(
    "ecm_tower_window_latency_p95_seconds",
    "95th percentile call setup latency in seconds per tower, towers with calls only, " + _W + ".",
    ("window", "tower"),
)
WORST = Def(
    "ecm_worst_tower_failure_ratio",
    "Failure ratio (0..1) of the worst towers by failure ratio (rank 1 is worst; only towers with "
    "at least min_tower_calls calls and a failure) " + _W + ".",
    ("window", "tower", "rank"),
)
TH_RATIO = Def(
    "ecm_threshold_failure_ratio", "Failure ratio (0..1) above which a window is WARN/ALERT.",
    ("level",),
)  # fmt: skip
TH_P95 = Def(
    "ecm_threshold_latency_p95_seconds",
    "p95 setup latency in seconds above which a window is WARN/ALERT.",
    ("level",),
)
TH_MIN_CALLS = Def("ecm_threshold_min_calls", "Calls a window needs before it is classified.")
DB_UP = Def("ecm_database_up", "1 when the last refresh reached the database, else 0.")
LAST_SUCCESS = Def(
    "ecm_exporter_last_refresh_success_timestamp_seconds",
    "Unix time in seconds of the last successful refresh.",
)
QUERY_DURATION = Def(
    "ecm_exporter_query_duration_seconds",
    "Duration in seconds of the query's last run.",
    ("query",),
)
QUERY_LAST_SUCCESS = Def(
    "ecm_exporter_query_last_success_timestamp_seconds",
    "Unix time in seconds of the query's last success.",
    ("query",),
)
QUERY_FAILURES = Def(
    "ecm_exporter_query_failures_total",
    "Failed runs of the query since start.",
    ("query",),
    "counter",
)
INTERVAL = Def("ecm_exporter_refresh_interval_seconds", "Configured refresh interval in seconds.")

# Exposition order: counters, window gauges, self-metrics.
COUNTER_DEFS = (CALLS_TOTAL, CALLS_FAILED_TOTAL, CALL_LATENCY)
WINDOW_DEFS = (
    WINDOW_CALLS, WINDOW_FAILED, WINDOW_RATIO, WINDOW_AVG, WINDOW_P95, WINDOW_STATUS,
    REASON_FAILED, REASON_RATIO, TOWER_CALLS, TOWER_FAILED, TOWER_RATIO, TOWER_P95, WORST,
)  # fmt: skip
SELF_DEFS = (
    TH_RATIO, TH_P95, TH_MIN_CALLS, DB_UP, LAST_SUCCESS,
    QUERY_DURATION, QUERY_LAST_SUCCESS, QUERY_FAILURES, INTERVAL,
)  # fmt: skip
# The histogram's le values as the text format writes them.
BUCKET_LE = tuple([str(floatToGoString(b)) for b in LATENCY_BUCKETS_S] + ["+Inf"])  # type: ignore[no-untyped-call]


@dataclass
class QueryStats:
    """Self-metrics of one query."""

    duration_s: float = math.nan
    last_success: float | None = None
    failures: int = 0


@dataclass
class WindowView:
    """A window's values with their judgement."""

    result: WindowResult
    status: Status
    worst: list[TowerResult]


@dataclass
class Published:
    """Everything /metrics shows, taken at the end of a refresh."""

    interval_s: float
    thresholds: Thresholds
    counters: Counters
    database_up: bool = False
    last_success: float | None = None
    queries: dict[str, QueryStats] = field(default_factory=dict)
    windows: list[WindowView] = field(default_factory=list)  # empty while stale


def _gauge(d: Def, interval: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(d.name, d.help_text(interval), labels=d.labels)


class EcmCollector(Collector):
    """The snapshot as prometheus_client families: the reference exporter.render must match."""

    def __init__(self, published: Published) -> None:
        self.published = published

    def collect(self) -> Iterator[Metric]:
        """Families for the current snapshot."""
        p = self.published
        yield from self._counters(p.counters)
        yield from self._windows(p)
        yield from self._self_metrics(p)

    def _counters(self, c: Counters) -> Iterator[Metric]:
        calls = CounterMetricFamily(CALLS_TOTAL.name, CALLS_TOTAL.help, labels=CALLS_TOTAL.labels)
        failed = CounterMetricFamily(
            CALLS_FAILED_TOTAL.name, CALLS_FAILED_TOTAL.help, labels=CALLS_FAILED_TOTAL.labels
        )
        hist = HistogramMetricFamily(
            CALL_LATENCY.name, CALL_LATENCY.help, labels=CALL_LATENCY.labels
        )
        bounds = list(BUCKET_LE)
        cum = c.buckets.cumsum(axis=1).tolist()
        for i, tower in enumerate(c.tower_names[: len(c.calls)]):
            calls.add_metric([tower], int(c.calls[i]))
            for j, reason in enumerate(c.reason_names[: c.failed.shape[1]]):
                failed.add_metric([tower, reason], int(c.failed[i, j]))
            hist.add_metric(
                [tower], list(zip(bounds, cum[i], strict=True)), c.latency_sum_ms[i] / 1000.0
            )
        yield from (calls, failed, hist)

    def _windows(self, p: Published) -> Iterator[Metric]:
        iv = p.interval_s
        fams = {d.name: _gauge(d, iv) for d in WINDOW_DEFS}
        for view in p.windows:
            r, w = view.result, [view.result.label]
            fams[WINDOW_CALLS.name].add_metric(w, r.calls)
            fams[WINDOW_FAILED.name].add_metric(w, r.failed)
            fams[WINDOW_STATUS.name].add_metric(w, int(view.status))
            if r.calls:
                fams[WINDOW_RATIO.name].add_metric(w, r.failure_ratio)
                fams[WINDOW_AVG.name].add_metric(w, r.avg_latency_ms / 1000.0)
                fams[WINDOW_P95.name].add_metric(w, r.p95_ms / 1000.0)
            for reason, n in r.reason_failed.items():
                fams[REASON_FAILED.name].add_metric([*w, reason], n)
                if r.calls:
                    fams[REASON_RATIO.name].add_metric([*w, reason], n / r.calls)
            for tower, (calls, failed) in r.tower_calls.items():
                fams[TOWER_CALLS.name].add_metric([*w, tower], calls)
                fams[TOWER_FAILED.name].add_metric([*w, tower], failed)
            for t in r.towers:
                fams[TOWER_RATIO.name].add_metric([*w, t.tower], t.failure_ratio)
                fams[TOWER_P95.name].add_metric([*w, t.tower], t.p95_ms / 1000.0)
            for rank, t in enumerate(view.worst, start=1):
                fams[WORST.name].add_metric([*w, t.tower, str(rank)], t.failure_ratio)
        yield from fams.values()

    def _self_metrics(self, p: Published) -> Iterator[Metric]:
        th = p.thresholds
        ratio = GaugeMetricFamily(TH_RATIO.name, TH_RATIO.help, labels=TH_RATIO.labels)
        ratio.add_metric(["warn"], th.warn_failure_ratio)
        ratio.add_metric(["alert"], th.alert_failure_ratio)
        p95 = GaugeMetricFamily(TH_P95.name, TH_P95.help, labels=TH_P95.labels)
        p95.add_metric(["warn"], th.warn_p95_seconds)
        p95.add_metric(["alert"], th.alert_p95_seconds)
        yield ratio
        yield p95
        yield GaugeMetricFamily(TH_MIN_CALLS.name, TH_MIN_CALLS.help, value=th.min_calls)
        yield GaugeMetricFamily(DB_UP.name, DB_UP.help, value=1 if p.database_up else 0)
        last = GaugeMetricFamily(LAST_SUCCESS.name, LAST_SUCCESS.help)
        if p.last_success is not None:
            last.add_metric([], p.last_success)
        yield last
        dur = GaugeMetricFamily(QUERY_DURATION.name, QUERY_DURATION.help, labels=["query"])
        ok = GaugeMetricFamily(QUERY_LAST_SUCCESS.name, QUERY_LAST_SUCCESS.help, labels=["query"])
        fail = CounterMetricFamily(QUERY_FAILURES.name, QUERY_FAILURES.help, labels=["query"])
        for name in QUERIES:
            q = p.queries.get(name, QueryStats())
            if not math.isnan(q.duration_s):
                dur.add_metric([name], q.duration_s)
            if q.last_success is not None:
                ok.add_metric([name], q.last_success)
            fail.add_metric([name], q.failures)
        yield from (dur, ok, fail)
        yield GaugeMetricFamily(INTERVAL.name, INTERVAL.help, value=p.interval_s)
