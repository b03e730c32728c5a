"""Monotonic counters and the latency histogram, fed only with rows committed since start-up.

Kept per tower for the towers with detail (see Catalog) and, for every other tower, summed per
region: the published counters' label sets are (region, tower) and (region, tower=""), so a
sum over all of them is the network's total at any size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from exporter.rollup import Catalog, Rows

# Contract buckets (seconds); in integer milliseconds a call with latency <= le falls in le.
LATENCY_BUCKETS_S = (0.25, 0.5, 0.75, 1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10, 15, 20, 30)
_EDGES_MS = np.array([round(b * 1000) for b in LATENCY_BUCKETS_S], np.int64)


IntArray = npt.NDArray[np.int64]
N_COUNTER_BUCKETS = len(_EDGES_MS) + 1  # last one: above the largest bound


@dataclass
class CounterRows:
    """Counters as published: one row per label set (region, tower; tower "" for a region's
    towers without detail), aligned arrays."""

    labels: list[tuple[str, str]]
    reason_names: list[str]
    calls: IntArray
    failed: IntArray  # rows x reasons
    buckets: IntArray  # rows x N_COUNTER_BUCKETS, not cumulative
    latency_sum_ms: IntArray


def _fit(arr: IntArray, rows: int, cols: int | None = None) -> IntArray:
    """arr zero-padded to rows (and cols) when smaller."""
    shape = (rows,) if cols is None else (rows, cols)
    if arr.shape == shape:
        return arr
    out = np.zeros(shape, np.int64)
    kept = tuple(slice(0, min(a, s)) for a, s in zip(arr.shape, shape, strict=True))
    out[kept] = arr[kept]
    return out


class _Table:
    """Calls, failures by reason, latency buckets and sum for some keys (towers or regions)."""

    def __init__(self) -> None:
        self.calls = np.zeros(0, np.int64)
        self.failed = np.zeros((0, 0), np.int64)
        self.buckets = np.zeros((0, N_COUNTER_BUCKETS), np.int64)
        self.latency_sum_ms = np.zeros(0, np.int64)

    def fit(self, n_keys: int, n_reasons: int) -> None:
        """Room for n_keys keys and n_reasons reasons; new ones start at 0."""
        if len(self.calls) < n_keys:
            self.calls = _fit(self.calls, n_keys)
            self.latency_sum_ms = _fit(self.latency_sum_ms, n_keys)
            self.buckets = _fit(self.buckets, n_keys, N_COUNTER_BUCKETS)
        if self.failed.shape != (len(self.calls), n_reasons):
            self.failed = _fit(self.failed, len(self.calls), n_reasons)

    def add(self, key: IntArray, reason: IntArray, latency_ms: IntArray) -> None:
        """Count rows by key."""
        if not len(key):
            return
        n = len(self.calls)
        self.calls += np.bincount(key, minlength=n)
        self.latency_sum_ms += np.bincount(key, weights=latency_ms, minlength=n).astype(np.int64)
        failed = reason >= 0
        np.add.at(self.failed, (key[failed], reason[failed]), 1)
        bucket = np.searchsorted(_EDGES_MS, latency_ms, side="left")
        np.add.at(self.buckets, (key, bucket), 1)


class Counters:
    """Per tower with detail, and per region for the other towers: calls, failed calls by reason,
    latency bucket counts and sum; memory follows detail towers and regions, not all towers."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.towers = _Table()  # by detail slot
        self.regions = _Table()  # by region index: towers without detail only
        self.region_seen = np.zeros(0, np.bool_)  # regions holding a tower without detail
        self._labels: list[tuple[str, str]] = []
        self._labels_key: tuple[int, int, int] = (-1, -1, -1)

    def _fit(self) -> None:
        """Grow to the catalog's size; new towers, regions and reasons start at 0."""
        c = self.catalog
        n_r = len(c.reasons)
        self.towers.fit(len(c.detail), n_r)
        self.regions.fit(len(c.regions), n_r)
        if len(self.region_seen) < len(c.regions) or self._labels_key[2] != len(c.towers):
            seen = np.zeros(len(c.regions), np.bool_)
            seen[c.region_of[c.detail_slot < 0]] = True
            self.region_seen = seen

    def add(self, rows: Rows) -> None:
        """Count new rows."""
        self._fit()
        if not len(rows):
            return
        slot = self.catalog.detail_slot[rows.tower]
        mine = slot >= 0
        self.towers.add(slot[mine], rows.reason[mine], rows.latency_ms[mine])
        rest = ~mine
        region = self.catalog.region_of[rows.tower[rest]]
        self.regions.add(region, rows.reason[rest], rows.latency_ms[rest])

    def _label_sets(self) -> list[tuple[str, str]]:
        """(region, tower) of each published row: detail towers, then regions' other towers."""
        c = self.catalog
        key = (len(c.detail), len(c.regions), len(c.towers))
        if key != self._labels_key:
            self._fit()
            self._labels_key = key
            self._labels = [(c.regions[int(c.region_of[t])], c.towers[t]) for t in c.detail]
            self._labels += [(c.regions[g], "") for g in np.flatnonzero(self.region_seen).tolist()]
        return self._labels

    def snapshot(self) -> CounterRows:
        """The published rows, copies that later additions do not change."""
        self._fit()
        labels = self._label_sets()
        g = np.flatnonzero(self.region_seen)
        t, r = self.towers, self.regions
        n_t = len(self.catalog.detail)
        return CounterRows(
            labels=list(labels),
            reason_names=list(self.catalog.reasons),
            calls=np.concatenate([t.calls[:n_t], r.calls[g]]),
            failed=np.concatenate([t.failed[:n_t], r.failed[g]]),
            buckets=np.concatenate([t.buckets[:n_t], r.buckets[g]]),
            latency_sum_ms=np.concatenate([t.latency_sum_ms[:n_t], r.latency_sum_ms[g]]),
        )
