"""Per-minute, per-tower rollups with running window sums: refresh cost follows new rows only.

Latency is kept in a histogram of fixed buckets: one bucket per millisecond below 50 ms, then
log-spaced buckets of ratio 1.02 up to 120 s (values above are clamped to 120 s). A bucket is
reported by its geometric midpoint, so every order statistic is within sqrt(1.02) - 1 = 0.995%
(relative) of the true value, and so is p95, a convex combination of two order statistics.

A window of N minutes holds the event minutes (cur - N, cur]: the current partial minute and the
N - 1 whole minutes before it. No counted call is older than N minutes; calls in the oldest,
partial minute of the exact N-minute span are left out. Every row counts in its own event minute
only: a row timestamped in a minute that has not begun yet (clock skew) waits in that minute and
enters the windows when it begins, so what a window holds depends on the rows and the time only,
never on when a row was read.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import numpy.typing as npt

from ecm_common.domain import FAILED, REASONS

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

LINEAR_MS = 50
RATIO = 1.02
MAX_MS = 120_000
_LOG_RATIO = math.log(RATIO)
N_BUCKETS = LINEAR_MS + math.floor(math.log(MAX_MS / LINEAR_MS) / _LOG_RATIO) + 1
QUANTILE = 0.95
MERGE_AFTER = 4  # batches kept per minute before they are merged into one


def _representatives() -> FloatArray:
    """The value (ms) each bucket stands for: exact below LINEAR_MS, geometric midpoint above."""
    idx = np.arange(N_BUCKETS, dtype=np.float64)
    rep = np.where(idx < LINEAR_MS, idx, LINEAR_MS * RATIO ** (idx - LINEAR_MS + 0.5))
    return np.minimum(rep, MAX_MS)


BUCKET_VALUE_MS = _representatives()


def bucket_of(latency_ms: IntArray) -> IntArray:
    """Histogram bucket index of each latency in milliseconds."""
    v = np.clip(latency_ms, 0, MAX_MS).astype(np.float64)
    logs = np.floor(np.log(np.maximum(v, LINEAR_MS) / LINEAR_MS) / _LOG_RATIO) + LINEAR_MS
    out = np.where(v < LINEAR_MS, v, logs).astype(np.int64)
    return np.minimum(out, N_BUCKETS - 1)


def quantile_from_counts(counts: IntArray, q: float = QUANTILE) -> float:
    """percentile_cont(q) estimated from bucket counts; NaN when empty."""
    return float(quantiles_by_row(counts.reshape(1, -1), q)[0])


def quantiles_by_row(counts: IntArray, q: float = QUANTILE) -> FloatArray:
    """percentile_cont(q) per row of a (rows x buckets) count matrix, NaN for empty rows."""
    rows, width = counts.shape
    if not rows or not width:
        return np.full(rows, np.nan)
    n = counts.sum(axis=1)
    # One running count over the flattened matrix: row r's entries lie in (off[r], off[r] + n[r]],
    # so a search for off[r] + k finds row r's bucket holding order statistic k (0-based).
    running = np.cumsum(counts, axis=None)
    off = running[width - 1 :: width] - n
    h = q * np.maximum(n - 1, 0)
    k = np.floor(h).astype(np.int64)
    frac = h - k
    last = width - 1
    base = np.arange(rows, dtype=np.int64) * width
    k_hi = np.minimum(k + 1, np.maximum(n - 1, 0))
    b_lo = np.minimum(np.searchsorted(running, off + k, side="right") - base, last)
    b_hi = np.minimum(np.searchsorted(running, off + k_hi, side="right") - base, last)
    lo = BUCKET_VALUE_MS[b_lo]
    hi = BUCKET_VALUE_MS[b_hi]
    out: FloatArray = lo + frac * (hi - lo)
    out[n == 0] = np.nan
    return out


class Catalog:
    """Stable indices for tower ids and failure reasons, shared by rollups and counters."""

    def __init__(self) -> None:
        self.towers: list[str] = []
        self.reasons: list[str] = list(REASONS)
        self.tower_index: dict[str, int] = {}
        self.reason_index: dict[str, int] = {r: i for i, r in enumerate(self.reasons)}

    def tower(self, name: str) -> int:
        """Index of a tower, adding it when new."""
        idx = self.tower_index.get(name)
        if idx is None:
            idx = self.tower_index[name] = len(self.towers)
            self.towers.append(name)
        return idx

    def reason(self, name: str) -> int:
        """Index of a failure reason, adding it when new (reasons outside the vocabulary)."""
        idx = self.reason_index.get(name)
        if idx is None:
            idx = self.reason_index[name] = len(self.reasons)
            self.reasons.append(name)
        return idx

    def add_towers(self, names: Iterable[str]) -> None:
        """Make towers known (from the towers table) so they are published with zeros."""
        for name in names:
            self.tower(name)


@dataclass
class Rows:
    """A batch of calls as columns of catalog indices; reason is -1 for successful calls."""

    tower: IntArray
    reason: IntArray
    latency_ms: IntArray
    epoch_s: FloatArray

    def __len__(self) -> int:
        return len(self.tower)

    @classmethod
    def from_columns(
        cls,
        catalog: Catalog,
        towers: Sequence[str],
        statuses: Sequence[str],
        reasons: Sequence[str | None],
        latency_ms: Sequence[int],
        epoch_s: Sequence[float],
    ) -> Rows:
        """Map the database's columns to indices (C-speed lookups: rebuilds read a million rows)."""
        n = len(towers)
        for name in set(towers):
            catalog.tower(name)
        for reason in set(reasons):
            if reason is not None:
                catalog.reason(reason)
        t = np.fromiter(map(catalog.tower_index.__getitem__, towers), np.int64, n)
        lookup: dict[str | None, int] = {None: -1}
        lookup.update(catalog.reason_index)
        r = np.fromiter(map(lookup.__getitem__, reasons), np.int64, n)
        failed = np.fromiter(map(FAILED.__eq__, statuses), np.bool_, n)
        r[~failed] = -1
        if (failed & (r < 0)).any():  # not possible under the schema's CHECK; count it anyway
            r[failed & (r < 0)] = catalog.reason("UNKNOWN")
        return cls(t, r, np.asarray(latency_ms, np.int64), np.asarray(epoch_s, np.float64))

    def take(self, mask: npt.NDArray[np.bool_]) -> Rows:
        """The rows where mask is true."""
        return Rows(self.tower[mask], self.reason[mask], self.latency_ms[mask], self.epoch_s[mask])

    @classmethod
    def empty(cls) -> Rows:
        """No rows."""
        z = np.zeros(0, np.int64)
        return cls(z, z, z, np.zeros(0, np.float64))


