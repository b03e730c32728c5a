"""Generator options: one name across YAML, ECM_* environment and flags, validated at load."""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, Field, field_validator, model_validator

from ecm_common.config import DatabaseUrl, StrictModel, shorten
from ecm_common.domain import REASONS
from ecm_common.durations import MAX_SECONDS, Seconds, format_duration, parse_duration
from ecm_common.errors import ConfigError
from ecm_common.logs import LogFormat, LogLevel
from generator.model import (
    DEFAULT_FAILED_LATENCY_MS,
    DEFAULT_REASON_WEIGHTS,
    ModelParams,
    zipf_weights,
)
from generator.pipeline import WriteOptions

_TOWER = re.compile(r"^TOWER_([1-9]\d{0,8})$")
MAX_TOWERS = 100_000
MAX_REGIONS = 1_000
# Ranges every option is checked against at load: finite, and far beyond any sensible use.
MAX_RATE = 100_000.0  # calls per second
MAX_SPEED = 10_000.0
MAX_LATENCY_MS = 600_000.0  # ten minutes: no call setup takes longer
MAX_SIGMA = 3.0
MAX_WEIGHT = 1e9
MAX_PATH = 4096


def _number(name: str, num: object) -> float:
    """A weight as a float; ValueError naming the entry (never a TypeError)."""
    if isinstance(num, bool) or not isinstance(num, int | float | str):
        raise ValueError(f"weight of {name[:40]} must be a number")
    try:
        value = float(num)
    except (ValueError, OverflowError):
        raise ValueError(f"weight of {name[:40]} is not a number: {shorten(num, 40)}") from None
    if not math.isfinite(value):
        raise ValueError(f"weight of {name[:40]} must be a finite number")
    return value


def parse_weights(value: Any, what: str) -> dict[str, float]:
    """A mapping NAME -> weight from a mapping or a text like 'A=2,B=3'."""
    if isinstance(value, str):
        out: dict[str, float] = {}
        for part in filter(None, (p.strip() for p in value.split(","))):
            name, sep, num = part.partition("=")
            if not sep:
                raise ValueError(f"expected {what} as NAME=WEIGHT,..., got {shorten(part, 40)}")
            out[name.strip()] = _number(name.strip(), num)
    elif isinstance(value, dict):
        out = {str(k): _number(str(k), v) for k, v in value.items()}
    else:
        raise ValueError(f"expected {what} as a mapping or NAME=WEIGHT,... text")
    if len(out) > MAX_TOWERS:
        raise ValueError(f"at most {MAX_TOWERS} {what}")
    for name, w in out.items():
        if abs(w) > MAX_WEIGHT:
            raise ValueError(f"weight of {name[:40]} must be at most {MAX_WEIGHT:g}")
    return out


def reason_weights(value: Any) -> dict[str, float]:
    """Validated failure-reason weights: known reasons, none negative, at least one positive."""
    weights = parse_weights(value, "reason weights")
    for name, w in weights.items():
        if name not in REASONS:
            raise ValueError(
                f"unknown failure reason {shorten(name, 40)} (known: {', '.join(REASONS)})"
            )
        if w < 0:
            raise ValueError(f"weight of {name} must not be negative")
    if sum(weights.values()) <= 0:
        raise ValueError("at least one reason weight must be positive")
    return weights


def tower_index(name: str, n_towers: int) -> int:
    """0-based index of TOWER_k; ValueError when the name is not one of the n towers."""
    m = _TOWER.match(name)
    if not m or int(m.group(1)) > n_towers:
        raise ValueError(
            f"unknown tower {shorten(name, 40)} (towers are TOWER_1..TOWER_{n_towers})"
        )
    return int(m.group(1)) - 1


