"""The text exposition built straight from the snapshot's arrays, byte-identical to generate_latest.

prometheus_client's generate_latest builds a Sample object per series and formats each value with
floatToGoString; at 5,000 towers (about 190,000 series) that is most of a refresh. Here every
family is written from numpy arrays: HELP/TYPE once, label prefixes cached per tower set, values
formatted in bulk. Labels are written sorted by name and escaped exactly as generate_latest does;
these custom families carry no _created samples, so neither path writes any.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from prometheus_client.utils import floatToGoString

from exporter.counters import CounterRows
from exporter.metrics import (
    BUCKET_LE,
    CALL_LATENCY,
    CALLS_FAILED_TOTAL,
    CALLS_TOTAL,
    COUNTER_DEFS,
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
    WindowView,
)
from exporter.rollup import WindowResult

log = logging.getLogger(__name__)

IntArray = npt.NDArray[np.int64]

_GO_EXPONENT_FROM = 1e6  # floatToGoString switches to Go's exponent form from here up


def escape_value(v: str) -> str:
    """A label value escaped as the text format requires."""
    return v.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _go(v: float) -> str:
    return str(floatToGoString(v))  # type: ignore[no-untyped-call]


class _WholeText:
    """Text of small whole numbers ("12.0" + end): a fixed table, so memory stays flat."""

    SIZE = 1 << 15  # about 2 MiB; larger counts are formatted one by one

    def __init__(self, end: str) -> None:
        self.end = end
        self.table = np.empty(0, dtype=object)

    def __call__(self, ints: IntArray) -> list[str]:
        """floatToGoString(n) + end of each whole number 0 <= n < 1e6."""
        if not len(self.table):
            self.table = np.array([f"{i}.0{self.end}" for i in range(self.SIZE)], dtype=object)
        if int(ints.max()) < self.SIZE:
            small: list[str] = self.table[ints].tolist()
            return small
        out = np.empty(len(ints), dtype=object)
        fits = ints < self.SIZE
        out[fits] = self.table[ints[fits]]
        big = np.flatnonzero(~fits)
        out[big] = [f"{v}.0{self.end}" for v in ints[big].tolist()]
        result: list[str] = out.tolist()
        return result


_WHOLE = {"": _WholeText(""), "\n": _WholeText("\n")}


def format_values(values: npt.ArrayLike, end: str = "") -> list[str]:
    """floatToGoString of every value followed by end, in bulk (whole numbers take a fast path)."""
    a = np.asarray(values, dtype=np.float64).ravel()
    if not a.size:
        return []
    whole_text = _WHOLE[end] if end in _WHOLE else _WholeText(end)
    whole = (a >= 0) & (a < _GO_EXPONENT_FROM) & (a == np.floor(a)) & ~np.signbit(a)
    if whole.all():
        return whole_text(a.astype(np.int64))
    out = np.empty(a.size, dtype=object)
    idx = np.flatnonzero(whole)
    if len(idx):
        out[idx] = whole_text(a[idx].astype(np.int64))
    rest = np.flatnonzero(~whole)
    # Ratios and quantiles repeat across towers: format each distinct value once.
    uniq, inv = np.unique(a[rest], return_inverse=True)
    texts = np.array(
        [(_go(v) if not math.isfinite(v) or v >= _GO_EXPONENT_FROM else repr(v)) + end
         for v in uniq.tolist()],
        dtype=object,
    )  # fmt: skip
    out[rest] = texts[inv]
    result: list[str] = out.tolist()
    return result


def header(d: Def, interval_s: float) -> str:
    """The HELP and TYPE lines of a family (counters keep their _total name)."""
    doc = d.help_text(interval_s).replace("\\", r"\\").replace("\n", r"\n")
    return f"# HELP {d.name} {doc}\n# TYPE {d.name} {d.kind}\n"


def sample(name: str, labels: dict[str, str], value: float) -> str:
    """One sample line, labels sorted by name."""
    if labels:
        inner = ",".join(f'{k}="{escape_value(v)}"' for k, v in sorted(labels.items()))
        return f"{name}{{{inner}}} {_go(value)}\n"
    return f"{name} {_go(value)}\n"


def _split(name: str, labels: dict[str, str], varying: str) -> tuple[str, str]:
    """Text before and after the varying label's value in a sample line with these labels."""
    names = sorted([*labels, varying])
    i = names.index(varying)
    before = [f'{k}="{escape_value(labels[k])}"' for k in names[:i]]
    after = [f'{k}="{escape_value(labels[k])}"' for k in names[i + 1 :]]
    head = name + "{" + "".join(b + "," for b in before) + varying + '="'
    tail = '"' + "".join("," + a for a in after) + "} "
    return head, tail


