"""Per-minute rollups with running window sums: refresh cost follows new rows only.

Each window keeps running sums per tower (calls, failures) and per region (calls, latency sum,
failures by reason, latency histogram). A tower's latency histogram is not summed: it is read
from the minutes' sparse keys for the few towers a refresh publishes.

Latency is kept in the histogram layout of ecm_common/latency.py (shared with the API's
PostgreSQL rollups): every order statistic, and so p95, is within 0.995% of the true value.

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
from ecm_common.latency import (
    BUCKET_VALUE_MS,
    LINEAR_MS,
    MAX_MS,
    N_BUCKETS,
    QUANTILE,
    RATIO,
    FloatArray,
    IntArray,
    bucket_of,
    quantile_from_counts,
    quantiles_by_row,
)

__all__ = [
    "BUCKET_VALUE_MS",
    "LINEAR_MS",
    "MAX_MS",
    "N_BUCKETS",
    "QUANTILE",
    "RATIO",
    "bucket_of",
    "quantile_from_counts",
    "quantiles_by_row",
]

MERGE_AFTER = 4  # batches kept per minute before they are merged into one


UNKNOWN_REGION = "unknown"  # towers seen in calls but absent from the towers table


def _grown(arr: IntArray, n: int, fill: int) -> IntArray:
    """arr with room for at least n entries (capacity doubles), new entries set to fill."""
    if len(arr) >= n:
        return arr
    out = np.full(max(n, 2 * len(arr), 16), fill, np.int64)
    out[: len(arr)] = arr
    return out


class Catalog:
    """Stable indices for towers, their regions and failure reasons, shared by rollups and counters.

    A tower's region and whether it has per-tower detail (counters and window gauges for every
    such tower) are fixed when it is first seen, so no published counter ever moves between label
    sets: a tower has detail when it is listed in detail_towers, or when the network it joins
    (with the towers first seen alongside it) has at most detail_max towers.
    """

    def __init__(self, detail_max: int = 1000, detail_towers: Iterable[str] = ()) -> None:
        self.detail_max = detail_max
        self.listed = frozenset(detail_towers)
        self.towers: list[str] = []
        self.tower_index: dict[str, int] = {}
        self.reasons: list[str] = list(REASONS)
        self.reason_index: dict[str, int] = {r: i for i, r in enumerate(self.reasons)}
        self.regions: list[str] = []
        self.region_index: dict[str, int] = {}
        self._region_of = np.zeros(0, np.int64)
        self._detail_slot = np.zeros(0, np.int64)
        self.detail: list[int] = []  # tower indices with detail, in the order they came
        self._detail_sorted = np.zeros(0, np.int64)
        self.version = 0  # moves whenever a tower, region or reason is added

    @property
    def region_of(self) -> IntArray:
        """Region index of every tower."""
        return self._region_of[: len(self.towers)]

    @property
    def detail_slot(self) -> IntArray:
        """Position of every tower in detail, -1 for towers without detail."""
        return self._detail_slot[: len(self.towers)]

    def detail_index(self) -> IntArray:
        """Tower indices with detail, sorted."""
        if len(self._detail_sorted) != len(self.detail):
            self._detail_sorted = np.sort(np.asarray(self.detail, np.int64))
        return self._detail_sorted

    def region(self, name: str) -> int:
        """Index of a region, adding it when new."""
        idx = self.region_index.get(name)
        if idx is None:
            idx = self.region_index[name] = len(self.regions)
            self.regions.append(name)
            self.version += 1
        return idx

    def tower(self, name: str, region: str = UNKNOWN_REGION) -> int:
        """Index of a tower, adding it (in region) when new."""
        idx = self.tower_index.get(name)
        if idx is None:
            self.add_towers([(name, region)])
            idx = self.tower_index[name]
        return idx

    def reason(self, name: str) -> int:
        """Index of a failure reason, adding it when new (reasons outside the vocabulary)."""
        idx = self.reason_index.get(name)
        if idx is None:
            idx = self.reason_index[name] = len(self.reasons)
            self.reasons.append(name)
            self.version += 1
        return idx

    def add_towers(self, towers: Iterable[tuple[str, str]]) -> None:
        """Make (tower, region) pairs known, so they are counted from 0 from now on."""
        new: dict[str, str] = {}
        for name, region in towers:
            if name not in self.tower_index and name not in new:
                new[name] = region
        if not new:
            return
        everyone = len(self.towers) + len(new) <= self.detail_max
        n = len(self.towers) + len(new)
        self._region_of = _grown(self._region_of, n, 0)
        self._detail_slot = _grown(self._detail_slot, n, -1)
        for name, region in new.items():
            idx = self.tower_index[name] = len(self.towers)
            self.towers.append(name)
            self._region_of[idx] = self.region(region)
            if everyone or name in self.listed:
                self._detail_slot[idx] = len(self.detail)
                self.detail.append(idx)
        self.version += 1


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
        """Map the database's columns to indices (C-speed lookups)."""
        n = len(towers)
        catalog.add_towers((name, UNKNOWN_REGION) for name in set(towers))
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
    def concat(cls, parts: Sequence[Rows]) -> Rows:
        """One batch holding every row of the parts."""
        if not parts:
            return cls.empty()
        cat = np.concatenate
        return cls(
            cat([p.tower for p in parts]), cat([p.reason for p in parts]),
            cat([p.latency_ms for p in parts]), cat([p.epoch_s for p in parts]),
        )  # fmt: skip

    @classmethod
    def empty(cls) -> Rows:
        """No rows."""
        z = np.zeros(0, np.int64)
        return cls(z, z, z, np.zeros(0, np.float64))