@dataclass
class MinuteBatch:
    """The aggregated contribution of some rows to one event minute (sparse, unique keys)."""

    towers: IntArray
    calls: IntArray
    latency_sum_ms: IntArray
    hist_keys: IntArray  # tower * N_BUCKETS + bucket
    hist_counts: IntArray
    fail_towers: IntArray
    fail_reasons: IntArray
    fail_counts: IntArray

    @classmethod
    def of(cls, tower: IntArray, reason: IntArray, bucket: IntArray, lat: IntArray) -> MinuteBatch:
        """Aggregate rows that all belong to the same minute."""
        towers, inv = np.unique(tower, return_inverse=True)
        calls = np.bincount(inv, minlength=len(towers)).astype(np.int64)
        lat_sum = np.bincount(inv, weights=lat, minlength=len(towers)).astype(np.int64)
        hist_keys, hist_counts = np.unique(tower * N_BUCKETS + bucket, return_counts=True)
        failed = reason >= 0
        width = int(reason.max()) + 1 if failed.any() else 1
        fkeys, fcounts = np.unique(tower[failed] * width + reason[failed], return_counts=True)
        return cls(
            towers, calls, lat_sum, hist_keys, hist_counts.astype(np.int64),
            fkeys // width, fkeys % width, fcounts.astype(np.int64),
        )  # fmt: skip


def _sum_by_key(keys: IntArray, counts: IntArray) -> tuple[IntArray, IntArray]:
    """Unique keys and the summed counts of each."""
    uniq, inv = np.unique(keys, return_inverse=True)
    return uniq, np.bincount(inv, weights=counts, minlength=len(uniq)).astype(np.int64)


