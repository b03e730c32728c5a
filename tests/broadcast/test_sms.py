"""Segment counting and E.164 numbers, against 3GPP 23.038's limits."""

from __future__ import annotations

import random

import pytest

from broadcast import sms


@pytest.mark.parametrize(
    ("text", "encoding", "units", "segments"),
    [
        ("a", "GSM7", 1, 1),
        ("a" * 160, "GSM7", 160, 1),
        ("a" * 161, "GSM7", 161, 2),
        ("a" * 306, "GSM7", 306, 2),
        ("a" * 307, "GSM7", 307, 3),
        # Extension characters take two septets.
        ("€" * 80, "GSM7", 160, 1),
        ("€" * 81, "GSM7", 162, 2),
        # 152 septets then an escape pair: the pair moves whole to the next segment.
        ("a" * 152 + "{" + "a" * 10, "GSM7", 164, 2),
        ("a" * 152 + "{" + "a" * 152, "GSM7", 306, 3),
        ("Ärger über Öl @ £5", "GSM7", 18, 1),
        ("é" * 10 + "ê", "UCS2", 11, 1),
        ("ж" * 70, "UCS2", 70, 1),
        ("ж" * 71, "UCS2", 71, 2),
        ("ж" * 134, "UCS2", 134, 2),
        ("ж" * 135, "UCS2", 135, 3),
        # An emoji is a surrogate pair: two UTF-16 units, never split.
        ("😀" * 35, "UCS2", 70, 1),
        ("ж" * 66 + "😀" + "ж" * 66, "UCS2", 134, 3),
        ("a" * 1530, "GSM7", 1530, 10),
        ("ж" * 670, "UCS2", 670, 10),
    ],
)
def test_segments(text: str, encoding: str, units: int, segments: int) -> None:
    assert sms.encode(text) == sms.Encoded(encoding, units, segments)


@pytest.mark.parametrize("text", ["a" * 1531, "ж" * 671, ""])
def test_too_long_or_empty_text_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"segments|empty"):
        sms.encode(text)


@pytest.mark.parametrize("number", ["+15551234567", "+447911123456", "+4917612345"])
def test_e164_accepted(number: str) -> None:
    assert sms.check_number(number) == number


@pytest.mark.parametrize(
    "number", ["15551234567", "+0123456789", "+1", "+1234567890123456", "+1 555"]
)
def test_not_e164_refused(number: str) -> None:
    with pytest.raises(ValueError, match=r"E\.164"):
        sms.check_number(number)


def test_random_numbers_are_e164_and_seeded() -> None:
    a = sms.random_numbers(random.Random(3), 100)
    assert a == sms.random_numbers(random.Random(3), 100)
    assert all(sms.E164.match(n) for n in a)