def _lines(prefixes: Sequence[str], values: npt.ArrayLike) -> str:
    """Prefix + value per line, newline-terminated."""
    n = len(prefixes)
    if not n:
        return ""
    out: list[str] = [""] * (2 * n)
    out[::2] = prefixes
    out[1::2] = format_values(values, "\n")
    return "".join(out)


def _pick(prefixes: list[str], idx: IntArray) -> list[str]:
    """The prefixes of some towers, in index order."""
    picked: list[str] = np.asarray(prefixes, dtype=object)[idx].tolist()
    return picked


def _interleave(groups: list[list[str]]) -> list[str]:
    """Tower-major order from per-column lists: g0[0], g1[0], ..., g0[1], g1[1], ..."""
    return [x for row in zip(*groups, strict=True) for x in row]


def _rows_prefixes(name: str, fixed: dict[str, str], varying: tuple[str, ...],
                   rows: Sequence[tuple[str, ...]]) -> list[str]:  # fmt: skip
    """Line prefixes for label sets made of fixed labels and one row of varying values each."""
    names = sorted([*fixed, *varying])
    if not names:
        return [name + " "] * len(rows)
    # The text between the varying values, labels in name order; each value escaped once.
    pieces, order, cur = [], [], name + "{"
    for i, k in enumerate(names):
        cur += ("," if i else "") + k + '="'
        if k in fixed:
            cur += escape_value(fixed[k]) + '"'
        else:
            pieces.append(cur)
            order.append(varying.index(k))
            cur = '"'
    pieces.append(cur + "} ")
    escaped = {v: escape_value(v) for row in rows for v in row}
    out = [pieces[0]] * len(rows)
    for j, col in enumerate(order):
        after = pieces[j + 1]
        out = [a + escaped[row[col]] + after for a, row in zip(out, rows, strict=True)]
    return out


