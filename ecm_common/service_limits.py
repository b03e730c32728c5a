"""Bounds on what one client can make an ECM HTTP service do: the body size of a request (413,
counted while reading, so a missing or false Content-Length does not get past it) and the
requests worked on at once (503 with Retry-After instead of an unbounded queue).

Both answer problem+json. The body limit is ours rather than FastAPI's max_body_size because
Starlette's limiter replaces every answer to an over-long declared body with plain text.
"""

from __future__ import annotations

import logging
from collections.abc import Collection

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ecm_common.service_errors import Problem, problem_response

log = logging.getLogger(__name__)

RETRY_AFTER_S = 1


class ConcurrencyLimitMiddleware:
    """Refuses an HTTP request while `limit` others are in progress; exempt paths always pass."""

    def __init__(self, app: ASGIApp, limit: int, exempt: Collection[str] = ()) -> None:
        self.app = app
        self.limit = limit
        self.exempt = frozenset(exempt)
        # One event loop per server: a plain counter is safe without a lock.
        self.active = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI call."""
        if scope["type"] != "http" or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        if self.active >= self.limit:
            log.debug("refused a request: %d in progress", self.active)
            response = problem_response(
                503,
                f"the service is handling {self.limit} requests already; retry shortly",
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
            await response(scope, receive, send)
            return
        self.active += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.active -= 1


class BodyLimitMiddleware:
    """Refuses a request body over max_bytes: at once when declared, else when it gets there."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI call."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large()(scope, receive, send)
            return
        received = 0

        async def receive_within_limit() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # Raised inside the route's body reading: the problem handlers answer it.
                    raise Problem(413, self._detail())
            return message

        await self.app(scope, receive_within_limit, send)

    def _detail(self) -> str:
        return f"the request body is over the limit of {self.max_bytes} bytes"

    def _too_large(self) -> ASGIApp:
        return problem_response(413, self._detail())
