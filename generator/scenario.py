"""Incident scenarios: YAML phases over time, validated at load, compiled into a model Timeline.

The file format is documented in docs/scenarios.md.
"""

from __future__ import annotations

import bisect
import logging
import math
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import Field, ValidationError, field_validator, model_validator

from ecm_common.config import StrictModel, describe_error, read_yaml, shorten, validate
from ecm_common.domain import REASONS, tower_name
from ecm_common.durations import MAX_SECONDS, Seconds
from ecm_common.errors import ConfigError
from ecm_common.slo import DATA_ALERTS
from generator.config import MAX_TOWERS, reason_weights, tower_index
from generator.model import ModelParams, Timeline

log = logging.getLogger(__name__)

# Bounds on the work a scenario can cause: phases, and the timeline's segments x towers cells
# (each cell holds a failure probability, a reason mix and multipliers).
MAX_PHASES = 1000
MAX_TIMELINE_CELLS = 500_000
# Summed over phases, the segments each phase is active in (the timeline's inner loop), and the
# same weighted by the phase's towers (the elements that loop touches).
MAX_PHASE_SEGMENTS = 20_000
MAX_PHASE_WORK = 5_000_000
MAX_MULTIPLIER = 100.0

# Alerts a scenario may claim to raise: those computed from the calls.
ALERTS = DATA_ALERTS
# Generator options a scenario's baseline may set (the user's explicit options still win).
BASELINE_KEYS = (
    "rate",
    "failure_prob",
    "towers",
    "tower_skew",
    "tower_weights",
    "reason_weights",
    "latency_median_ms",
    "latency_sigma",
    "idle_share",
    "idle_median_ms",
    "idle_sigma",
    "failed_latency_ms",
    "core_timeout_ms",
)


class Targets(StrictModel):
    """Which towers a phase hits: a list, all of them, or a share picked by the phase name."""

    towers: list[str] | None = Field(None, max_length=MAX_TOWERS)
    all: bool = False
    share: float | None = Field(None, gt=0, le=1)
    # Phases picking a share with the same group get nested sets (a rollout in waves).
    group: str | None = Field(None, max_length=200)

    @model_validator(mode="after")
    def _exactly_one(self) -> Targets:
        given = sum([self.towers is not None, self.all, self.share is not None])
        if given != 1:
            raise ValueError("give exactly one of 'towers', 'all: true' or 'share'")
        if self.towers is not None and not self.towers:
            raise ValueError("'towers' must list at least one tower")
        if self.group is not None and self.share is None:
            raise ValueError("'group' only applies with 'share'")
        return self


class Effects(StrictModel):
    """What a phase changes on its towers."""

    failure_prob: float | None = Field(None, ge=0, le=1)
    reason: str | None = Field(None, max_length=100)
    reasons: dict[str, float] | None = None
    latency_multiplier: float = Field(1.0, gt=0, le=MAX_MULTIPLIER)
    latency_sigma: float | None = Field(None, ge=0, le=3)
    rate_multiplier: float = Field(1.0, gt=0, le=MAX_MULTIPLIER)

    @field_validator("reason")
    @classmethod
    def _reason(cls, v: str | None) -> str | None:
        if v is not None and v not in REASONS:
            raise ValueError(
                f"unknown failure reason {shorten(v, 40)} (known: {', '.join(REASONS)})"
            )
        return v

    @field_validator("reasons", mode="before")
    @classmethod
    def _reasons(cls, v: Any) -> Any:
        return None if v is None else reason_weights(v)

    @model_validator(mode="after")
    def _one_reason_form(self) -> Effects:
        if self.reason is not None and self.reasons is not None:
            raise ValueError("give 'reason' or 'reasons', not both")
        return self

    def reason_probs(self) -> npt.NDArray[np.float64] | None:
        """The phase's failure-reason mix in REASONS order, or None to keep the baseline mix."""
        if self.reason is not None:
            return np.array([1.0 if r == self.reason else 0.0 for r in REASONS])
        if self.reasons is not None:
            w = np.array([self.reasons.get(r, 0.0) for r in REASONS])
            return np.asarray(w / w.sum())
        return None


