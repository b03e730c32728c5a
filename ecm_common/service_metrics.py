"""Request metrics of every ECM HTTP service, labelled by route template (never the raw path),
method and status class, so the number of series stays bounded whatever clients send."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from fastapi.openapi.utils import get_openapi
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# The classes a route's counters start at 0 with (a redirect is not an outcome ECM routes give).
ZERO_STATUS_CLASSES = ("2xx", "4xx", "5xx")
# A request no route matched (404s for any path) gets this handler label.
UNMATCHED = "unmatched"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class HttpMetrics:
    """The request metrics, registered on the service's own registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ("handler", "method", "status")
        self.requests = Counter(
            "ecm_http_requests",
            "HTTP requests answered, by route template, method and status class (2xx..5xx).",
            labels,
            registry=registry,
        )
        self.duration = Histogram(
            "ecm_http_request_duration_seconds",
            "Time from a request's arrival to the end of its response, in seconds, by route "
            "template, method and status class.",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            "ecm_http_requests_in_flight",
            "HTTP requests being handled right now.",
            registry=registry,
        )

    def start_at_zero(self, routes: Sequence[BaseRoute]) -> None:
        """Create each documented route's request counters at 0 so rate() sees the first one."""
        # The OpenAPI paths are the route templates with their routers' prefixes, as matched.
        paths = get_openapi(title="-", version="-", routes=routes).get("paths", {})
        for path, operations in paths.items():
            for method in operations:
                if method.upper() in METHODS:
                    for status in ZERO_STATUS_CLASSES:
                        self.requests.labels(path, method.upper(), status)


class RequestMetricsMiddleware:
    """ASGI middleware that counts and times every HTTP request (outermost, sees every answer)."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI call."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_and_note)
        finally:
            self.metrics.in_flight.dec()
            elapsed = time.perf_counter() - start
            method = scope["method"] if scope["method"] in METHODS else "other"
            # The router writes the matched route into the scope; its template bounds the labels.
            route = scope.get("route")
            handler = getattr(route, "path", None) or UNMATCHED
            status_class = f"{min(max(status // 100, 1), 5)}xx"
            self.metrics.requests.labels(handler, method, status_class).inc()
            self.metrics.duration.labels(handler, method, status_class).observe(elapsed)
            log.debug("%s %s -> %d in %.3f s", method, handler, status, elapsed)
