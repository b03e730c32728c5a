"""The reference exposition: the published snapshot as prometheus_client families.

exporter/render.py writes the text straight from numpy arrays; the renderer tests check it byte
for byte against generate_latest over these families, built the ordinary way.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from exporter.counters import CounterRows
from exporter.metrics import (
    BUCKET_LE,
    CALL_LATENCY,
    CALLS_FAILED_TOTAL,
    CALLS_TOTAL,
    DB_UP,
    DETAIL_TOWERS,
    INTERVAL,
    LAST_SUCCESS,
    QUERIES,
    QUERY_DURATION,
    QUERY_FAILURES,
    QUERY_LAST_SUCCESS,
    REASON_FAILED,
    REASON_RATIO,
    REBUILD_REASONS,
    REBUILDS,
    REFRESH_DURATION,
    REFRESH_OVERRUNS,
    REGION_CALLS,
    REGION_FAILED,
    REGION_P95,
    REGION_RATIO,
    REGION_REASON_FAILED,
    REGION_STATUS,
    REGIONS,
    ROWS_SKIPPED,
    SERIES,
    SERIES_BUDGET,
    SKIP_REASONS,
    TH_MIN_CALLS,
    TH_P95,
    TH_RATIO,
    TOWER_CALLS,
    TOWER_FAILED,
    TOWER_P95,
    TOWER_RATIO,
    TOWERS,
    WINDOW_AVG,
    WINDOW_CALLS,
    WINDOW_DEFS,
    WINDOW_FAILED,
    WINDOW_P95,
    WINDOW_RATIO,
    WINDOW_STATUS,
    WORST,
    Def,
    Published,
    QueryStats,
)


def reference(p: Published) -> bytes:
    """generate_latest over the prometheus_client families of the snapshot."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(EcmCollector(p))
    return generate_latest(registry)


def _gauge(d: Def, interval: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(d.name, d.help_text(interval), labels=d.labels)


def _counter(d: Def) -> CounterMetricFamily:
    return CounterMetricFamily(d.name, d.help, labels=d.labels)


class EcmCollector(Collector):
    """The snapshot as prometheus_client families."""

    def __init__(self, published: Published) -> None:
        self.published = published

    def collect(self) -> Iterator[Metric]:
        """Families for the snapshot."""
        p = self.published
        fams = [*self._counters(p.counters), *self._windows(p), *self._self_metrics(p)]
        tail = [
            GaugeMetricFamily(SERIES_BUDGET.name, SERIES_BUDGET.help, value=p.series_budget),
            GaugeMetricFamily(TOWERS.name, TOWERS.help, value=p.towers),
            GaugeMetricFamily(DETAIL_TOWERS.name, DETAIL_TOWERS.help, value=p.detail_towers),
            GaugeMetricFamily(REGIONS.name, REGIONS.help, value=p.regions),
        ]
        # The series count covers every sample, itself included.
        series = sum(len(f.samples) for f in [*fams, *tail]) + 1
        yield from fams
        yield GaugeMetricFamily(SERIES.name, SERIES.help, value=series)
        yield from tail

    def _counters(self, c: CounterRows) -> Iterator[Metric]:
        calls = _counter(CALLS_TOTAL)
        failed = _counter(CALLS_FAILED_TOTAL)
        hist = HistogramMetricFamily(
            CALL_LATENCY.name, CALL_LATENCY.help, labels=CALL_LATENCY.labels
        )
        bounds = list(BUCKET_LE)
        cum = c.buckets.cumsum(axis=1).tolist()
        for i, (region, tower) in enumerate(c.labels):
            calls.add_metric([region, tower], int(c.calls[i]))
            for j, reason in enumerate(c.reason_names[: c.failed.shape[1]]):
                failed.add_metric([region, tower, reason], int(c.failed[i, j]))
            hist.add_metric(
                [region, tower],
                list(zip(bounds, cum[i], strict=True)),
                c.latency_sum_ms[i] / 1000.0,
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
            g = r.regions
            for i, region in enumerate(g.names):
                calls_g, failed_g = int(g.calls[i]), int(g.failed[i])
                fams[REGION_CALLS.name].add_metric([*w, region], calls_g)
                fams[REGION_FAILED.name].add_metric([*w, region], failed_g)
                if calls_g:
                    fams[REGION_RATIO.name].add_metric([*w, region], failed_g / calls_g)
                    fams[REGION_P95.name].add_metric([*w, region], g.p95_ms[i] / 1000.0)
                fams[REGION_STATUS.name].add_metric([*w, region], int(view.region_status[i]))
                for j, reason in enumerate(r.reason_failed):
                    fams[REGION_REASON_FAILED.name].add_metric(
                        [*w, region, reason], int(g.reason_failed[i, j])
                    )
            regions = dict(zip(r.tower_names, r.tower_regions, strict=True))
            for tower, (calls, failed) in r.tower_calls.items():
                fams[TOWER_CALLS.name].add_metric([*w, regions[tower], tower], calls)
                fams[TOWER_FAILED.name].add_metric([*w, regions[tower], tower], failed)
            for t in r.towers:
                fams[TOWER_RATIO.name].add_metric([*w, t.region, t.tower], t.failure_ratio)
                fams[TOWER_P95.name].add_metric([*w, t.region, t.tower], t.p95_ms / 1000.0)
            for rank, t in enumerate(view.worst, start=1):
                fams[WORST.name].add_metric([*w, t.region, t.tower, str(rank)], t.failure_ratio)
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
        duration = GaugeMetricFamily(REFRESH_DURATION.name, REFRESH_DURATION.help)
        if not math.isnan(p.refresh_duration_s):
            duration.add_metric([], p.refresh_duration_s)
        yield duration
        yield CounterMetricFamily(REFRESH_OVERRUNS.name, REFRESH_OVERRUNS.help, value=p.overruns)
        skipped = _counter(ROWS_SKIPPED)
        for reason in SKIP_REASONS:
            skipped.add_metric([reason], p.rows_skipped.get(reason, 0))
        rebuilds = _counter(REBUILDS)
        for reason in REBUILD_REASONS:
            rebuilds.add_metric([reason], p.rebuilds.get(reason, 0))
        yield from (skipped, rebuilds)
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
