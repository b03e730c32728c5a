"""Monotonic counters and the latency histogram, fed only with rows committed since start-up."""

from __future__ import annotations

import numpy as np

from exporter.rollup import Catalog, Rows

# Contract buckets (seconds); in integer milliseconds a call with latency <= le falls in le.
LATENCY_BUCKETS_S = (0.25, 0.5, 0.75, 1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10, 15, 20, 30)
_EDGES_MS = np.array([round(b * 1000) for b in LATENCY_BUCKETS_S], np.int64)


class Counters:
    """Per tower: calls, failed calls by reason, latency bucket counts and sum."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.calls = np.zeros(0, np.int64)
        self.failed = np.zeros((0, 0), np.int64)
        self.buckets = np.zeros((0, len(_EDGES_MS) + 1), np.int64)  # last column: above 30 s
        self.latency_sum_ms = np.zeros(0, np.int64)
        self.tower_names: list[str] = []
        self.reason_names: list[str] = []

    def _fit(self) -> None:
        """Grow the arrays to the catalog's size; new towers and reasons start at 0."""
        n_t, n_r = len(self.catalog.towers), len(self.catalog.reasons)
        if self.calls.shape[0] < n_t:
            grow = n_t - self.calls.shape[0]
            self.calls = np.concatenate([self.calls, np.zeros(grow, np.int64)])
            self.latency_sum_ms = np.concatenate([self.latency_sum_ms, np.zeros(grow, np.int64)])
            self.buckets = np.vstack(
                [self.buckets, np.zeros((grow, self.buckets.shape[1]), np.int64)]
            )
        if self.failed.shape != (n_t, n_r):
            out = np.zeros((n_t, n_r), np.int64)
            out[: self.failed.shape[0], : self.failed.shape[1]] = self.failed
            self.failed = out

    def add(self, rows: Rows) -> None:
        """Count new rows."""
        self._fit()
        if not len(rows):
            return
        n_t = len(self.catalog.towers)
        self.calls += np.bincount(rows.tower, minlength=n_t)
        self.latency_sum_ms += np.bincount(
            rows.tower, weights=rows.latency_ms, minlength=n_t
        ).astype(np.int64)
        failed = rows.reason >= 0
        np.add.at(self.failed, (rows.tower[failed], rows.reason[failed]), 1)
        bucket = np.searchsorted(_EDGES_MS, rows.latency_ms, side="left")
        np.add.at(self.buckets, (rows.tower, bucket), 1)

    def snapshot(self) -> Counters:
        """A copy that later additions do not change (for publishing)."""
        self._fit()
        out = Counters(self.catalog)
        out.calls = self.calls.copy()
        out.failed = self.failed.copy()
        out.buckets = self.buckets.copy()
        out.latency_sum_ms = self.latency_sum_ms.copy()
        out.tower_names = list(self.catalog.towers)
        out.reason_names = list(self.catalog.reasons)
        return out
