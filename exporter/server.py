"""The HTTP side: /metrics serves the prepared exposition, / a landing page, /healthz liveness."""

from __future__ import annotations

import html
import logging
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client.exposition import CONTENT_TYPE_LATEST

log = logging.getLogger(__name__)

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
App = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    """One thread per request, so a slow client never blocks a scrape."""

    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    """Request lines go to DEBUG, not stderr."""

    def log_message(self, format: str, *args: Any) -> None:
        """Log at DEBUG."""
        log.debug("http: " + format, *args)


def make_app(
    exposition: Callable[[], bytes],
    status: Callable[[], str],
    exposition_gzip: Callable[[], bytes] | None = None,
) -> App:
    """The WSGI app over functions giving the cached exposition (plain, gzip) and a status line."""

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
            start_response("405 Method Not Allowed", [("Content-Type", "text/plain")])
            return [b"method not allowed\n"]
        if path == "/metrics":
            headers = [("Content-Type", CONTENT_TYPE_LATEST), ("Vary", "Accept-Encoding")]
            if exposition_gzip is not None and "gzip" in environ.get("HTTP_ACCEPT_ENCODING", ""):
                body = exposition_gzip()
                headers.append(("Content-Encoding", "gzip"))
            else:
                body = exposition()
            start_response("200 OK", [*headers, ("Content-Length", str(len(body)))])
            return [body]
        if path == "/healthz":
            start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
            return [f"ok: {status()}\n".encode()]
        if path == "/":
            page = (
                "<html><head><title>ECM exporter</title></head><body>"
                "<h1>ECM emergency-call exporter</h1>"
                f"<p>Status: {html.escape(status())}</p>"
                '<ul><li><a href="/metrics">/metrics</a></li>'
                '<li><a href="/healthz">/healthz</a></li></ul></body></html>\n'
            ).encode()
            start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
            return [page]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found; try /metrics\n"]

    return app


class MetricsServer:
    """A threading WSGI server running in a background thread."""

    def __init__(self, app: App, address: str, port: int) -> None:
        self.httpd = make_server(
            address, port, app, server_class=_ThreadingServer, handler_class=_QuietHandler
        )
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, name="ecm-http", daemon=True
        )

    @property
    def port(self) -> int:
        """The port actually bound (useful with port 0)."""
        return int(self.httpd.server_port)

    def start(self) -> None:
        """Serve in the background."""
        self.thread.start()
        host = self.httpd.server_address[0]
        log.info("serving /metrics on http://%s:%d/metrics", host, self.port)

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)
