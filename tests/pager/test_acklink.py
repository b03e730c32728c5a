"""Acknowledge tokens: valid until they expire, bound to one incident, unforgeable."""

from __future__ import annotations

import pytest

from pager.acklink import AckSigner, BadToken

NOW = 1_800_000_000.0


def test_a_token_names_its_incident_until_it_expires() -> None:
    signer = AckSigner(b"secret")
    token = signer.sign(42, NOW + 60)
    assert signer.verify(token, NOW) == 42
    assert signer.verify(token, NOW + 59) == 42
    with pytest.raises(BadToken, match="expired"):
        signer.verify(token, NOW + 60)


def test_changed_or_foreign_tokens_are_refused() -> None:
    token = AckSigner(b"secret").sign(42, NOW + 60)
    incident, expires, mac = token.split(".")
    with pytest.raises(BadToken, match="signature"):
        AckSigner(b"other").verify(token, NOW)
    with pytest.raises(BadToken, match="signature"):
        AckSigner(b"secret").verify(f"43.{expires}.{mac}", NOW)
    with pytest.raises(BadToken, match="signature"):
        AckSigner(b"secret").verify(f"{incident}.{int(expires) + 3600}.{mac}", NOW)
    for bad in ("", "42", "42.x.y", "0.1." + "a" * 43, token + "a", "4" * 300):
        with pytest.raises(BadToken, match="malformed"):
            AckSigner(b"secret").verify(bad, NOW)
