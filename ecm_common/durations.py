"""The one duration syntax of every option: 90, 30s, 10m, 1h30m, 1.5h, 7d, 2w, 250ms.

A bare number is seconds. Every parsed value is finite, not negative and at most
MAX_SECONDS, so no option can overflow a timestamp or a timer.
"""

from __future__ import annotations

import math
import re
from typing import Annotated

from pydantic import BeforeValidator

UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
# Ten years: longer than any window, scenario or backfill, and still a valid datetime offset.
MAX_SECONDS = 10 * 365 * 86400.0
SYNTAX = "a duration like 90, 30s, 10m, 1h30m or 7d"
_PART = re.compile(r"(\d{1,15}(?:\.\d{1,9})?)(ms|s|m|h|d|w)")
_NUMBER = re.compile(r"\d{1,15}(?:\.\d{1,9})?")
_MAX_TEXT = 64
# What Prometheus accepts in rules: whole numbers with units, no bare number.
_PROMETHEUS = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")


def parse_duration(value: object, *, max_seconds: float = MAX_SECONDS) -> float:
    """Seconds from a number or a duration text; ValueError (without the input) otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"expected {SYNTAX}")
    if isinstance(value, int | float):
        seconds = float(value) if abs(value) <= max_seconds else math.inf
    elif isinstance(value, str):
        text = value.strip().replace(" ", "")
        if len(text) > _MAX_TEXT:
            raise ValueError(f"expected {SYNTAX} (at most {_MAX_TEXT} characters)")
        if _NUMBER.fullmatch(text):
            seconds = float(text)
        elif text and _PART.sub("", text) == "":
            seconds = sum(float(n) * UNIT_SECONDS[u] for n, u in _PART.findall(text))
        else:
            raise ValueError(f"expected {SYNTAX}")
    else:
        raise ValueError(f"expected {SYNTAX}")
    if not math.isfinite(seconds):
        raise ValueError("a duration must be a finite number")
    if seconds < 0:
        raise ValueError("a duration must not be negative")
    if seconds > max_seconds:
        raise ValueError(f"a duration must be at most {format_duration(max_seconds)}")
    return seconds


def parse_minutes(value: object) -> int:
    """A positive whole number of minutes from a duration text (10m, 1h30m, 600s)."""
    seconds = parse_duration(value)
    if seconds <= 0 or seconds % 60:
        raise ValueError("must be a positive whole number of minutes (5m, 1h30m)")
    return int(seconds // 60)


def format_duration(seconds: float) -> str:
    """The shortest text of whole units for a duration: 5400 -> '1h30m', 0.25 -> '250ms'."""
    if seconds <= 0:
        return "0s"
    ms = round(seconds * 1000)
    out = []
    for unit in ("d", "h", "m", "s", "ms"):
        size = round(UNIT_SECONDS[unit] * 1000)
        if ms >= size:
            out.append(f"{ms // size}{unit}")
            ms %= size
    return "".join(out)


def prometheus_duration(text: str) -> str:
    """A duration as Prometheus reads it in rules (5m, 1h30m): ValueError when it is not one."""
    if not isinstance(text, str) or not _PROMETHEUS.match(text):
        raise ValueError(f"expected a Prometheus duration like 5m or 1h30m, got {text[:40]!r}")
    return text


# A settings field that takes any duration text and holds seconds.
Seconds = Annotated[float, BeforeValidator(lambda v: parse_duration(v) if v is not None else v)]