class Renderer:
    """Renders Published snapshots; keeps the label prefixes of the last label sets."""

    def __init__(self) -> None:
        # key -> (the label rows the prefixes were built for, the prefixes)
        self._cache: dict[tuple[str, ...], tuple[list[Any], list[str]]] = {}
        self.data_series = 0  # samples written by the last render_data

    def _cached(self, key: tuple[str, ...], rows: list[Any], build: Callable[[], list[str]]
                ) -> list[str]:  # fmt: skip
        """Prefixes for rows, rebuilt only when the rows changed since the last call."""
        got = self._cache.get(key)
        if got is not None and got[0] == rows:
            return got[1]
        prefixes = build()
        self._cache[key] = (list(rows), prefixes)
        return prefixes

    def _tower_prefixes(self, name: str, w: dict[str, str], r: WindowResult) -> list[str]:
        """Line prefixes of a per-tower series for every published tower of a window."""
        rows = list(zip(r.tower_regions, r.tower_names, strict=True))
        key = (name, *[f"{k}={v}" for k, v in sorted(w.items())])
        return self._cached(key, rows, lambda: _rows_prefixes(name, w, ("region", "tower"), rows))

    def render(self, p: Published) -> bytes:
        """The whole exposition of a snapshot, as generate_latest would write it."""
        data = self.render_data(p)
        return data + self.render_self(p, self.data_series)

    def render_data(self, p: Published) -> bytes:
        """The counters and window gauges: all but the last few dozen lines."""
        parts = self._counters(p.counters, p.interval_s)
        parts += self._windows(p.windows, p.interval_s)
        text = "".join(parts)
        self.data_series = text.count("\n") - 2 * (len(COUNTER_DEFS) + len(WINDOW_DEFS))
        return text.encode("utf-8")

    @staticmethod
    def render_self(p: Published, data_series: int) -> bytes:
        """The thresholds and self-metrics, which end the exposition (the refresh's duration is
        known only once the data are rendered)."""
        return "".join(_self_metrics(p, data_series)).encode("utf-8")

    def _counters(self, c: CounterRows, iv: float) -> list[str]:
        rows = c.labels
        reasons = c.reason_names[: c.failed.shape[1]] if c.failed.ndim == 2 else []
        varying = ("region", "tower")
        calls_p = self._cached(
            (CALLS_TOTAL.name,), rows, lambda: _rows_prefixes(CALLS_TOTAL.name, {}, varying, rows)
        )
        calls = header(CALLS_TOTAL, iv) + _lines(calls_p, c.calls)
        failed_p = self._cached(
            (CALLS_FAILED_TOTAL.name, *reasons),
            rows,
            lambda: _interleave([
                _rows_prefixes(CALLS_FAILED_TOTAL.name, {"reason": r}, varying, rows)
                for r in reasons
            ]),
        )  # fmt: skip
        failed = header(CALLS_FAILED_TOTAL, iv) + _lines(
            failed_p, c.failed[:, : len(reasons)].ravel()
        )
        name = CALL_LATENCY.name
        hist_p = self._cached(
            (name,),
            rows,
            lambda: _interleave([
                *[_rows_prefixes(name + "_bucket", {"le": le}, varying, rows) for le in BUCKET_LE],
                _rows_prefixes(name + "_count", {}, varying, rows),
                _rows_prefixes(name + "_sum", {}, varying, rows),
            ]),
        )  # fmt: skip
        cum = c.buckets.cumsum(axis=1)
        values = np.column_stack([cum, cum[:, -1], c.latency_sum_ms / 1000.0])
        hist = header(CALL_LATENCY, iv) + _lines(hist_p, values.ravel())
        return [calls, failed, hist]

    def _windows(self, views: list[WindowView], iv: float) -> list[str]:
        body: dict[str, list[str]] = {d.name: [header(d, iv)] for d in WINDOW_DEFS}
        for view in views:
            r = view.result
            w = {"window": r.label}
            body[WINDOW_CALLS.name].append(sample(WINDOW_CALLS.name, w, r.calls))
            body[WINDOW_FAILED.name].append(sample(WINDOW_FAILED.name, w, r.failed))
            body[WINDOW_STATUS.name].append(sample(WINDOW_STATUS.name, w, int(view.status)))
            if r.calls:
                body[WINDOW_RATIO.name].append(sample(WINDOW_RATIO.name, w, r.failure_ratio))
                body[WINDOW_AVG.name].append(sample(WINDOW_AVG.name, w, r.avg_latency_ms / 1000.0))
                body[WINDOW_P95.name].append(sample(WINDOW_P95.name, w, r.p95_ms / 1000.0))
            for reason, n in r.reason_failed.items():
                body[REASON_FAILED.name].append(
                    sample(REASON_FAILED.name, {**w, "reason": reason}, n)
                )
                if r.calls:
                    body[REASON_RATIO.name].append(
                        sample(REASON_RATIO.name, {**w, "reason": reason}, n / r.calls)
                    )
            self._regions(body, view, w)
            for d, arr in ((TOWER_CALLS, r.tower_calls_n), (TOWER_FAILED, r.tower_failed_n)):
                body[d.name].append(_lines(self._tower_prefixes(d.name, w, r), arr))
            if len(r.active):
                ratio = self._tower_prefixes(TOWER_RATIO.name, w, r)
                p95 = self._tower_prefixes(TOWER_P95.name, w, r)
                body[TOWER_RATIO.name].append(_lines(_pick(ratio, r.active), r.active_ratio))
                body[TOWER_P95.name].append(_lines(_pick(p95, r.active), r.active_p95_ms / 1000.0))
            for rank, t in enumerate(view.worst, start=1):
                labels = {**w, "region": t.region, "tower": t.tower, "rank": str(rank)}
                body[WORST.name].append(sample(WORST.name, labels, t.failure_ratio))
        return ["".join(lines) for lines in body.values()]

    @staticmethod
    def _regions(body: dict[str, list[str]], view: WindowView, w: dict[str, str]) -> None:
        """Every region's values: a few lines per region, written plainly."""
        g = view.result.regions
        p95 = g.p95_ms.tolist()
        reasons = list(view.result.reason_failed)
        for i, (name, calls, failed) in enumerate(
            zip(g.names, g.calls.tolist(), g.failed.tolist(), strict=True)
        ):
            labels = {**w, "region": name}
            body[REGION_CALLS.name].append(sample(REGION_CALLS.name, labels, calls))
            body[REGION_FAILED.name].append(sample(REGION_FAILED.name, labels, failed))
            if calls:
                body[REGION_RATIO.name].append(sample(REGION_RATIO.name, labels, failed / calls))
                body[REGION_P95.name].append(sample(REGION_P95.name, labels, p95[i] / 1000.0))
            status = int(view.region_status[i])
            body[REGION_STATUS.name].append(sample(REGION_STATUS.name, labels, status))
            for j, reason in enumerate(reasons):
                body[REGION_REASON_FAILED.name].append(
                    sample(
                        REGION_REASON_FAILED.name,
                        {**labels, "reason": reason},
                        int(g.reason_failed[i, j]),
                    )
                )