def _sum_by_key(keys: IntArray, counts: IntArray | None = None) -> tuple[IntArray, IntArray]:
    """Unique keys and the summed counts of each (or how often each occurs)."""
    if counts is None:
        uniq, n = np.unique(keys, return_counts=True)
        return uniq, n.astype(np.int64)
    uniq, inv = np.unique(keys, return_inverse=True)
    return uniq, np.bincount(inv, weights=counts, minlength=len(uniq)).astype(np.int64)


@dataclass
class MinuteBatch:
    """The aggregated contribution of some rows to one event minute (sparse, unique keys).

    Per tower: calls and failed calls, and the latency histogram as sorted keys
    tower * N_BUCKETS + bucket (read only for the towers a refresh publishes). Per region: calls,
    latency sum, histogram and failures by reason, which the region and overall values sum.
    """

    towers: IntArray
    calls: IntArray
    failed: IntArray
    hist_keys: IntArray  # tower * N_BUCKETS + bucket, sorted
    hist_counts: IntArray
    regions: IntArray
    region_calls: IntArray
    region_latency_ms: IntArray
    region_hist_keys: IntArray  # region * N_BUCKETS + bucket
    region_hist_counts: IntArray
    fail_keys: IntArray  # region * REASON_KEY + reason
    fail_counts: IntArray

    @classmethod
    def of(cls, tower: IntArray, region: IntArray, reason: IntArray, bucket: IntArray,
           lat: IntArray) -> MinuteBatch:  # fmt: skip
        """Aggregate rows that all belong to the same minute."""
        failed = reason >= 0
        towers, calls = _sum_by_key(tower)
        f_towers, f_counts = _sum_by_key(tower[failed])
        t_failed = np.zeros(len(towers), np.int64)
        t_failed[np.searchsorted(towers, f_towers)] = f_counts
        hist_keys, hist_counts = _sum_by_key(tower * N_BUCKETS + bucket)
        regions, r_calls = _sum_by_key(region)
        _, r_lat = _sum_by_key(region, lat)
        rh_keys, rh_counts = _sum_by_key(region * N_BUCKETS + bucket)
        fkeys, fcounts = _sum_by_key(region[failed] * REASON_KEY + reason[failed])
        return cls(_i32(towers), _i32(calls), _i32(t_failed), _i32(hist_keys), _i32(hist_counts),
                   regions, r_calls, r_lat, rh_keys, rh_counts, fkeys, fcounts)  # fmt: skip


def merge(batches: Sequence[MinuteBatch]) -> MinuteBatch:
    """One batch equal to the sum of several (keeps memory per minute bounded)."""

    def cat(name: str) -> IntArray:
        return np.concatenate([getattr(b, name) for b in batches])

    towers, calls = _sum_by_key(cat("towers"), cat("calls"))
    _, failed = _sum_by_key(cat("towers"), cat("failed"))
    hk, hc = _sum_by_key(cat("hist_keys"), cat("hist_counts"))
    regions, r_calls = _sum_by_key(cat("regions"), cat("region_calls"))
    _, r_lat = _sum_by_key(cat("regions"), cat("region_latency_ms"))
    rhk, rhc = _sum_by_key(cat("region_hist_keys"), cat("region_hist_counts"))
    fk, fc = _sum_by_key(cat("fail_keys"), cat("fail_counts"))
    return MinuteBatch(_i32(towers), _i32(calls), _i32(failed), _i32(hk), _i32(hc), regions,
                       r_calls, r_lat, rhk, rhc, fk, fc)  # fmt: skip


def _i32(a: IntArray) -> IntArray:
    """A per-tower array kept as int32: half the memory of the hour's minutes (tower keys stay
    below 2**31 up to four million towers, counts per minute far below)."""
    out: IntArray = a.astype(np.int32)
    return out