class Phase(StrictModel):
    """One incident (or quiet stretch): when, where, what."""

    name: str = Field(min_length=1, max_length=200)
    start: Seconds = Field(0.0, ge=0)
    duration: Seconds = Field(gt=0)
    targets: Targets = Field(default_factory=lambda: Targets.model_validate({"all": True}))
    effects: Effects = Field(default_factory=lambda: Effects.model_validate({}))

    @property
    def end(self) -> float:
        """Model time the phase stops."""
        return self.start + self.duration


class ScenarioFile(StrictModel):
    """Top level of a scenario file (phases are validated one by one to name the bad one)."""

    name: str = Field(min_length=1, max_length=200)
    description: str = Field(min_length=1, max_length=10_000)
    alerts: list[str] = Field(default_factory=list, max_length=len(ALERTS))
    duration: Seconds | None = Field(None, gt=0)
    baseline: dict[str, Any] = Field(default_factory=dict)
    phases: list[dict[str, Any]] = Field(default_factory=list, max_length=MAX_PHASES)

    @model_validator(mode="after")
    def _has_length(self) -> ScenarioFile:
        if not self.phases and self.duration is None:
            raise ValueError("a scenario without phases needs a 'duration'")
        return self

    @field_validator("alerts")
    @classmethod
    def _alerts(cls, v: list[str]) -> list[str]:
        for a in v:
            if a not in ALERTS:
                raise ValueError(f"unknown alert {shorten(a, 40)} (known: {', '.join(ALERTS)})")
        return v

    @field_validator("baseline")
    @classmethod
    def _baseline(cls, v: dict[str, Any]) -> dict[str, Any]:
        for key in v:
            if key not in BASELINE_KEYS:
                raise ValueError(
                    f"unknown baseline key {shorten(key, 40)} (allowed: {', '.join(BASELINE_KEYS)})"
                )
        return v


@dataclass(frozen=True)
class Scenario:
    """A validated scenario, its phases and the towers each phase targets (0-based indexes)."""

    path: str
    name: str
    description: str
    alerts: tuple[str, ...]
    duration: float
    baseline: dict[str, Any]
    phases: tuple[Phase, ...]
    targets: tuple[tuple[int, ...], ...]

    def target_names(self, phase: int) -> list[str]:
        """Tower ids a phase hits."""
        return [tower_name(i + 1) for i in self.targets[phase]]

    def timeline(self, params: ModelParams) -> Timeline:
        """Per segment between phase boundaries and per tower: rates, failures, latency."""
        t = params.n_towers
        if any(max(tg, default=-1) >= t for tg in self.targets):
            raise ConfigError(f"{self.path}: scenario targets more towers than the {t} in use")
        r0 = params.reason_probs()
        breaks = sorted({0.0} | {p.start for p in self.phases} | {p.end for p in self.phases})
        s = len(breaks)
        rate_mult = np.ones((s, t))
        fail_p = np.empty((s, t))
        cdf = np.empty((s, t, len(REASONS)))
        lat_mult = np.ones((s, t))
        sigma = np.full((s, t), params.latency_sigma)
        # Phases active in each segment, found once per phase (not once per segment and phase).
        active_in: list[list[tuple[Phase, npt.NDArray[np.int64]]]] = [[] for _ in breaks]
        for ph, towers in zip(self.phases, self.targets, strict=True):
            idx = np.array(towers, dtype=np.int64)
            for k in range(
                bisect.bisect_left(breaks, ph.start), bisect.bisect_left(breaks, ph.end)
            ):
                active_in[k].append((ph, idx))
        for k in range(s):
            base_mix = np.tile(r0, (t, 1))
            none_fires = np.full(t, 1.0 - params.failure_prob)
            active = active_in[k]
            for ph, tg in active:
                e = ph.effects
                rate_mult[k, tg] *= e.rate_multiplier
                lat_mult[k, tg] *= e.latency_multiplier
                if e.latency_sigma is not None:
                    sigma[k, tg] = np.maximum(sigma[k, tg], e.latency_sigma)
                mix = e.reason_probs()
                if e.failure_prob is None and mix is not None:
                    base_mix[tg] = mix
            # Each phase with a failure_prob is an independent cause of failure on its towers;
            # the reason of a failed call is drawn in proportion to each cause's probability.
            weighted = params.failure_prob * base_mix
            for ph, tg in active:
                e = ph.effects
                if e.failure_prob is None:
                    continue
                mix = e.reason_probs()
                none_fires[tg] *= 1.0 - e.failure_prob
                weighted[tg] += e.failure_prob * (r0 if mix is None else mix)
            total = weighted.sum(axis=1, keepdims=True)
            mix_all = np.where(total > 0, weighted / np.where(total > 0, total, 1.0), r0)
            fail_p[k] = 1.0 - none_fires
            cdf[k] = np.cumsum(mix_all, axis=1)
        return Timeline(
            breaks=np.array(breaks),
            rate_mult=rate_mult,
            fail_p=fail_p,
            reason_cdf=cdf,
            lat_mult=lat_mult,
            sigma=sigma,
        )


