"""Posting PM batches to the ECM API: one keep-alive session, retries with exponential backoff
(honouring Retry-After) on connection errors, 429 and 5xx; the API's per-event verdicts counted.

A batch that still fails after max_retries is handed back (None): the caller keeps it and tries
again later. Resending is safe: event ids are deterministic, so an event stored before a lost
answer comes back as a duplicate.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

import requests
from pydantic import SecretStr

from ecm_common.clock import Clock
from ecm_common.errors import ConfigError, EcmError

log = logging.getLogger(__name__)

PATH = "/v1/events/pm"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# Rejection reason for events of a single-event batch the API found too large.
TOO_LARGE = "too_large"


class ApiRefused(EcmError):
    """The API refused our requests themselves (token, content type): no retry can help."""

    exit_code = 2


@dataclass
class Outcome:
    """What the API answered for the events it read."""

    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0
    reasons: collections.Counter[str] = field(default_factory=collections.Counter)

    def add(self, other: Outcome) -> None:
        """Add another outcome's counts to this one."""
        self.accepted += other.accepted
        self.duplicate += other.duplicate
        self.rejected += other.rejected
        self.reasons.update(other.reasons)


class Sender:
    """Posts batches to one API URL."""

    def __init__(
        self,
        api_url: str,
        *,
        token: SecretStr | None,
        timeout_s: float,
        max_retries: int,
        base_delay_s: float,
        max_delay_s: float,
        clock: Clock,
        stop: threading.Event,
    ) -> None:
        self.url = api_url.rstrip("/") + PATH
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.clock = clock
        self.stop = stop
        self.session = requests.Session()
        self.session.headers["Content-Type"] = "application/json"
        if token is not None:
            self.session.headers["Authorization"] = f"Bearer {token.get_secret_value()}"
        self.retries = 0

    def close(self) -> None:
        """Close the session's connections."""
        self.session.close()

    def send(self, events: list[dict[str, Any]]) -> Outcome | None:
        """Post one batch; the API's verdicts, or None when it could not be delivered now."""
        body = json.dumps(events, separators=(",", ":")).encode()
        delay = self.base_delay_s
        for attempt in range(self.max_retries + 1):
            wait = self._post(body, events)
            if isinstance(wait, Outcome):
                return wait
            if attempt == self.max_retries or self.stop.is_set():
                break
            self.retries += 1
            pause = min(self.max_delay_s, max(delay, wait))
            if self.clock.wait(pause, self.stop):
                break
            delay = min(self.max_delay_s, delay * 2)
        return None

    def _post(self, body: bytes, events: list[dict[str, Any]]) -> Outcome | float:
        """The outcome, or the least wait before a retry (0 when the API named none)."""
        try:
            resp = self.session.post(self.url, data=body, timeout=self.timeout_s)
        except requests.RequestException as exc:
            log.warning("posting %d PM events failed: %s", len(events), type(exc).__name__)
            return 0.0
        if resp.status_code in (200, 207, 422):
            return _outcome(resp)
        if resp.status_code in RETRY_STATUSES:
            log.warning("the API answered %d; retrying", resp.status_code)
            return _retry_after(resp)
        if resp.status_code == 413 and len(events) > 1:
            half = len(events) // 2
            out = Outcome()
            for part in (events[:half], events[half:]):
                got = self.send(part)
                if got is None:
                    return 0.0
                out.add(got)
            return out
        if resp.status_code == 413:
            return Outcome(rejected=1, reasons=collections.Counter({TOO_LARGE: 1}))
        if resp.status_code in (401, 403):
            raise ApiRefused(f"the API at {self.url} refused the token ({resp.status_code})")
        raise ApiRefused(f"the API at {self.url} answered {resp.status_code}: {_detail(resp)}")


def _outcome(resp: requests.Response) -> Outcome:
    try:
        body = resp.json()
        out = Outcome(int(body["accepted"]), int(body["duplicate"]), int(body["rejected"]))
        for r in body.get("results", []):
            if r.get("status") == "rejected":
                out.reasons[str(r.get("reason"))[:40]] += 1
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ConfigError(f"the API at {resp.url} answered something that is not ECM") from None
    return out


def _retry_after(resp: requests.Response) -> float:
    value = resp.headers.get("Retry-After", "")
    return float(value) if value.isdigit() else 0.0


def _detail(resp: requests.Response) -> str:
    try:
        return str(resp.json().get("detail", ""))[:200]
    except ValueError:
        return resp.reason[:200]