def merge(batches: Sequence[MinuteBatch]) -> MinuteBatch:
    """One batch equal to the sum of several (keeps memory per minute bounded)."""
    cat = np.concatenate
    towers, calls = _sum_by_key(cat([b.towers for b in batches]), cat([b.calls for b in batches]))
    _, lat = _sum_by_key(cat([b.towers for b in batches]), cat([b.latency_sum_ms for b in batches]))
    hk, hc = _sum_by_key(cat([b.hist_keys for b in batches]), cat([b.hist_counts for b in batches]))
    width = 1 + max((int(b.fail_reasons.max()) for b in batches if len(b.fail_reasons)), default=0)
    fk, fc = _sum_by_key(
        cat([b.fail_towers * width + b.fail_reasons for b in batches]),
        cat([b.fail_counts for b in batches]),
    )
    return MinuteBatch(towers, calls, lat, hk, hc, fk // width, fk % width, fc)


def _grow(arr: npt.NDArray[np.int64], shape: tuple[int, ...]) -> npt.NDArray[np.int64]:
    """arr zero-padded to at least shape (capacity doubles so growth is amortised)."""
    if all(a >= s for a, s in zip(arr.shape, shape, strict=True)):
        return arr
    new_shape = tuple(max(a, s, 2 * a) for a, s in zip(arr.shape, shape, strict=True))
    out = np.zeros(new_shape, np.int64)
    out[tuple(slice(0, a) for a in arr.shape)] = arr
    return out


class WindowSums:
    """Running sums over the minutes a window currently covers."""

    def __init__(self, label: str, slots: int) -> None:
        self.label = label
        self.slots = slots
        self.start: int | None = None
        self.calls = np.zeros(0, np.int64)
        self.latency_sum_ms = np.zeros(0, np.int64)
        self.failed = np.zeros((0, 0), np.int64)
        self.hist = np.zeros(0, np.int64)

    def ensure(self, n_towers: int, n_reasons: int) -> None:
        """Room for every tower and reason in the catalog."""
        self.calls = _grow(self.calls, (n_towers,))
        self.latency_sum_ms = _grow(self.latency_sum_ms, (n_towers,))
        self.failed = _grow(self.failed, (n_towers, n_reasons))
        self.hist = _grow(self.hist, (n_towers * N_BUCKETS,))

    def apply(self, batch: MinuteBatch, sign: int) -> None:
        """Add (sign 1) or remove (sign -1) a batch; keys are unique so fancy indexing is exact."""
        self.calls[batch.towers] += sign * batch.calls
        self.latency_sum_ms[batch.towers] += sign * batch.latency_sum_ms
        self.hist[batch.hist_keys] += sign * batch.hist_counts
        self.failed[batch.fail_towers, batch.fail_reasons] += sign * batch.fail_counts


@dataclass
class TowerResult:
    """One tower's values over a window."""

    tower: str
    calls: int
    failed: int
    failure_ratio: float
    p95_ms: float


@dataclass
class WindowResult:
    """Everything published for one window; per-tower values as arrays over the catalog."""

    label: str
    calls: int
    failed: int
    latency_sum_ms: int
    p95_ms: float  # NaN when no calls
    reason_failed: dict[str, int]
    tower_names: list[str] = field(default_factory=list)  # every known tower, catalog order
    tower_calls_n: IntArray = field(default_factory=lambda: np.zeros(0, np.int64))
    tower_failed_n: IntArray = field(default_factory=lambda: np.zeros(0, np.int64))
    active: IntArray = field(default_factory=lambda: np.zeros(0, np.int64))  # towers with calls
    active_p95_ms: FloatArray = field(default_factory=lambda: np.zeros(0, np.float64))

    @property
    def failure_ratio(self) -> float:
        """Failed / calls, NaN without calls."""
        return self.failed / self.calls if self.calls else math.nan

    @property
    def avg_latency_ms(self) -> float:
        """Mean latency, NaN without calls."""
        return self.latency_sum_ms / self.calls if self.calls else math.nan

    @property
    def active_ratio(self) -> FloatArray:
        """Failure ratio of each tower with calls (same order as active)."""
        out: FloatArray = self.tower_failed_n[self.active] / self.tower_calls_n[self.active]
        return out

    @cached_property
    def towers(self) -> list[TowerResult]:
        """Towers with calls in the window, catalog order."""
        return [
            TowerResult(self.tower_names[t], c, f, r, p)
            for t, c, f, r, p in zip(
                self.active.tolist(),
                self.tower_calls_n[self.active].tolist(),
                self.tower_failed_n[self.active].tolist(),
                self.active_ratio.tolist(),
                self.active_p95_ms.tolist(),
                strict=True,
            )
        ]

    @property
    def tower_calls(self) -> dict[str, tuple[int, int]]:
        """Every known tower: (calls, failed calls)."""
        return dict(
            zip(
                self.tower_names,
                zip(self.tower_calls_n.tolist(), self.tower_failed_n.tolist(), strict=True),
                strict=True,
            )
        )


class Rollup:
    """Per-minute batches for the longest window and running sums for each window."""

    def __init__(self, catalog: Catalog, windows: Sequence[tuple[str, int]]) -> None:
        """windows: (label, number of minute slots) pairs."""
        self.catalog = catalog
        self.sums = [WindowSums(label, slots) for label, slots in windows]
        self.max_slots = max(slots for _, slots in windows)
        self.minutes: dict[int, list[MinuteBatch]] = {}
        self.current: int | None = None

    def advance(self, now: float) -> None:
        """Move the windows to now: minutes that left a window leave its sums, minutes that began
        (rows that were timestamped ahead) enter them; minutes older than every window go."""
        cur = math.floor(now / 60)
        before = self.current
        if before is not None:
            cur = max(cur, before)  # the clock stepped back: keep the windows where they are
        self.current = cur
        for ws in self.sums:
            new_start = cur - ws.slots + 1
            if (
                ws.start is not None
                and before is not None
                and (new_start, cur) != (ws.start, before)
            ):
                for minute in sorted(self.minutes):
                    was = ws.start <= minute <= before
                    now_in = new_start <= minute <= cur
                    if was != now_in:
                        for batch in self.minutes[minute]:
                            ws.apply(batch, 1 if now_in else -1)
            ws.start = new_start
        oldest = cur - self.max_slots + 1
        for minute in [m for m in self.minutes if m < oldest]:
            del self.minutes[minute]

    def add(self, rows: Rows, now: float) -> int:
        """Advance to now, then add rows to their own minute if it is still kept; returns the
        number of rows left out because they are older than the longest window."""
        self.advance(now)
        assert self.current is not None
        if not len(rows):
            return 0
        minute = np.floor(rows.epoch_s / 60).astype(np.int64)
        keep = minute >= self.current - self.max_slots + 1
        too_old = int(len(keep) - np.count_nonzero(keep))
        if too_old:
            rows, minute = rows.take(keep), minute[keep]
            if not len(minute):
                return too_old
        for ws in self.sums:
            ws.ensure(len(self.catalog.towers), len(self.catalog.reasons))
        order = np.argsort(minute, kind="stable")
        minute = minute[order]
        tower, reason, lat = rows.tower[order], rows.reason[order], rows.latency_ms[order]
        bucket = bucket_of(lat)
        cuts = np.flatnonzero(np.diff(minute)) + 1
        for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(minute)], strict=True):
            m = int(minute[lo])
            batch = MinuteBatch.of(tower[lo:hi], reason[lo:hi], bucket[lo:hi], lat[lo:hi])
            kept = self.minutes.setdefault(m, [])
            kept.append(batch)
            if len(kept) >= MERGE_AFTER:
                kept[:] = [merge(kept)]
            for ws in self.sums:
                if ws.start is not None and ws.start <= m <= self.current:
                    ws.apply(batch, 1)
        return too_old

    def result(self, label: str) -> WindowResult:
        """The window's totals, per reason and per tower; cost O(towers x buckets)."""
        ws = next(w for w in self.sums if w.label == label)
        n_t, n_r = len(self.catalog.towers), len(self.catalog.reasons)
        ws.ensure(n_t, n_r)
        calls = ws.calls[:n_t]
        failed = ws.failed[:n_t, :n_r]
        hist = ws.hist[: n_t * N_BUCKETS].reshape(n_t, N_BUCKETS)
        failed_t = failed.sum(axis=1)
        reason_failed = failed.sum(axis=0)
        active = np.flatnonzero(calls)
        p95_t = quantiles_by_row(hist)[active]
        return WindowResult(
            label=label,
            calls=int(calls.sum()),
            failed=int(failed_t.sum()),
            latency_sum_ms=int(ws.latency_sum_ms[:n_t].sum()),
            p95_ms=quantile_from_counts(hist.sum(axis=0)),
            reason_failed={r: int(reason_failed[i]) for i, r in enumerate(self.catalog.reasons)},
            tower_names=list(self.catalog.towers),
            tower_calls_n=calls.copy(),
            tower_failed_n=failed_t,
            active=active,
            active_p95_ms=p95_t,
        )