def read_scenario_file(path: str | Path) -> ScenarioFile:
    """Parse the top level of a scenario file; ConfigError naming the file and field."""
    data = read_yaml(path, "scenario file")
    return validate(ScenarioFile, data, f"scenario {path}")


def pick_share(key: str, share: float, n_towers: int) -> tuple[int, ...]:
    """A share of the towers fixed by key alone; a larger share of one key holds the smaller."""
    rng = np.random.default_rng(zlib.crc32(key.encode()))
    k = max(1, math.ceil(share * n_towers))
    return tuple(sorted(int(i) for i in rng.permutation(n_towers)[:k]))


def check_work(
    path: str, phases: list[Phase], targets: list[tuple[int, ...]], n_towers: int
) -> None:
    """ConfigError when the timeline would be too large to build in bounded time and memory."""
    breaks = sorted({0.0} | {p.start for p in phases} | {p.end for p in phases})
    if len(breaks) * n_towers > MAX_TIMELINE_CELLS:
        raise ConfigError(
            f"scenario {path}: {len(breaks)} phase boundaries x {n_towers} towers is more than "
            f"{MAX_TIMELINE_CELLS} timeline cells; use fewer phases or towers"
        )
    spans = [
        bisect.bisect_left(breaks, p.end) - bisect.bisect_left(breaks, p.start) for p in phases
    ]
    active = sum(spans)
    work = sum(n * len(tg) for n, tg in zip(spans, targets, strict=True))
    if active > MAX_PHASE_SEGMENTS or work > MAX_PHASE_WORK:
        raise ConfigError(
            f"scenario {path}: phases overlap too much ({active} phase segments over {work} "
            f"tower segments, at most {MAX_PHASE_SEGMENTS} and {MAX_PHASE_WORK}); use fewer or "
            "shorter phases or fewer towers"
        )


def load_scenario(path: str | Path, *, n_towers: int) -> Scenario:
    """Read and validate a scenario for n towers; every error names the phase and the field."""
    top = read_scenario_file(path)
    phases: list[Phase] = []
    targets: list[tuple[int, ...]] = []
    for i, raw in enumerate(top.phases, start=1):
        name = raw.get("name") if isinstance(raw, dict) else None
        label = f"phase {shorten(name, 40)}" if isinstance(name, str) else f"phase #{i}"
        try:
            ph = Phase.model_validate(raw)
        except ValidationError as exc:
            raise ConfigError(describe_error(exc, f"scenario {path}: {label}")) from None
        tg = ph.targets
        if tg.all:
            idx = tuple(range(n_towers))
        elif tg.share is not None:
            idx = pick_share(tg.group or ph.name, tg.share, n_towers)
        else:
            try:
                idx = tuple(sorted({tower_index(name, n_towers) for name in tg.towers or []}))
            except ValueError as exc:
                raise ConfigError(
                    f"scenario {path}: {label}: key 'targets.towers': {exc}"
                ) from None
        phases.append(ph)
        targets.append(idx)
    names = [p.name for p in phases]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        shown = shorten(dup[:5])
        raise ConfigError(f"scenario {path}: phase names must be unique, repeated: {shown}")
    duration = top.duration if top.duration is not None else max(p.end for p in phases)
    if duration > MAX_SECONDS:
        raise ConfigError(f"scenario {path}: ends after more than ten years")
    check_work(str(path), phases, targets, n_towers)
    for p in phases:
        if p.end > duration:
            raise ConfigError(
                f"scenario {path}: phase {p.name!r}: key 'duration': ends at {p.end:g}s, after the "
                f"scenario's duration of {duration:g}s"
            )
    return Scenario(
        path=str(path),
        name=top.name,
        description=top.description,
        alerts=tuple(top.alerts),
        duration=duration,
        baseline=dict(top.baseline),
        phases=tuple(phases),
        targets=tuple(targets),
    )
