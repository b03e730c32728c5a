"""A webhook sink for the local run: Alertmanager notifications appended to a JSON-lines file."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 4 * 1024 * 1024
StartResponse = Callable[[str, list[tuple[str, str]]], Any]


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        log.debug(format, *args)


class WebhookSink:
    """Accepts POST /<receiver> and records {receiver, payload} per line; one summary log line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """The WSGI application."""
        if environ["REQUEST_METHOD"] != "POST":
            start_response("405 Method Not Allowed", [("Content-Type", "text/plain")])
            return [b"POST Alertmanager webhooks here\n"]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length > MAX_BODY_BYTES:
            start_response("413 Payload Too Large", [("Content-Type", "text/plain")])
            return [b"payload too large\n"]
        try:
            payload = json.loads(environ["wsgi.input"].read(length) or b"null")
        except ValueError:
            start_response("400 Bad Request", [("Content-Type", "text/plain")])
            return [b"body is not JSON\n"]
        receiver = environ.get("PATH_INFO", "/").strip("/") or "default"
        with self._lock, open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"receiver": receiver, "payload": payload}) + "\n")
        if isinstance(payload, dict):
            names = sorted(
                {a.get("labels", {}).get("alertname", "?") for a in payload.get("alerts", [])}
            )
            log.info("notification to %s: %s %s", receiver, payload.get("status"), ", ".join(names))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok\n"]


def serve(path: Path, host: str, port: int) -> WSGIServer:
    """Start the sink in a daemon thread; returns the server (call shutdown() to stop)."""
    server = make_server(
        host, port, WebhookSink(path), server_class=_Server, handler_class=_QuietHandler
    )
    threading.Thread(target=server.serve_forever, name="webhook-sink", daemon=True).start()
    return server
