"""The app factory of ECM's HTTP services (FastAPI on uvicorn): a service is its routers and its
logic; create_app adds what every service shares.

- GET /healthz: the process answers. GET /readyz: the database answers within a bounded time
  (503 problem+json when not). GET /metrics: the service's own registry, with request counts
  and latency per route template, method and status class (ecm_common/service_metrics.py).
- problem+json (RFC 9457) for every 4xx and 5xx (ecm_common/service_errors.py).
- An optional bearer token that routes opt into with `dependencies=[RequireToken]`
  (ecm_common/service_auth.py).
- A request body limit enforced while the body is read (413) and a bound on concurrent
  requests (503 with Retry-After).
- serve(): uvicorn with the root logger's format (--log-format json), no access log (URLs may
  carry tokens), graceful shutdown on SIGTERM: in-flight requests finish, then exit 0.
"""

from __future__ import annotations

import importlib.metadata
import logging
import signal
import socket
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from types import FrameType
from typing import Annotated, Any

import anyio
import psycopg
import uvicorn
from fastapi import APIRouter, FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import Field, SecretStr

from ecm_common.config import StrictModel
from ecm_common.db import CONNECT_TIMEOUT_S, describe
from ecm_common.errors import DatabaseUnavailable, EcmError
from ecm_common.net import listen
from ecm_common.service_auth import RequireToken, bearer_token, load_token
from ecm_common.service_errors import Problem, install_problem_handlers, problem_response
from ecm_common.service_limits import BodyLimitMiddleware, ConcurrencyLimitMiddleware
from ecm_common.service_metrics import HttpMetrics, RequestMetricsMiddleware

__all__ = [
    "BackgroundServer",
    "HttpSettings",
    "Problem",
    "ReadyCheck",
    "RequireToken",
    "bearer_token",
    "create_app",
    "database_check",
    "listen_socket",
    "load_token",
    "serve",
]

log = logging.getLogger(__name__)

OPS_PATHS = ("/healthz", "/readyz", "/metrics")
ReadyCheck = Callable[[], object]
Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


class HttpSettings(StrictModel):
    """What every HTTP service lets its operator set; a service nests it in its own settings."""

    listen_address: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8000
    max_body_bytes: Annotated[int, Field(ge=0)] = 1024 * 1024
    max_concurrent_requests: Annotated[int, Field(ge=1)] = 64
    readiness_timeout_s: Annotated[float, Field(gt=0, le=60)] = 2.0
    shutdown_timeout_s: Annotated[int, Field(ge=1, le=600)] = 10


def create_app(
    name: str,
    *,
    registry: CollectorRegistry,
    settings: HttpSettings | None = None,
    ready_check: ReadyCheck | None = None,
    token: SecretStr | None = None,
    routers: Sequence[APIRouter] = (),
    version: str | None = None,
    lifespan: Lifespan | None = None,
) -> FastAPI:
    """A FastAPI app with the shared endpoints, errors, limits and metrics, plus these routers.

    ready_check is a blocking callable that raises when the service cannot work (for example
    database_check(url)); /readyz runs it in a thread with settings.readiness_timeout_s.
    token guards the routes that declare `dependencies=[RequireToken]`; None leaves them open.
    Routes come in through routers, so that /metrics knows them from the start.
    """
    cfg = settings or HttpSettings()
    app = FastAPI(title=name, version=version or _package_version(), lifespan=lifespan)
    app.state.ecm_token = token
    install_problem_handlers(app)
    app.include_router(_ops_router(registry, ready_check, cfg.readiness_timeout_s))
    for router in routers:
        app.include_router(router)
    metrics = HttpMetrics(registry)
    metrics.start_at_zero(app.routes)
    # Added last = outermost: the metrics see the limiters' 413s and 503s too.
    app.add_middleware(BodyLimitMiddleware, max_bytes=cfg.max_body_bytes)
    app.add_middleware(
        ConcurrencyLimitMiddleware, limit=cfg.max_concurrent_requests, exempt=OPS_PATHS
    )
    app.add_middleware(RequestMetricsMiddleware, metrics=metrics)
    return app


def _package_version() -> str:
    try:
        return importlib.metadata.version("ecm")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


