"""The call model: Poisson arrivals over weighted towers, failures by reason, log-normal latency.

Everything is drawn for a whole batch at once with numpy; no Python loop runs per call.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from ecm_common.domain import REASONS
from generator.batch import NO_REASON, STATUS_FAILED, STATUS_SUCCESS, CallBatch

log = logging.getLogger(__name__)

CORE_TIMEOUT_INDEX = REASONS.index("CORE_TIMEOUT")

# Failure mix when none is given: core and IMS faults dominate real outages (docs/DOMAIN.md).
DEFAULT_REASON_WEIGHTS: dict[str, float] = {
    "IMS_UNREACHABLE": 3.0,
    "CORE_TIMEOUT": 3.0,
    "PSAP_BUSY": 1.5,
    "PSAP_UNAVAILABLE": 1.0,
    "EMERGENCY_REG_REQUIRED": 0.5,
    "RADIO_LINK_FAILURE": 1.0,
}
# Median time until a failed call ends, per reason (ms): a 503 or a 380 comes back at once, a busy
# answering point after ringing; CORE_TIMEOUT lands exactly on the timer (core_timeout_ms).
DEFAULT_FAILED_LATENCY_MS: dict[str, float] = {
    "IMS_UNREACHABLE": 300.0,
    "CORE_TIMEOUT": 10_000.0,
    "PSAP_BUSY": 2500.0,
    "PSAP_UNAVAILABLE": 2000.0,
    "EMERGENCY_REG_REQUIRED": 400.0,
    "RADIO_LINK_FAILURE": 1500.0,
}
FAILED_LATENCY_SIGMA = 0.3


@dataclass(frozen=True)
class ModelParams:
    """Baseline traffic: rate (calls/s), towers and their weights, failures, latency (ms)."""

    rate: float = 5.0
    failure_prob: float = 0.005
    tower_weights: tuple[float, ...] = (1.0,)
    reason_weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_REASON_WEIGHTS))
    # Connected phones: log-normal, median 1.8 s, sigma 0.35 (p95 ~3.2 s); idle phones: median
    # 2.8 s, 20-40% of calls (docs/DOMAIN.md), narrower ("3-3.5 s") so that the mix's p95 (~3.6 s)
    # stays under the 4 s warning line.
    latency_median_ms: float = 1800.0
    latency_sigma: float = 0.35
    idle_share: float = 0.25
    idle_median_ms: float = 2800.0
    idle_sigma: float = 0.25
    failed_latency_ms: dict[str, float] = field(
        default_factory=lambda: dict(DEFAULT_FAILED_LATENCY_MS)
    )
    core_timeout_ms: float = 10_000.0
    # Towers are split into this many regions REGION_1..R (the towers table's region column).
    regions: int = 1

    @property
    def n_towers(self) -> int:
        """How many towers carry traffic."""
        return len(self.tower_weights)

    def tower_regions(self) -> tuple[str, ...]:
        """The region of each tower, TOWER_1 first (see region_of)."""
        return tuple(region_of(k, self.n_towers, self.regions) for k in range(1, self.n_towers + 1))

    def reason_probs(self) -> npt.NDArray[np.float64]:
        """Baseline reason probabilities in REASONS order."""
        w = np.array([self.reason_weights.get(r, 0.0) for r in REASONS], dtype=np.float64)
        return np.asarray(w / w.sum(), dtype=np.float64)


def region_of(tower: int, n_towers: int, regions: int) -> str:
    """Region of TOWER_k (1-based) among n towers: R contiguous blocks of near-equal size, so
    towers numbered close together (as neighbours usually are) share a region."""
    r = min(max(regions, 1), n_towers)
    return f"REGION_{(tower - 1) * r // n_towers + 1}"


def zipf_weights(n: int, skew: float) -> tuple[float, ...]:
    """Zipf-like traffic weights 1/k^skew for towers 1..n (skew 0: all equally busy)."""
    k = np.arange(1, n + 1, dtype=np.float64)
    return tuple(float(x) for x in 1.0 / k**skew)


@dataclass(frozen=True)
class Timeline:
    """Piecewise-constant traffic: segment k covers model time [breaks[k], breaks[k+1]).

    Per segment and tower: ``rate_mult`` (S, T), ``fail_p`` (S, T), ``reason_cdf`` (S, T, R),
    ``lat_mult`` (S, T), ``sigma`` (S, T). The last segment lasts for ever.
    """

    breaks: npt.NDArray[np.float64]
    rate_mult: npt.NDArray[np.float64]
    fail_p: npt.NDArray[np.float64]
    reason_cdf: npt.NDArray[np.float64]
    lat_mult: npt.NDArray[np.float64]
    sigma: npt.NDArray[np.float64]


def baseline_timeline(params: ModelParams) -> Timeline:
    """One segment of baseline traffic."""
    t = params.n_towers
    cdf = np.cumsum(params.reason_probs())
    return Timeline(
        breaks=np.zeros(1),
        rate_mult=np.ones((1, t)),
        fail_p=np.full((1, t), params.failure_prob),
        reason_cdf=np.broadcast_to(cdf, (1, t, len(REASONS))).copy(),
        lat_mult=np.ones((1, t)),
        sigma=np.full((1, t), params.latency_sigma),
    )


class CallModel:
    """Draws batches of calls; same params, timeline, origin and rng state give the same batch."""

    def __init__(
        self,
        params: ModelParams,
        timeline: Timeline | None = None,
        *,
        origin_us: int,
        speed: float = 1.0,
    ) -> None:
        """origin_us: wall time of model time 0; speed: model seconds per wall second."""
        self.params = params
        self.timeline = timeline or baseline_timeline(params)
        self.origin_us = origin_us
        self.speed = speed
        w = np.asarray(params.tower_weights, dtype=np.float64)
        w = w / w.sum()  # rate is the total over all towers at multiplier 1
        tl = self.timeline
        weighted = tl.rate_mult * w[None, :]
        self._seg_rate = params.rate * weighted.sum(axis=1)
        self._tower_cdf = np.cumsum(weighted / weighted.sum(axis=1, keepdims=True), axis=1)
        span = np.diff(tl.breaks)
        # Cumulative expected calls at each break: inverting it turns unit-rate arrivals into
        # arrivals at the piecewise-constant rate (time rescaling).
        self._cum = np.concatenate([[0.0], np.cumsum(span * self._seg_rate[:-1])])
        self._fail_ms = np.array(
            [params.failed_latency_ms.get(r, DEFAULT_FAILED_LATENCY_MS[r]) for r in REASONS]
        )

    def expected_calls(self, t0: float, t1: float) -> float:
        """Expected number of calls between model times t0 and t1."""
        return float(self._cum_at(np.array([t1]))[0] - self._cum_at(np.array([t0]))[0])

    def _cum_at(self, t: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        k = np.searchsorted(self.timeline.breaks, t, side="right") - 1
        k = np.clip(k, 0, None)
        return np.asarray(self._cum[k] + (t - self.timeline.breaks[k]) * self._seg_rate[k])

    def _invert(self, cum: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        k = np.searchsorted(self._cum, cum, side="right") - 1
        k = np.clip(k, 0, None)
        return np.asarray(self.timeline.breaks[k] + (cum - self._cum[k]) / self._seg_rate[k])

    def batch(self, n: int, start: float, rng: np.random.Generator) -> CallBatch:
        """The next n calls arriving after model time ``start`` (seconds), as columnar arrays.

        ``batch.offsets`` holds each call's model time; pass ``offsets[-1]`` as the next start.
        """
        p = self.params
        tl = self.timeline
        # A fixed set of draws per call, in a fixed order, keeps a seeded stream reproducible.
        gaps = rng.standard_exponential(n)
        u_tower = rng.random(n)
        u_fail = rng.random(n)
        u_reason = rng.random(n)
        u_idle = rng.random(n)
        z = rng.standard_normal(n)
        caller = rng.integers(0, 10**8, size=n, dtype=np.int64)
        rand_bits = rng.integers(0, 2**62, size=(n, 2), dtype=np.int64).astype(np.uint64)

        offsets = self._invert(self._cum_at(np.array([start]))[0] + np.cumsum(gaps))
        seg = np.clip(np.searchsorted(tl.breaks, offsets, side="right") - 1, 0, None)
        tower = np.empty(n, dtype=np.int32)
        for k in np.unique(seg):
            sel = seg == k
            tower[sel] = np.searchsorted(self._tower_cdf[k], u_tower[sel], side="right")
        np.minimum(tower, p.n_towers - 1, out=tower)

        failed = u_fail < tl.fail_p[seg, tower]
        reason = (u_reason[:, None] > tl.reason_cdf[seg, tower]).sum(axis=1)
        reason = np.minimum(reason, len(REASONS) - 1).astype(np.int8)

        mult = tl.lat_mult[seg, tower]
        idle = u_idle < p.idle_share
        median = np.where(idle, p.idle_median_ms, p.latency_median_ms)
        # A degradation widens both populations by the same amount.
        sigma = tl.sigma[seg, tower] + np.where(idle, p.idle_sigma - p.latency_sigma, 0.0)
        ok_ms = median * mult * np.exp(np.maximum(sigma, 0.0) * z)
        fail_ms = self._fail_ms[reason] * mult * np.exp(FAILED_LATENCY_SIGMA * z)
        fail_ms = np.where(reason == CORE_TIMEOUT_INDEX, p.core_timeout_ms, fail_ms)
        latency = np.rint(np.where(failed, fail_ms, ok_ms)).clip(0, 2**31 - 1).astype(np.int32)

        ts_us = self.origin_us + np.rint(offsets / self.speed * 1e6).astype(np.int64)
        return CallBatch(
            uuid=uuid7(ts_us, rand_bits),
            ts_us=ts_us,
            caller=caller,
            tower=tower,
            latency_ms=latency,
            status=np.where(failed, STATUS_FAILED, STATUS_SUCCESS).astype(np.uint8),
            reason=np.where(failed, reason, NO_REASON).astype(np.int8),
            n_towers=p.n_towers,
            offsets=offsets,
        )


def uuid7(ts_us: npt.NDArray[np.int64], rand_bits: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint8]:
    """UUIDv7 bytes (n, 16): 48-bit millisecond timestamp, version 7, variant 10, random bits."""
    ms = (ts_us // 1000).astype(np.uint64)
    hi = (ms << np.uint64(16)) | np.uint64(0x7000) | (rand_bits[:, 0] & np.uint64(0xFFF))
    lo = (np.uint64(0b10) << np.uint64(62)) | (rand_bits[:, 1] & np.uint64((1 << 62) - 1))
    out = np.empty((len(ts_us), 2), dtype=">u8")
    out[:, 0] = hi
    out[:, 1] = lo
    return out.view(np.uint8).reshape(len(ts_us), 16)
