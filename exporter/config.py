"""Exporter settings: one name per option across YAML keys, ECM_* variables and flags."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from ecm_common.config import StrictModel, load_config
from ecm_common.errors import ConfigError
from ecm_common.logs import LogFormat, LogLevel

DEFAULT_PORT = 9742
_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class Window:
    """A trailing window: its label as written by the user and its length in whole minutes."""

    label: str
    minutes: int


def parse_window(text: str) -> Window:
    """'10m' -> Window('10m', 10); windows are whole minutes because rollups are per minute."""
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"window {text!r} is not a duration like 5m, 10m or 1h")
    seconds = int(m.group(1)) * _UNIT_S[m.group(2)]
    if seconds <= 0 or seconds % 60:
        raise ValueError(f"window {text!r} must be a positive whole number of minutes")
    return Window(f"{m.group(1)}{m.group(2)}", seconds // 60)


class ExporterSettings(StrictModel):
    """Every exporter option; the same names are YAML keys, ECM_<NAME> variables and --flags."""

    database_url: str | None = None
    port: int = Field(DEFAULT_PORT, ge=0, le=65535)
    listen_address: str = "0.0.0.0"
    interval: float = Field(15.0, gt=0, le=86400)
    windows: tuple[str, ...] = ("5m", "10m", "1h")
    top_n: int = Field(5, ge=0, le=1000)
    min_calls: int = Field(20, ge=0)
    min_tower_calls: int = Field(20, ge=1)
    # Defaults from docs domain table: success ratio 99% (warn) / 95% (critical), at >= 20 calls.
    warn_failure_ratio: float = Field(0.01, ge=0, le=1)
    alert_failure_ratio: float = Field(0.05, ge=0, le=1)
    # Setup latency p95: over 4 s misses the setup-delay target (warn), over 8 s is critical.
    warn_p95_seconds: float = Field(4.0, gt=0)
    alert_p95_seconds: float = Field(8.0, gt=0)
    log_level: LogLevel = "INFO"
    log_format: LogFormat = "text"

    @field_validator("windows", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("windows")
    @classmethod
    def _check_windows(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("at least one window is needed")
        parsed = [parse_window(v) for v in value]
        minutes = [w.minutes for w in parsed]
        if len(set(minutes)) != len(minutes):
            raise ValueError("windows must all have different lengths")
        return tuple(w.label for w in parsed)

    @property
    def window_specs(self) -> tuple[Window, ...]:
        """The windows, parsed."""
        return tuple(parse_window(v) for v in self.windows)


def load_settings(
    *,
    file: str | Path | None = None,
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> ExporterSettings:
    """Load and validate the layers, then the checks that span several options."""
    settings = load_config(ExporterSettings, file=file, flags=flags, environ=environ)
    if settings.warn_failure_ratio > settings.alert_failure_ratio:
        raise ConfigError(
            f"configuration: warn_failure_ratio ({settings.warn_failure_ratio}) must not exceed "
            f"alert_failure_ratio ({settings.alert_failure_ratio})"
        )
    if settings.warn_p95_seconds > settings.alert_p95_seconds:
        raise ConfigError(
            f"configuration: warn_p95_seconds ({settings.warn_p95_seconds}) must not exceed "
            f"alert_p95_seconds ({settings.alert_p95_seconds})"
        )
    return settings