def _ops_router(
    registry: CollectorRegistry, ready_check: ReadyCheck | None, timeout_s: float
) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", summary="The process is up")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", summary="The service can reach what it needs (the database)")
    async def readyz() -> Response:
        if ready_check is not None:
            try:
                with anyio.fail_after(timeout_s):
                    await anyio.to_thread.run_sync(ready_check, abandon_on_cancel=True)
            except TimeoutError:
                log.warning("readiness check timed out after %.1f s", timeout_s)
                return _not_ready(f"the readiness check did not finish within {timeout_s:g} s")
            except Exception as exc:
                log.warning("not ready: %s", describe(exc))
                return _not_ready(describe(exc))
        return Response('{"status":"ready"}', media_type="application/json")

    @router.get("/metrics", summary="Prometheus metrics of this service")
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router


def _not_ready(detail: str) -> Response:
    return problem_response(503, detail, headers={"Retry-After": "5"})


def database_check(url: str, *, app: str = "ecm-readyz") -> ReadyCheck:
    """A ready_check that connects to the database and runs SELECT 1."""

    def check() -> None:
        try:
            with psycopg.connect(
                url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S, application_name=app
            ) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error as exc:
            # The reason without the URL: /readyz answers anyone who asks.
            raise DatabaseUnavailable(f"database unavailable: {describe(exc)}") from None

    return check


def listen_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket (port 0: any free one); a taken port is one ConfigError."""
    return listen(host, port, backlog=2048)


def _uvicorn_config(app: FastAPI, cfg: HttpSettings, *, quiet: bool = False) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        # Quiet: a server inside another program leaves its lifecycle lines to that program.
        log_level="warning" if quiet else None,
        # None: keep the root logger that setup_logging configured (text or JSON lines).
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=False,
        lifespan="on",
        loop="asyncio",
        http="h11",
        ws="none",
        timeout_graceful_shutdown=cfg.shutdown_timeout_s,
    )


def serve(app: FastAPI, settings: HttpSettings, *, sock: socket.socket | None = None) -> None:
    """Serve until SIGTERM or SIGINT; in-flight requests get settings.shutdown_timeout_s."""
    sock = sock or listen_socket(settings.listen_address, settings.port)
    host, port = sock.getsockname()[:2]
    server = uvicorn.Server(_uvicorn_config(app, settings))
    # uvicorn re-raises the signal it stopped on once it has shut down; this handler takes it,
    # so a requested stop ends with status 0 instead of death by SIGTERM.
    previous = signal.signal(signal.SIGTERM, _stopped)
    log.info("%s listening on http://%s:%d", app.title, host, port)
    try:
        server.run(sockets=[sock])
    finally:
        signal.signal(signal.SIGTERM, previous)
        sock.close()
    if not server.started:
        raise EcmError(f"{app.title} did not start; the log above says why")
    log.info("%s stopped", app.title)


def _stopped(signum: int, frame: FrameType | None) -> None:
    log.debug("signal %d after shutdown", signum)


class BackgroundServer:
    """An app served by uvicorn in a daemon thread of this process (the local run's sink, tests)."""

    def __init__(
        self,
        app: FastAPI,
        settings: HttpSettings | None = None,
        *,
        sock: socket.socket | None = None,
    ) -> None:
        cfg = settings or HttpSettings(port=0)
        self.sock = sock or listen_socket(cfg.listen_address, cfg.port)
        self.server = uvicorn.Server(_uvicorn_config(app, cfg, quiet=True))
        self._thread = threading.Thread(
            target=self.server.run,
            kwargs={"sockets": [self.sock]},
            name=f"http-{app.title}",
            daemon=True,
        )

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self.sock.getsockname()[1])

    @property
    def url(self) -> str:
        """Base URL, without a trailing slash."""
        host = self.sock.getsockname()[0]
        return f"http://{host}:{self.port}"

    def start(self, timeout_s: float = 10.0) -> BackgroundServer:
        """Start serving; returns once the server accepts requests."""
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise EcmError(f"HTTP server on port {self.port} did not start")
            time.sleep(0.01)
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop serving and wait for the thread."""
        self.server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        self.sock.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
