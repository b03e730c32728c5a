"""The one /metrics HTTP server of every ECM part: a waitress server under a small WSGI app.

Guarantees (docs/RELIABILITY.md): a listen backlog of ``BACKLOG``; idle sockets cost no
thread (waitress reads requests in one poll loop and hands only complete requests to a pool of
``THREADS`` workers) and are closed after ``IDLE_TIMEOUT_S`` without a request; open connections,
request headers and bodies are bounded; HEAD answers with the GET headers and no body;
``Accept-Encoding`` is negotiated as RFC 9110 section 12.5.3 defines it, q-values included, and
every /metrics answer carries ``Vary: Accept-Encoding``; other paths get 404 and other methods
405. A port that is already taken is a ConfigError (exit 2), not a traceback.

Why waitress: it already keeps idle connections off the worker threads, bounds them and times
them out, with no dependency of its own. The stdlib's thread-per-connection servers give every
silent socket a thread, and uvicorn (the API services' server) starts its idle timer only after
a first response, so a client that connects and sends nothing keeps its socket forever. With the
same backlog, a thread-per-connection server measured the same p99 at 50 parallel scrapers, so
hand-writing one would buy nothing. The Accept-Encoding negotiation is written here because no
dependency of the project parses q-values (prometheus_client looks for the substring "gzip"); it
is twenty lines checked by a table of cases.
"""

from __future__ import annotations

import gzip
import html
import logging
import resource
import threading
from collections.abc import Callable, Iterable
from typing import Any

import waitress
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from waitress import wasyncore

from ecm_common.net import bind

log = logging.getLogger(__name__)

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
App = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

# Connections the kernel queues before the server accepts them (the old server had 5).
BACKLOG = 1024
# Workers that run requests; idle and half-sent connections hold none of them.
THREADS = 4
# Longer than Prometheus' scrape intervals, so its keep-alive connections are reused.
IDLE_TIMEOUT_S = 60
# Open connections at most (poll(), so not select()'s 1024); past it new ones wait in the
# backlog. Never more than half the process's file descriptors, so accept() never fails for want
# of one and the database, spool and log files keep theirs.
CONNECTION_LIMIT = 1000
MAX_HEADER_BYTES = 16 * 1024
MAX_BODY_BYTES = 4 * 1024
ALLOWED_METHODS = ("GET", "HEAD")


def _qvalue(params: list[str]) -> float | None:
    """The weight among an Accept-Encoding element's parameters: 1 by default, None if invalid."""
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                q = float(value.strip())
            except ValueError:
                return None
            return q if 0.0 <= q <= 1.0 else None
    return 1.0


def accepts_gzip(header: str | None) -> bool:
    """Whether to answer with gzip: acceptable (q > 0) and weighted at least as high as identity.

    No header, an empty one, or gzip refused (``gzip;q=0``, ``*;q=0``) means identity; so does a
    header that refuses both, since a response without coding is the interoperable answer then.
    """
    if not header:
        return False
    weights: dict[str, float] = {}
    for element in header.split(","):
        coding, *params = element.split(";")
        coding = coding.strip().lower()
        q = _qvalue(params)
        if not coding or q is None:
            continue
        coding = "gzip" if coding == "x-gzip" else coding  # RFC 9110 8.4.1.3: the same coding
        weights[coding] = max(q, weights.get(coding, 0.0))
    star = weights.get("*")
    gzip_q = weights.get("gzip", star if star is not None else 0.0)
    # Identity is acceptable unless refused by name or by "*"; unnamed, it comes last.
    identity_q = weights.get("identity", star if star is not None else 0.0)
    return gzip_q > 0.0 and gzip_q >= identity_q


