"""SMS facts: E.164 numbers, and how many segments a text takes in GSM-7 or UCS-2 (3GPP 23.038).

A GSM-7 text is 160 septets in one segment, or 153 per segment once split (the user-data
header takes the rest); characters of the extension table take two septets (escape + char)
and a pair is never split across segments. Any other character makes the text UCS-2: 70
UTF-16 code units in one segment, 67 per segment once split, a surrogate pair never split.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Final

GSM7: Final = "GSM7"
UCS2: Final = "UCS2"
# A text longer than this many segments is refused: operators cap concatenated SMS near here.
MAX_SEGMENTS: Final = 10

_BASIC: Final = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_EXTENSION: Final = frozenset("\f^{}\\[~]|€")
_LIMITS: Final = {GSM7: (160, 153), UCS2: (70, 67)}

E164: Final = re.compile(r"^\+[1-9][0-9]{6,14}$")


@dataclass(frozen=True)
class Encoded:
    """A text's encoding, its length in septets (GSM-7) or code units (UCS-2), and segments."""

    encoding: str
    units: int
    segments: int


def _units(text: str) -> tuple[str, list[int]]:
    """The encoding and the width of each character in that encoding's units."""
    if all(c in _BASIC or c in _EXTENSION for c in text):
        return GSM7, [2 if c in _EXTENSION else 1 for c in text]
    return UCS2, [2 if ord(c) > 0xFFFF else 1 for c in text]


def _split(widths: list[int], size: int) -> int:
    """Segments needed when each holds size units and no character is cut in two."""
    segments, used = 1, 0
    for w in widths:
        if used + w > size:
            segments, used = segments + 1, 0
        used += w
    return segments


def encode(text: str) -> Encoded:
    """The encoding and segment count of text; ValueError when it is empty or too long."""
    if not text:
        raise ValueError("the text must not be empty")
    encoding, widths = _units(text)
    single, multi = _LIMITS[encoding]
    units = sum(widths)
    segments = 1 if units <= single else _split(widths, multi)
    if segments > MAX_SEGMENTS:
        raise ValueError(
            f"the text takes {segments} {encoding} segments; at most {MAX_SEGMENTS} are allowed "
            f"({MAX_SEGMENTS * multi} {'septets' if encoding == GSM7 else 'UTF-16 units'})"
        )
    return Encoded(encoding, units, segments)


def check_number(number: str) -> str:
    """The number when it is E.164 (+, country code, at most 15 digits); ValueError otherwise."""
    if not E164.match(number):
        shown = number if len(number) <= 20 else number[:17] + "..."
        raise ValueError(f"not an E.164 number (+ and 7 to 15 digits): {shown!r}")
    return number


def random_numbers(rng: random.Random, count: int) -> list[str]:
    """Count random North American mobile-style numbers in E.164 (+1 NXX NXX XXXX)."""
    out = []
    for _ in range(count):
        area = rng.randrange(200, 1000)
        exchange = rng.randrange(200, 1000)
        out.append(f"+1{area}{exchange}{rng.randrange(10000):04d}")
    return out
