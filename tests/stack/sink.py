"""A webhook sink: a tiny HTTP server recording every notification Alertmanager posts."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Notification:
    """One POST: the receiver path and the Alertmanager webhook payload."""

    path: str
    body: dict[str, Any]

    def alerts(self, **labels: str) -> list[dict[str, Any]]:
        """The payload's alerts whose labels include these."""
        return [
            a
            for a in self.body.get("alerts", [])
            if all(a["labels"].get(k) == v for k, v in labels.items())
        ]


class WebhookSink:
    """Serves on 127.0.0.1; receivers are told apart by the URL path (/pager, /tickets, ...)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._received: list[Notification] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                with sink._lock:
                    sink._received.append(Notification(self.path, body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        """The port the sink listens on."""
        return int(self._server.server_address[1])

    def url(self, receiver: str) -> str:
        """The webhook URL of one receiver."""
        return f"http://127.0.0.1:{self.port}/{receiver}"

    def start(self) -> None:
        """Serve in a background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()

    def received(self, receiver: str | None = None, since: int = 0) -> list[Notification]:
        """Notifications so far (of one receiver), from index since of the full list."""
        with self._lock:
            items = self._received[since:]
        return [n for n in items if receiver is None or n.path == f"/{receiver}"]

    def mark(self) -> int:
        """An index to pass as since, to look only at what arrives from now on."""
        with self._lock:
            return len(self._received)

    def summary(self) -> str:
        """What arrived, for failure messages."""
        lines = []
        for n in self.received():
            alerts = ", ".join(
                f"{a['labels'].get('alertname')}{{{a['labels'].get('tower', '')}}}:{a['status']}"
                for a in n.body.get("alerts", [])
            )
            lines.append(f"{n.path} {n.body.get('status')}: {alerts}")
        return "notifications:\n  " + "\n  ".join(lines or ["(none)"])
