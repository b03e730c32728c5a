"""Signed, expiring acknowledge tokens for the links in notifications.

A token is `<incident id>.<expiry, Unix seconds>.<HMAC-SHA256 of both, base64url>`: whoever holds
the link may acknowledge that one incident until it expires, nothing else. The secret comes from
ECM_PAGER_ACK_SECRET (or _FILE); without one, each process makes a random secret, so links work
only until a restart and only on that process (the log says so).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
from dataclasses import dataclass

from pydantic import SecretStr

log = logging.getLogger(__name__)

MAX_TOKEN_CHARS = 200
_FORM = re.compile(r"^([1-9][0-9]{0,18})\.([0-9]{1,12})\.([A-Za-z0-9_-]{43})$")


class BadToken(Exception):
    """The token is malformed, forged or expired; the message says which."""


@dataclass(frozen=True)
class AckSigner:
    """Makes and checks tokens with one secret."""

    secret: bytes

    @classmethod
    def from_secret(cls, secret: SecretStr | None) -> AckSigner:
        """A signer for the configured secret, or a random one when none is set."""
        if secret is None:
            log.warning(
                "ECM_PAGER_ACK_SECRET is not set: acknowledge links are signed with a random "
                "secret and stop working when this process restarts"
            )
            return cls(secrets.token_bytes(32))
        return cls(secret.get_secret_value().encode("utf-8"))

    def _mac(self, incident_id: int, expires: int) -> str:
        digest = hmac.new(self.secret, f"{incident_id}.{expires}".encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(digest.digest()).decode("ascii").rstrip("=")

    def sign(self, incident_id: int, expires: float) -> str:
        """A token for incident_id valid until the Unix time expires."""
        exp = int(expires)
        return f"{incident_id}.{exp}.{self._mac(incident_id, exp)}"

    def verify(self, token: str, now: float) -> int:
        """The incident id of a valid token; BadToken otherwise."""
        m = _FORM.match(token) if len(token) <= MAX_TOKEN_CHARS else None
        if m is None:
            raise BadToken("the acknowledge link is malformed")
        incident_id, expires = int(m.group(1)), int(m.group(2))
        if not hmac.compare_digest(m.group(3), self._mac(incident_id, expires)):
            raise BadToken("the acknowledge link is not valid (bad signature)")
        if now >= expires:
            raise BadToken("the acknowledge link has expired")
        return incident_id