def _self_metrics(p: Published, data_series: int) -> list[str]:
    """Thresholds and the exporter's own health: a few dozen lines, written plainly."""
    th, iv = p.thresholds, p.interval_s
    out = [header(TH_RATIO, iv)]
    out += [sample(TH_RATIO.name, {"level": "warn"}, th.warn_failure_ratio)]
    out += [sample(TH_RATIO.name, {"level": "alert"}, th.alert_failure_ratio)]
    out += [header(TH_P95, iv)]
    out += [sample(TH_P95.name, {"level": "warn"}, th.warn_p95_seconds)]
    out += [sample(TH_P95.name, {"level": "alert"}, th.alert_p95_seconds)]
    out += [header(TH_MIN_CALLS, iv), sample(TH_MIN_CALLS.name, {}, th.min_calls)]
    out += [header(DB_UP, iv), sample(DB_UP.name, {}, 1 if p.database_up else 0)]
    out += [header(LAST_SUCCESS, iv)]
    if p.last_success is not None:
        out += [sample(LAST_SUCCESS.name, {}, p.last_success)]
    out += [header(REFRESH_DURATION, iv)]
    if not math.isnan(p.refresh_duration_s):
        out += [sample(REFRESH_DURATION.name, {}, p.refresh_duration_s)]
    out += [header(REFRESH_OVERRUNS, iv), sample(REFRESH_OVERRUNS.name, {}, p.overruns)]
    out += [header(ROWS_SKIPPED, iv)]
    out += [
        sample(ROWS_SKIPPED.name, {"reason": r}, p.rows_skipped.get(r, 0)) for r in SKIP_REASONS
    ]
    out += [header(REBUILDS, iv)]
    out += [sample(REBUILDS.name, {"reason": r}, p.rebuilds.get(r, 0)) for r in REBUILD_REASONS]
    stats = [(name, p.queries.get(name, QueryStats())) for name in QUERIES]
    out += [header(QUERY_DURATION, iv)]
    out += [
        sample(QUERY_DURATION.name, {"query": n}, q.duration_s)
        for n, q in stats
        if not math.isnan(q.duration_s)
    ]
    out += [header(QUERY_LAST_SUCCESS, iv)]
    out += [
        sample(QUERY_LAST_SUCCESS.name, {"query": n}, q.last_success)
        for n, q in stats
        if q.last_success is not None
    ]
    out += [header(QUERY_FAILURES, iv)]
    out += [sample(QUERY_FAILURES.name, {"query": n}, q.failures) for n, q in stats]
    out += [header(INTERVAL, iv), sample(INTERVAL.name, {}, p.interval_s)]
    samples = sum(1 for line in out if not line.startswith("#")) + 5
    out += [header(SERIES, iv), sample(SERIES.name, {}, data_series + samples)]
    out += [header(SERIES_BUDGET, iv), sample(SERIES_BUDGET.name, {}, p.series_budget)]
    out += [header(TOWERS, iv), sample(TOWERS.name, {}, p.towers)]
    out += [header(DETAIL_TOWERS, iv), sample(DETAIL_TOWERS.name, {}, p.detail_towers)]
    out += [header(REGIONS, iv), sample(REGIONS.name, {}, p.regions)]
    return out