def default_state_dir() -> Path:
    """Default home of the spool and dead-letter file: $XDG_STATE_HOME/ecm-generator."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "ecm-generator"


def _finite_time(value: datetime | None) -> datetime | None:
    """A timestamp within MAX_SECONDS of now, in UTC when no zone is given."""
    if value is None:
        return None
    t = value if value.tzinfo else value.replace(tzinfo=UTC)
    if abs((t - datetime.now(UTC)).total_seconds()) > MAX_SECONDS:
        raise ValueError(f"must be within {format_duration(MAX_SECONDS)} of now")
    return t


def _path(value: str | None) -> str | None:
    if value is not None and (not value or "\0" in value or len(value) > MAX_PATH):
        raise ValueError(f"expected a file path of 1 to {MAX_PATH} characters")
    return value


Path_ = Annotated[str | None, AfterValidator(_path)]


class GeneratorSettings(StrictModel):
    """Every generator option (see docs/scenarios.md and the README for meanings)."""

    flat: ClassVar[tuple[str, ...]] = ("write",)

    database_url: DatabaseUrl = None
    rate: float = Field(5.0, gt=0, le=MAX_RATE, description="mean calls per second (Poisson)")
    # Baseline share of failed calls: sessions succeed 99.5% of the time, inside the 98% target.
    failure_prob: float = Field(0.005, ge=0, le=1)
    count: int | None = Field(None, ge=0, le=10**12)
    duration: Seconds | None = None
    towers: int = Field(50, ge=1, le=MAX_TOWERS)
    tower_skew: float = Field(0.8, ge=0, le=5)
    tower_weights: dict[str, float] | None = None
    regions: int = Field(1, ge=1, le=MAX_REGIONS)
    reason_weights: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_REASON_WEIGHTS))
    latency_median_ms: float = Field(1800.0, gt=0, le=MAX_LATENCY_MS)
    latency_sigma: float = Field(0.35, ge=0, le=MAX_SIGMA)
    idle_share: float = Field(0.25, ge=0, le=1)
    idle_median_ms: float = Field(2800.0, gt=0, le=MAX_LATENCY_MS)
    idle_sigma: float = Field(0.25, ge=0, le=MAX_SIGMA)
    failed_latency_ms: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_FAILED_LATENCY_MS)
    )
    core_timeout_ms: float = Field(10_000.0, gt=0, le=MAX_LATENCY_MS)
    seed: int | None = Field(None, ge=0, lt=2**64)
    start: Annotated[datetime | None, AfterValidator(_finite_time)] = None
    scenario: Path_ = None
    speed: float = Field(1.0, gt=0, le=MAX_SPEED)
    spool_dir: Path_ = None
    dead_letter_file: Path_ = None
    # batch_size, flush_interval, queue_size, max_retries, retry delays, write_timeout.
    write: WriteOptions = Field(default_factory=WriteOptions)
    metrics_port: int | None = Field(None, ge=0, le=65535)
    metrics_listen_address: str = Field("0.0.0.0", pattern=r"^[A-Za-z0-9.:_%\[\]-]{1,255}$")
    log_level: LogLevel = "INFO"
    log_format: LogFormat = "text"

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
                raise ValueError(
                    f"unknown failure reason {shorten(name, 40)} (known: {', '.join(REASONS)})"
                )
            if not 0 <= ms <= MAX_LATENCY_MS:
                raise ValueError(f"latency of {name} must be 0 to {MAX_LATENCY_MS:g} ms")
        return {**DEFAULT_FAILED_LATENCY_MS, **values}

    @field_validator("tower_weights", mode="before")
    @classmethod
    def _tower_weights(cls, v: Any) -> Any:
        if v is None:
            return None
        weights = parse_weights(v, "tower weights")
        for name, w in weights.items():
            if not _TOWER.match(name):
                raise ValueError(f"tower names are TOWER_<n>, got {shorten(name, 40)}")
            if w <= 0:
                raise ValueError(f"weight of {name} must be positive")
        return weights

    @model_validator(mode="after")
    def _consistent(self) -> GeneratorSettings:
        for name in self.tower_weights or {}:
            tower_index(name, self.towers)
        return self


@dataclass(frozen=True)
class Paths:
    """Where batches that cannot be written yet, or ever, are kept."""

    spool_dir: Path
    dead_letter_file: Path


# Settings that are model parameters under the same name; tower weights are computed.
_MODEL_FIELDS = {f.name for f in fields(ModelParams)} - {"tower_weights"}


def model_params(s: GeneratorSettings) -> ModelParams:
    """The call model's parameters from validated settings."""
    weights = list(zipf_weights(s.towers, s.tower_skew))
    for name, w in (s.tower_weights or {}).items():
        weights[tower_index(name, s.towers)] = w
    return ModelParams(**s.model_dump(include=_MODEL_FIELDS), tower_weights=tuple(weights))


def paths(s: GeneratorSettings) -> Paths:
    """The spool directory and dead-letter file, defaulting under the state directory."""
    spool = Path(s.spool_dir) if s.spool_dir else default_state_dir() / "spool"
    dead = (
        Path(s.dead_letter_file)
        if s.dead_letter_file
        else default_state_dir() / "dead-letter.jsonl"
    )
    return Paths(spool, dead)


def check_paths(p: Paths) -> None:
    """ConfigError when the spool or dead-letter path cannot be created (a file in the way)."""
    for option, directory in (
        ("spool_dir", p.spool_dir),
        ("dead_letter_file", p.dead_letter_file.parent),
    ):
        for parent in (directory, *directory.parents):
            if parent.exists():
                if not parent.is_dir():
                    raise ConfigError(f"{option}: {parent} is not a directory")
                if not os.access(parent, os.W_OK | os.X_OK) and parent != directory:
                    raise ConfigError(f"{option}: cannot create {directory}: {parent} is read-only")
                break
    if p.dead_letter_file.is_dir():
        raise ConfigError(f"dead_letter_file: {p.dead_letter_file} is a directory")


def parse_time(value: str, now: datetime, option: str) -> datetime:
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
            f"{option}: expected 'now', a duration ago (7d, 90m) or an ISO timestamp, "
            f"got {shorten(value, 40)}"
        ) from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def backfill_times(start_text: str, end_text: str, now: datetime) -> tuple[datetime, datetime]:
    """--from and --to as times at most MAX_SECONDS ago (order and future: backfill's check)."""
    start = parse_time(start_text, now, "--from")
    end = parse_time(end_text, now, "--to")
    for option, t in (("--from", start), ("--to", end)):
        if (now - t).total_seconds() > MAX_SECONDS:
            raise ConfigError(f"{option}: at most {format_duration(MAX_SECONDS)} ago")
    return start, end