REASON_KEY = 1 << 16  # reasons per region key: far more than any vocabulary


def _grow(arr: npt.NDArray[np.int64], shape: tuple[int, ...]) -> npt.NDArray[np.int64]:
    """arr zero-padded to at least shape (capacity doubles so growth is amortised)."""
    if all(a >= s for a, s in zip(arr.shape, shape, strict=True)):
        return arr
    new_shape = tuple(max(a, s, 2 * a) for a, s in zip(arr.shape, shape, strict=True))
    out = np.zeros(new_shape, np.int64)
    out[tuple(slice(0, a) for a in arr.shape)] = arr
    return out


class WindowSums:
    """Running sums over the minutes a window currently covers: per tower, calls and failures;
    per region, calls, latency sum, failures by reason and the latency histogram."""

    def __init__(self, label: str, slots: int) -> None:
        self.label = label
        self.slots = slots
        self.start: int | None = None
        self.calls = np.zeros(0, np.int64)
        self.failed = np.zeros(0, np.int64)
        self.region_calls = np.zeros(0, np.int64)
        self.region_latency_ms = np.zeros(0, np.int64)
        self.region_failed = np.zeros((0, 0), np.int64)
        self.region_hist = np.zeros(0, np.int64)

    def ensure(self, n_towers: int, n_regions: int, n_reasons: int) -> None:
        """Room for every tower, region and reason in the catalog."""
        self.calls = _grow(self.calls, (n_towers,))
        self.failed = _grow(self.failed, (n_towers,))
        self.region_calls = _grow(self.region_calls, (n_regions,))
        self.region_latency_ms = _grow(self.region_latency_ms, (n_regions,))
        self.region_failed = _grow(self.region_failed, (n_regions, n_reasons))
        self.region_hist = _grow(self.region_hist, (n_regions * N_BUCKETS,))

    def apply(self, batch: MinuteBatch, sign: int) -> None:
        """Add (sign 1) or remove (sign -1) a batch; keys are unique so fancy indexing is exact."""
        self.calls[batch.towers] += sign * batch.calls
        self.failed[batch.towers] += sign * batch.failed
        self.region_calls[batch.regions] += sign * batch.region_calls
        self.region_latency_ms[batch.regions] += sign * batch.region_latency_ms
        self.region_hist[batch.region_hist_keys] += sign * batch.region_hist_counts
        self.region_failed[batch.fail_keys // REASON_KEY, batch.fail_keys % REASON_KEY] += (
            sign * batch.fail_counts
        )


@dataclass
class TowerResult:
    """One tower's values over a window."""

    tower: str
    calls: int
    failed: int
    failure_ratio: float
    p95_ms: float
    region: str = ""


@dataclass
class RegionResult:
    """Every region's values over a window, as arrays in catalog order."""

    names: list[str] = field(default_factory=list)
    calls: IntArray = field(default_factory=lambda: np.zeros(0, np.int64))
    failed: IntArray = field(default_factory=lambda: np.zeros(0, np.int64))
    p95_ms: FloatArray = field(default_factory=lambda: np.zeros(0, np.float64))  # NaN: no calls
    reason_failed: IntArray = field(default_factory=lambda: np.zeros((0, 0), np.int64))


