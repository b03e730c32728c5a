"""Generator options: one name across YAML, ECM_* environment and flags, validated at load."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from ecm_common.config import StrictModel
from ecm_common.domain import REASONS
from ecm_common.errors import ConfigError
from ecm_common.logs import LogFormat, LogLevel
from generator.model import (
    DEFAULT_FAILED_LATENCY_MS,
    DEFAULT_REASON_WEIGHTS,
    ModelParams,
    zipf_weights,
)
from generator.writer import WRITE_TIMEOUT_S

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_TOWER = re.compile(r"^TOWER_([1-9]\d*)$")


def parse_duration(value: str | float | int) -> float:
    """Seconds from a number or a text like 90, 30s, 10m, 1h30m, 7d; ValueError otherwise."""
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = value.strip().replace(" ", "")
        if re.fullmatch(r"\d+(\.\d+)?", text):
            seconds = float(text)
        elif text and _DURATION.sub("", text) == "":
            seconds = sum(float(n) * _UNIT_S[u] for n, u in _DURATION.findall(text))
        else:
            raise ValueError(f"expected a duration like 90, 30s, 10m, 1h30m or 7d, got {value!r}")
    if seconds < 0:
        raise ValueError(f"duration must not be negative, got {value!r}")
    return seconds


def parse_weights(value: Any, what: str) -> dict[str, float]:
    """A mapping NAME -> weight from a mapping or a text like 'A=2,B=3'."""
    if isinstance(value, str):
        out: dict[str, float] = {}
        for part in filter(None, (p.strip() for p in value.split(","))):
            name, sep, num = part.partition("=")
            if not sep:
                raise ValueError(f"expected {what} as NAME=WEIGHT,..., got {part!r}")
            try:
                out[name.strip()] = float(num)
            except ValueError:
                raise ValueError(f"weight of {name.strip()} is not a number: {num!r}") from None
        return out
    if isinstance(value, dict):
        return {str(k): float(v) for k, v in value.items()}
    raise ValueError(f"expected {what} as a mapping or NAME=WEIGHT,... text")


def reason_weights(value: Any) -> dict[str, float]:
    """Validated failure-reason weights: known reasons, none negative, at least one positive."""
    weights = parse_weights(value, "reason weights")
    for name, w in weights.items():
        if name not in REASONS:
            raise ValueError(f"unknown failure reason {name!r} (known: {', '.join(REASONS)})")
        if w < 0:
            raise ValueError(f"weight of {name} must not be negative")
    if sum(weights.values()) <= 0:
        raise ValueError("at least one reason weight must be positive")
    return weights


def tower_index(name: str, n_towers: int) -> int:
    """0-based index of TOWER_k; ValueError when the name is not one of the n towers."""
    m = _TOWER.match(name)
    if not m or int(m.group(1)) > n_towers:
        raise ValueError(f"unknown tower {name!r} (towers are TOWER_1..TOWER_{n_towers})")
    return int(m.group(1)) - 1


def default_state_dir() -> Path:
    """Default home of the spool and dead-letter file: $XDG_STATE_HOME/ecm-generator."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "ecm-generator"


