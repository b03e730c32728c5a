"""The one duration syntax: what every option accepts and refuses."""

from __future__ import annotations

import pytest

from ecm_common.durations import (
    format_duration,
    parse_duration,
    parse_minutes,
    prometheus_duration,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90.0),
        ("30s", 30.0),
        ("10m", 600.0),
        ("1h30m", 5400.0),
        ("1.5h", 5400.0),
        ("250ms", 0.25),
        ("7d", 604800.0),
        ("2w", 1209600.0),
        (" 1h 30m ", 5400.0),
        (45, 45.0),
        (0.5, 0.5),
    ],
)
def test_accepted(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "value",
    ["", "5x", "-5", "-5s", "inf", "nan", "1e400", "99999999999d", "3651d", "1" * 100, "m5",
     True, None, [1], {"s": 1}, float("inf"), float("nan"), -1, 10**400],
)  # fmt: skip
def test_refused_without_echoing_the_input(value: object) -> None:
    with pytest.raises(ValueError) as exc:
        parse_duration(value)
    assert "1" * 100 not in str(exc.value)


def test_whole_minutes_for_windows() -> None:
    assert parse_minutes("1h30m") == 90
    assert parse_minutes("600s") == 10
    for bad in ("90s", "0m", "0", "30"):
        with pytest.raises(ValueError, match="whole number of minutes"):
            parse_minutes(bad)


def test_format_is_the_shortest_whole_units() -> None:
    assert format_duration(5400) == "1h30m"
    assert format_duration(0.25) == "250ms"
    assert format_duration(10 * 365 * 86400) == "3650d"


def test_prometheus_form_for_rules() -> None:
    assert prometheus_duration("1h30m") == "1h30m"
    for bad in ("1.5m", "90", "5 minutes", ""):
        with pytest.raises(ValueError):
            prometheus_duration(bad)