@dataclass
class WindowResult:
    """Everything published for one window; per-tower values for the published towers only."""

    label: str
    calls: int
    failed: int
    latency_sum_ms: int
    p95_ms: float  # NaN when no calls
    reason_failed: dict[str, int]
    tower_names: list[str] = field(default_factory=list)  # published towers, catalog order
    tower_regions: list[str] = field(default_factory=list)  # their regions
    tower_calls_n: IntArray = field(default_factory=lambda: np.zeros(0, np.int64))
    tower_failed_n: IntArray = field(default_factory=lambda: np.zeros(0, np.int64))
    active: IntArray = field(default_factory=lambda: np.zeros(0, np.int64))  # those with calls
    active_p95_ms: FloatArray = field(default_factory=lambda: np.zeros(0, np.float64))
    regions: RegionResult = field(default_factory=RegionResult)

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
        """Failure ratio of each published tower with calls (same order as active)."""
        out: FloatArray = self.tower_failed_n[self.active] / self.tower_calls_n[self.active]
        return out

    @cached_property
    def towers(self) -> list[TowerResult]:
        """Published towers with calls in the window, catalog order."""
        return [
            TowerResult(self.tower_names[t], c, f, r, p, self.tower_regions[t])
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
        """Every published tower: (calls, failed calls)."""
        return dict(
            zip(
                self.tower_names,
                zip(self.tower_calls_n.tolist(), self.tower_failed_n.tolist(), strict=True),
                strict=True,
            )
        )


def _ranges(lo: IntArray, hi: IntArray) -> tuple[IntArray, IntArray]:
    """Concatenated positions of the ranges [lo[i], hi[i]) and, for each, its range number i."""
    lengths = hi - lo
    total = int(lengths.sum())
    which = np.repeat(np.arange(len(lo), dtype=np.int64), lengths)
    starts = np.cumsum(lengths) - lengths
    pos = np.arange(total, dtype=np.int64) - np.repeat(starts - lo, lengths)
    return pos, which


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

    def _ensure(self) -> None:
        c = self.catalog
        for ws in self.sums:
            ws.ensure(len(c.towers), len(c.regions), len(c.reasons))

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
        self._ensure()
        order = np.argsort(minute, kind="stable")
        minute = minute[order]
        tower, reason, lat = rows.tower[order], rows.reason[order], rows.latency_ms[order]
        region = self.catalog.region_of[tower]
        bucket = bucket_of(lat)
        cuts = np.flatnonzero(np.diff(minute)) + 1
        for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(minute)], strict=True):
            m = int(minute[lo])
            batch = MinuteBatch.of(
                tower[lo:hi], region[lo:hi], reason[lo:hi], bucket[lo:hi], lat[lo:hi]
            )
            kept = self.minutes.setdefault(m, [])
            kept.append(batch)
            if len(kept) >= MERGE_AFTER:
                kept[:] = [merge(kept)]
            for ws in self.sums:
                if ws.start is not None and ws.start <= m <= self.current:
                    ws.apply(batch, 1)
        return too_old

    def window(self, label: str) -> WindowSums:
        """The running sums of a window, sized to the catalog."""
        self._ensure()
        return next(w for w in self.sums if w.label == label)

    def tower_hist(self, ws: WindowSums, towers: IntArray) -> IntArray:
        """Latency histograms (len(towers) x N_BUCKETS) of some towers over a window, from the
        minutes' sparse keys: cost follows those towers' calls, not the number of towers."""
        out = np.zeros((len(towers), N_BUCKETS), np.int64)
        if not len(towers) or ws.start is None or self.current is None:
            return out
        lo_keys, hi_keys = towers * N_BUCKETS, (towers + 1) * N_BUCKETS
        keys: list[IntArray] = []
        counts: list[IntArray] = []
        for minute, batches in self.minutes.items():
            if not ws.start <= minute <= self.current:
                continue
            for b in batches:
                lo = np.searchsorted(b.hist_keys, lo_keys)
                hi = np.searchsorted(b.hist_keys, hi_keys)
                if not (hi > lo).any():
                    continue
                pos, which = _ranges(lo, hi)
                keys.append(which * N_BUCKETS + b.hist_keys[pos] % N_BUCKETS)
                counts.append(b.hist_counts[pos])
        if keys:
            flat = np.bincount(
                np.concatenate(keys), weights=np.concatenate(counts), minlength=out.size
            )
            out = flat.astype(np.int64).reshape(out.shape)
        return out

    def result(self, label: str, publish: IntArray) -> WindowResult:
        """The window's totals, per reason, per region, and for the towers in publish (sorted
        catalog indices); cost O(regions x buckets + published towers' calls)."""
        ws = self.window(label)
        c = self.catalog
        n_g, n_r = len(c.regions), len(c.reasons)
        r_calls = ws.region_calls[:n_g]
        r_failed = ws.region_failed[:n_g, :n_r]
        r_hist = ws.region_hist[: n_g * N_BUCKETS].reshape(n_g, N_BUCKETS)
        reason_failed = r_failed.sum(axis=0)
        calls = ws.calls[publish]
        active = np.flatnonzero(calls)
        p95_t = quantiles_by_row(self.tower_hist(ws, publish[active]))
        regions = RegionResult(
            names=list(c.regions),
            calls=r_calls.copy(),
            failed=r_failed.sum(axis=1),
            p95_ms=quantiles_by_row(r_hist),
            reason_failed=r_failed.copy(),
        )
        return WindowResult(
            label=label,
            calls=int(r_calls.sum()),
            failed=int(r_failed.sum()),
            latency_sum_ms=int(ws.region_latency_ms[:n_g].sum()),
            p95_ms=quantile_from_counts(r_hist.sum(axis=0)),
            reason_failed={r: int(reason_failed[i]) for i, r in enumerate(c.reasons)},
            tower_names=[c.towers[t] for t in publish.tolist()],
            tower_regions=[c.regions[g] for g in c.region_of[publish].tolist()],
            tower_calls_n=calls,
            tower_failed_n=ws.failed[publish],
            active=active,
            active_p95_ms=p95_t,
            regions=regions,
        )
