"""Exporter settings: one name per option across YAML keys, ECM_* variables and flags."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, field_validator

from ecm_common.config import DatabaseUrl, StrictModel, load_config
from ecm_common.durations import Seconds, format_duration, parse_minutes
from ecm_common.logs import LogFormat, LogLevel
from exporter.assess import Thresholds
from exporter.budget import Budget

DEFAULT_PORT = 9742
# 2m: the short window that confirms the window alerts and lets them resolve soon after an
# incident (docs/DETECTION.md).
DEFAULT_WINDOWS = ("2m", "5m", "10m", "1h")
# Rollups are kept per minute for the longest window: a week bounds memory and start-up reads.
MAX_WINDOW_MINUTES = 7 * 24 * 60
MAX_WINDOWS = 16
MAX_INTERVAL_S = 3600.0


@dataclass(frozen=True)
class Window:
    """A trailing window: its label as written by the user and its length in whole minutes."""

    label: str
    minutes: int


def parse_window(text: str) -> Window:
    """'10m' -> Window('10m', 10); any duration of whole minutes up to a week (1h30m, 90m)."""
    label = text.strip().replace(" ", "") if isinstance(text, str) else text
    try:
        minutes = parse_minutes(label)
    except ValueError as exc:
        raise ValueError(f"window {label!r:.40}: {exc}") from None
    if minutes > MAX_WINDOW_MINUTES:
        raise ValueError(
            f"window {label!r:.40} is longer than {format_duration(MAX_WINDOW_MINUTES * 60)}"
        )
    return Window(label, minutes)


class ExporterSettings(StrictModel):
    """Every exporter option; the same names are YAML keys, ECM_<NAME> variables and --flags."""

    flat: ClassVar[tuple[str, ...]] = ("thresholds", "budget")

    database_url: DatabaseUrl = None
    port: int = Field(DEFAULT_PORT, ge=0, le=65535)
    listen_address: str = Field("0.0.0.0", pattern=r"^[A-Za-z0-9.:_%\[\]-]{1,255}$")
    # 10 s: one of the delays a page goes through (docs/DETECTION.md).
    interval: Seconds = Field(10.0, gt=0, le=MAX_INTERVAL_S)
    windows: tuple[str, ...] = DEFAULT_WINDOWS
    # Failure ratio and p95 limits, min_calls, min_tower_calls, top_n (defaults: ecm_common/slo).
    thresholds: Thresholds = Field(default_factory=Thresholds)
    # Which towers get per-tower series: tower_detail_max, detail_towers, failing_towers_max.
    budget: Budget = Field(default_factory=Budget)
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
        if len(value) > MAX_WINDOWS:
            raise ValueError(f"at most {MAX_WINDOWS} windows")
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
    """Load and validate the layers (warn below alert is checked by Thresholds)."""
    return load_config(ExporterSettings, file=file, flags=flags, environ=environ)