class GeneratorSettings(StrictModel):
    """Every generator option (see docs/scenarios.md and the README for meanings)."""

    database_url: str | None = None
    rate: float = Field(5.0, gt=0, description="mean calls per second (Poisson arrivals)")
    # Baseline share of failed calls: sessions succeed 99.5% of the time, inside the 98% target.
    failure_prob: float = Field(0.005, ge=0, le=1)
    count: int | None = Field(None, ge=0)
    duration: float | None = None
    towers: int = Field(50, ge=1, le=100_000)
    tower_skew: float = Field(0.8, ge=0, le=5)
    tower_weights: dict[str, float] | None = None
    reason_weights: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_REASON_WEIGHTS))
    latency_median_ms: float = Field(1800.0, gt=0)
    latency_sigma: float = Field(0.35, ge=0, le=3)
    idle_share: float = Field(0.25, ge=0, le=1)
    idle_median_ms: float = Field(2800.0, gt=0)
    idle_sigma: float = Field(0.25, ge=0, le=3)
    failed_latency_ms: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_FAILED_LATENCY_MS)
    )
    core_timeout_ms: float = Field(10_000.0, gt=0)
    seed: int | None = Field(None, ge=0)
    start: datetime | None = None
    scenario: str | None = None
    speed: float = Field(1.0, gt=0)
    batch_size: int = Field(5000, ge=1, le=1_000_000)
    flush_interval: float = Field(1.0, gt=0)
    queue_size: int = Field(100_000, ge=1)
    spool_dir: str | None = None
    dead_letter_file: str | None = None
    max_retries: int = Field(5, ge=0)
    retry_base_delay: float = Field(0.2, ge=0)
    retry_max_delay: float = Field(5.0, ge=0)
    write_timeout: float = Field(WRITE_TIMEOUT_S, gt=0, le=3600)
    metrics_port: int | None = Field(None, ge=0, le=65535)
    metrics_listen_address: str = "0.0.0.0"
    log_level: LogLevel = "INFO"
    log_format: LogFormat = "text"

    @field_validator("duration", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> Any:
        return None if v is None else parse_duration(v)

    @field_validator("reason_weights", mode="before")
    @classmethod
    def _reasons(cls, v: Any) -> Any:
        return reason_weights(v)

    @field_validator("failed_latency_ms", mode="before")
    @classmethod
    def _failed_latency(cls, v: Any) -> Any:
        values = parse_weights(v, "failed-call latencies")
        for name, ms in values.items():
            if name not in REASONS:
                raise ValueError(f"unknown failure reason {name!r} (known: {', '.join(REASONS)})")
            if ms < 0:
                raise ValueError(f"latency of {name} must not be negative")
        return {**DEFAULT_FAILED_LATENCY_MS, **values}

    @field_validator("tower_weights", mode="before")
    @classmethod
    def _tower_weights(cls, v: Any) -> Any:
        if v is None:
            return None
        weights = parse_weights(v, "tower weights")
        for name, w in weights.items():
            if not _TOWER.match(name):
                raise ValueError(f"tower names are TOWER_<n>, got {name!r}")
            if w <= 0:
                raise ValueError(f"weight of {name} must be positive")
        return weights

    @model_validator(mode="after")
    def _towers_known(self) -> GeneratorSettings:
        for name in self.tower_weights or {}:
            tower_index(name, self.towers)
        return self


@dataclass(frozen=True)
class Paths:
    """Where batches that cannot be written yet, or ever, are kept."""

    spool_dir: Path
    dead_letter_file: Path


def model_params(s: GeneratorSettings) -> ModelParams:
    """The call model's parameters from validated settings."""
    weights = list(zipf_weights(s.towers, s.tower_skew))
    for name, w in (s.tower_weights or {}).items():
        weights[tower_index(name, s.towers)] = w
    return ModelParams(
        rate=s.rate,
        failure_prob=s.failure_prob,
        tower_weights=tuple(weights),
        reason_weights=dict(s.reason_weights),
        latency_median_ms=s.latency_median_ms,
        latency_sigma=s.latency_sigma,
        idle_share=s.idle_share,
        idle_median_ms=s.idle_median_ms,
        idle_sigma=s.idle_sigma,
        failed_latency_ms=dict(s.failed_latency_ms),
        core_timeout_ms=s.core_timeout_ms,
    )


def paths(s: GeneratorSettings) -> Paths:
    """The spool directory and dead-letter file, defaulting under the state directory."""
    spool = Path(s.spool_dir) if s.spool_dir else default_state_dir() / "spool"
    dead = (
        Path(s.dead_letter_file)
        if s.dead_letter_file
        else default_state_dir() / "dead-letter.jsonl"
    )
    return Paths(spool, dead)


def parse_time(value: str, now: datetime) -> datetime:
    """A point in time: 'now', a duration ago ('7d', '90m'), or an ISO 8601 timestamp (UTC)."""
    text = value.strip()
    if text == "now":
        return now
    try:
        return now - timedelta(seconds=parse_duration(text))
    except ValueError:
        pass
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"expected 'now', a duration ago (7d, 90m) or an ISO timestamp, got {value!r}"
        ) from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)
