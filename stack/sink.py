"""The webhook sink of the local run and the tests: records every notification Alertmanager
posts to /<receiver>, in memory (the latest MAX_KEPT) and, when given a file, as JSON lines
{"receiver", "at" (arrival, Unix seconds), "payload"} appended there (notifications.jsonl).

It is an app of the shared factory (ecm_common/service.py), served in a thread of the caller.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter
from fastapi import Path as PathParam
from prometheus_client import CollectorRegistry

from ecm_common.service import BackgroundServer, HttpSettings, create_app

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 4 * 1024 * 1024
MAX_KEPT = 10_000
RECEIVERS = ("pager", "tickets", "heartbeat")
Receiver = Annotated[str, PathParam(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]


@dataclass(frozen=True)
class Notification:
    """One POST: the receiver (the URL path), the Alertmanager webhook payload, when it came."""

    receiver: str
    payload: dict[str, Any]
    at: float = field(default_factory=time.time)

    def alerts(self, **labels: str) -> list[dict[str, Any]]:
        """The payload's alerts whose labels include these."""
        return [
            a
            for a in self.payload.get("alerts", [])
            if all(a.get("labels", {}).get(k) == v for k, v in labels.items())
        ]


class WebhookSink:
    """Serves on host:port (0: any free port); receivers are told apart by the URL path."""

    def __init__(self, path: Path | None = None, *, host: str = "127.0.0.1", port: int = 0):
        self.path = path
        self._lock = threading.Lock()
        self._kept: deque[Notification] = deque(maxlen=MAX_KEPT)
        self._count = 0
        router = APIRouter()

        @router.post("/{receiver}", summary="Record one Alertmanager notification")
        async def receive(receiver: Receiver, payload: dict[str, Any]) -> dict[str, str]:
            self.record(Notification(receiver, payload))
            return {"status": "recorded"}

        settings = HttpSettings(listen_address=host, port=port, max_body_bytes=MAX_BODY_BYTES)
        app = create_app("ecm-webhook-sink", registry=CollectorRegistry(), routers=[router])
        self._server = BackgroundServer(app, settings)

    @property
    def port(self) -> int:
        """The port the sink listens on."""
        return self._server.port

    def url(self, receiver: str) -> str:
        """The webhook URL of one receiver."""
        return f"{self._server.url}/{receiver}"

    def start(self) -> WebhookSink:
        """Serve in a background thread."""
        self._server.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self._server.stop()

    def record(self, note: Notification) -> None:
        """Keep a notification (and append it to the file); one summary log line."""
        with self._lock:
            self._kept.append(note)
            self._count += 1
            if self.path is not None:
                with self.path.open("a", encoding="utf-8") as fh:
                    line = {"receiver": note.receiver, "at": note.at, "payload": note.payload}
                    fh.write(json.dumps(line) + "\n")
        names = sorted({a.get("labels", {}).get("alertname", "?") for a in note.alerts()})
        log.info(
            "notification to %s: %s %s", note.receiver, note.payload.get("status"), ", ".join(names)
        )

    def received(self, receiver: str | None = None, since: int = 0) -> list[Notification]:
        """Notifications kept (of one receiver), from the mark `since` on."""
        with self._lock:
            first = self._count - len(self._kept)
            items = list(self._kept)[max(since - first, 0) :]
        return [n for n in items if receiver is None or n.receiver == receiver]

    def mark(self) -> int:
        """A mark to pass as since, to look only at what arrives from now on."""
        with self._lock:
            return self._count

    def summary(self) -> str:
        """What arrived, for failure messages."""
        lines = []
        for n in self.received():
            alerts = ", ".join(
                f"{a['labels'].get('alertname')}{{{a['labels'].get('tower', '')}}}:{a['status']}"
                for a in n.alerts()
            )
            lines.append(f"/{n.receiver} {n.payload.get('status')}: {alerts}")
        return "notifications:\n  " + "\n  ".join(lines or ["(none)"])
