"""A scenario as the exporter would publish it: the generator's calls, folded by the exporter's
own code at every refresh, sampled at every scrape, written as promtool input series.

The calls come from generator.model with a fixed seed. Each refresh counts the calls written up
to it (exporter.counters) and judges its windows (exporter.rollup, exporter.refresh.view); each
scrape sees the last refresh before it. Refreshes run just after scrapes, the slow phase: a call
waits almost a whole refresh interval, plus the generator's write delay, before Prometheus sees it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from ecm_common.domain import REASONS, tower_name
from exporter.assess import Thresholds
from exporter.budget import Budget
from exporter.config import ExporterSettings
from exporter.counters import CounterRows, Counters
from exporter.metrics import BUCKET_LE, WINDOW_P95, WINDOW_RATIO
from exporter.refresh import view
from exporter.rollup import Catalog, Rollup, Rows
from generator.model import CallModel, ModelParams, Timeline
from tests.stack.detection.timing import WRITE_DELAY_S, Timing

JOB = 'job="ecm-exporter", instance="exporter:9742"'
BATCH = 50_000
# The window gauges the rules read, beside each window's status and calls.
GAUGES = (WINDOW_RATIO.name, WINDOW_P95.name)


@dataclass
class Calls:
    """Every call of a run as columns: model time (s), tower, reason (-1: success), latency."""

    t: npt.NDArray[np.float64]
    tower: npt.NDArray[np.int64]
    reason: npt.NDArray[np.int64]
    latency_ms: npt.NDArray[np.int64]


def draw(params: ModelParams, timeline: Timeline | None, until_s: float, seed: int) -> Calls:
    """The generator's calls from model time 0 to until_s, reproducible from the seed."""
    model = CallModel(params, timeline, origin_us=0)
    rng = np.random.default_rng(seed)
    parts = []
    offsets = []
    start = 0.0
    while start < until_s:
        b = model.batch(BATCH, start, rng)
        assert b.offsets is not None  # the model always sets them
        parts.append(b)
        offsets.append(b.offsets)
        start = float(b.offsets[-1])
    t = np.concatenate(offsets)
    keep = t <= until_s
    return Calls(
        t=t[keep],
        tower=np.concatenate([b.tower for b in parts]).astype(np.int64)[keep],
        reason=np.concatenate([b.reason for b in parts]).astype(np.int64)[keep],
        latency_ms=np.concatenate([b.latency_ms for b in parts]).astype(np.int64)[keep],
    )


def expand(values: list[int]) -> str:
    """promtool's expanding notation: runs of a constant step as 'a+bxN' (N+1 values)."""
    out = []
    i, n = 0, len(values)
    while i < n:
        if i == n - 1:
            out.append(str(values[i]))
            break
        step = values[i + 1] - values[i]
        j = i + 1
        while j + 1 < n and values[j + 1] - values[j] == step:
            j += 1
        out.append(f"{values[i]}x{j - i}" if step == 0 else f"{values[i]}{step:+d}x{j - i}")
        i = j + 1
    return " ".join(out)


def expand_gauge(values: list[float | None]) -> str:
    """A gauge's samples in promtool's notation: runs of one value as 'axN' (N+1 values); where
    the exporter publishes nothing, 'stale' after a value (as Prometheus marks a series gone)
    and '_xN' (N missing samples)."""
    out = []
    i, n = 0, len(values)
    while i < n:
        j = i
        while j + 1 < n and values[j + 1] == values[i]:
            j += 1
        v, run = values[i], j - i + 1
        if v is not None:
            out.append(f"{v:.9g}" if run == 1 else f"{v:.9g}x{run - 1}")
        else:
            if i > 0:
                out.append("stale")
                run -= 1
            if run:
                out.append(f"_x{run}")
        i = j + 1
    return " ".join(out)


@dataclass
class Published:
    """The sampled series: name with labels -> one value per scrape."""

    scrapes: int
    series: dict[str, list[int]] = field(default_factory=dict)
    gauges: dict[str, list[float | None]] = field(default_factory=dict)

    def input_series(self) -> list[dict[str, str]]:
        """promtool's input_series entries."""
        return [{"series": k, "values": expand(v)} for k, v in self.series.items()] + [
            {"series": k, "values": expand_gauge(v)} for k, v in self.gauges.items()
        ]