def metrics_app(
    title: str,
    exposition: Callable[[], bytes],
    status: Callable[[], str],
    exposition_gzip: Callable[[], bytes] | None = None,
) -> App:
    """/metrics (the exposition, gzip when preferred), / (a landing page), /healthz (status)."""

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        method = environ.get("REQUEST_METHOD", "GET")
        head = method == "HEAD"
        if path not in ("/metrics", "/", "/healthz"):
            return _answer(start_response, "404 Not Found", b"not found; try /metrics\n", head=head)
        if method not in ALLOWED_METHODS:
            return _answer(
                start_response,
                "405 Method Not Allowed",
                b"method not allowed; use GET or HEAD\n",
                [("Allow", ", ".join(ALLOWED_METHODS))],
            )
        if path == "/metrics":
            headers = [("Content-Type", CONTENT_TYPE_LATEST), ("Vary", "Accept-Encoding")]
            if accepts_gzip(environ.get("HTTP_ACCEPT_ENCODING")):
                body = exposition_gzip() if exposition_gzip else gzip.compress(exposition())
                headers.append(("Content-Encoding", "gzip"))
            else:
                body = exposition()
            start_response("200 OK", [*headers, ("Content-Length", str(len(body)))])
            return [] if head else [body]
        if path == "/healthz":
            return _answer(start_response, "200 OK", f"ok: {status()}\n".encode(), head=head)
        page = (
            f"<html><head><title>{html.escape(title)}</title></head><body>"
            f"<h1>{html.escape(title)}</h1>"
            f"<p>Status: {html.escape(status())}</p>"
            '<ul><li><a href="/metrics">/metrics</a></li>'
            '<li><a href="/healthz">/healthz</a></li></ul></body></html>\n'
        ).encode()
        return _answer(start_response, "200 OK", page, ctype="text/html; charset=utf-8", head=head)

    return app


def _answer(
    start_response: StartResponse,
    status: str,
    body: bytes,
    extra: list[tuple[str, str]] | None = None,
    ctype: str = "text/plain; charset=utf-8",
    *,
    head: bool = False,
) -> list[bytes]:
    """A complete small response with its length; the body left out for HEAD."""
    headers = [("Content-Type", ctype), ("Content-Length", str(len(body))), *(extra or [])]
    start_response(status, headers)
    return [] if head else [body]


def connection_limit() -> int:
    """CONNECTION_LIMIT, or half the soft limit on open files when that is lower."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return CONNECTION_LIMIT
    return max(1, min(CONNECTION_LIMIT, soft // 2))


class MetricsServer:
    """A WSGI app served by waitress from a background thread."""

    def __init__(
        self,
        app: App,
        address: str,
        port: int,
        *,
        idle_timeout_s: int = IDLE_TIMEOUT_S,
        threads: int = THREADS,
    ) -> None:
        sock = bind(address, port)
        self._map: dict[int, Any] = {}
        self._server = waitress.create_server(
            app,
            map=self._map,
            sockets=[sock],
            threads=threads,
            backlog=BACKLOG,
            connection_limit=connection_limit(),
            channel_timeout=idle_timeout_s,
            # How often idle connections are looked for: their timeout is met within this.
            cleanup_interval=max(1, min(idle_timeout_s, 10)),
            asyncore_use_poll=True,
            max_request_header_size=MAX_HEADER_BYTES,
            max_request_body_size=MAX_BODY_BYTES,
            ident="ecm",
        )
        # A burst of parallel scrapes queues for microseconds; waitress warns on every one.
        logging.getLogger("waitress.queue").setLevel(logging.ERROR)
        self._address = address
        self._port = int(sock.getsockname()[1])
        self._thread = threading.Thread(target=self._server.run, name="ecm-http", daemon=True)

    @property
    def port(self) -> int:
        """The port actually bound (useful with port 0)."""
        return self._port

    def start(self) -> None:
        """Serve in the background."""
        self._thread.start()
        log.info("serving /metrics on http://%s:%d/metrics", self._address, self._port)

    def stop(self) -> None:
        """Close the socket and every connection, then stop the workers."""
        if self._thread.is_alive():
            # The select loop owns the sockets: close them from inside it; it ends with none left.
            try:
                self._server.trigger.pull_trigger(lambda: wasyncore.close_all(self._map))
            except OSError:
                # The trigger is already closed: the loop is ending on its own.
                wasyncore.close_all(self._map)
            self._thread.join(timeout=5)
        else:
            wasyncore.close_all(self._map)
        self._server.task_dispatcher.shutdown(timeout=5)


def serve_registry(
    title: str,
    registry: CollectorRegistry,
    address: str,
    port: int,
    status: Callable[[], str] = lambda: "running",
) -> MetricsServer:
    """Serve a registry rendered at each scrape on address:port; returns the started server."""
    server = MetricsServer(
        metrics_app(title, lambda: generate_latest(registry), status), address, port
    )
    server.start()
    return server