def publish(calls: Calls, params: ModelParams, until_s: float, timing: Timing) -> Published:
    """Fold the calls refresh by refresh and sample what each scrape would read."""
    budget = Budget()
    catalog = Catalog(budget.tower_detail_max, budget.detail_towers)
    catalog.add_towers(
        (tower_name(i + 1), region) for i, region in enumerate(params.tower_regions())
    )
    counters = Counters(catalog)
    windows = ExporterSettings.model_validate({}).window_specs
    rollup = Rollup(catalog, [(w.label, w.minutes) for w in windows])
    th = Thresholds()
    scrapes = int(until_s // timing.scrape_s) + 1
    written = calls.t + WRITE_DELAY_S
    order = np.argsort(written, kind="stable")
    written = written[order]
    done = 0
    refresh = -1.0
    snap = counters.snapshot()
    statuses = {w.label: 0 for w in windows}
    wcalls = {w.label: 0 for w in windows}
    gauges: dict[str, dict[str, float | None]] = {w.label: {} for w in windows}
    calls_in: dict[str, list[int]] = {w.label: [] for w in windows}
    gauges_in: dict[str, list[float | None]] = {}
    snaps: list[CounterRows] = []
    status: dict[str, list[int]] = {w.label: [] for w in windows}
    last_refresh: list[int] = []
    for k in range(scrapes):
        now = k * timing.scrape_s
        # Refreshes run at j * interval + 0.5 s: the scrape at `now` reads the last one before.
        due = float(np.floor((now - 0.5) / timing.refresh_s) * timing.refresh_s + 0.5)
        if due >= 0 and due > refresh:
            refresh = due
            upto = int(np.searchsorted(written, refresh, side="right"))
            idx = order[done:upto]
            done = upto
            rows = Rows(calls.tower[idx], calls.reason[idx], calls.latency_ms[idx], calls.t[idx])
            counters.add(rows)
            rollup.add(rows, refresh)
            snap = counters.snapshot()
            views = {w.label: view(rollup, w.label, th) for w in windows}
            statuses = {k: int(v.status) for k, v in views.items()}
            wcalls = {k: int(v.result.calls) for k, v in views.items()}
            # As the exporter publishes them: only for a window holding calls.
            gauges = {
                k: {
                    WINDOW_RATIO.name: float(v.result.failure_ratio),
                    WINDOW_P95.name: v.result.p95_ms / 1000.0,
                }
                if v.result.calls
                else {}
                for k, v in views.items()
            }
        snaps.append(snap)
        for label in status:
            status[label].append(statuses[label])
            calls_in[label].append(wcalls[label])
            for name in GAUGES:
                key = f'{name}{{{JOB}, window="{label}"}}'
                gauges_in.setdefault(key, []).append(gauges[label].get(name))
        last_refresh.append(int(max(refresh, 0)))
    out = _series(snaps, status, calls_in, last_refresh)
    out.gauges = gauges_in
    return out


def _series(
    snaps: list[CounterRows],
    status: dict[str, list[int]],
    calls_in: dict[str, list[int]],
    last_refresh: list[int],
) -> Published:
    scrapes = len(snaps)
    out = Published(scrapes)
    s = out.series
    s[f"up{{{JOB}}}"] = [1] * scrapes
    s[f"ecm_database_up{{{JOB}}}"] = [1] * scrapes
    s[f"ecm_exporter_last_refresh_success_timestamp_seconds{{{JOB}}}"] = last_refresh
    for label, values in status.items():
        s[f'ecm_window_status{{{JOB}, window="{label}"}}'] = values
        s[f'ecm_window_calls{{{JOB}, window="{label}"}}'] = calls_in[label]
    # The published label sets are known from the start (the towers table): one row each.
    labels = snaps[-1].labels
    pos = {lab: i for i, lab in enumerate(labels)}
    n = len(labels)
    calls = np.zeros((scrapes, n), np.int64)
    failed = np.zeros((scrapes, n, len(REASONS)), np.int64)
    hist = np.zeros((scrapes, n, len(BUCKET_LE)), np.int64)
    for k, c in enumerate(snaps):
        rows = [pos[lab] for lab in c.labels]
        calls[k, rows] = c.calls
        failed[k, rows] = c.failed[:, : len(REASONS)]
        hist[k, rows] = np.cumsum(c.buckets, axis=1)  # cumulative per le; last column +Inf
    # The latency histogram summed over the label sets: the rules read it summed by job (only a
    # dashboard's per-tower p95 reads it per tower), and 17 series per tower would not be compact.
    total = hist.sum(axis=1)
    for b, le in enumerate(BUCKET_LE):
        key = f'ecm_call_latency_seconds_bucket{{{JOB}, region="all", tower="all", le="{le}"}}'
        s[key] = total[:, b].tolist()
    for i, (region, tower) in enumerate(labels):
        if not calls[-1, i]:
            continue  # a label set without a call publishes zeros: no rule tells them apart
        lab = f'{JOB}, region="{region}", tower="{tower}"'
        s[f"ecm_calls_total{{{lab}}}"] = calls[:, i].tolist()
        for r, reason in enumerate(REASONS):
            if failed[-1, i, r]:
                s[f'ecm_calls_failed_total{{{lab}, reason="{reason}"}}'] = failed[:, i, r].tolist()
    return out
