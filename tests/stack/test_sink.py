"""The webhook sink of the local run and the tests, over a real socket."""

from __future__ import annotations

import json
import time
from pathlib import Path

import requests

from stack.sink import WebhookSink

FIRING = {
    "version": "4",
    "status": "firing",
    "receiver": "pager",
    "alerts": [
        {"status": "firing", "labels": {"alertname": "EcmExporterDown", "severity": "critical"}}
    ],
}


def test_records_each_post_in_memory_and_in_the_file(tmp_path: Path) -> None:
    """A notification is kept per receiver and appended to the JSON-lines file."""
    notes = tmp_path / "notifications.jsonl"
    sink = WebhookSink(notes).start()
    try:
        before = time.time()
        resp = requests.post(sink.url("pager"), json=FIRING, timeout=5)
        assert resp.status_code == 200
        mark = sink.mark()
        resolved = {**FIRING, "status": "resolved"}
        requests.post(sink.url("tickets"), json=resolved, timeout=5).raise_for_status()
        assert [n.payload["status"] for n in sink.received("pager")] == ["firing"]
        assert [n.receiver for n in sink.received(since=mark)] == ["tickets"]
        assert sink.received("pager")[0].alerts(severity="critical")[0]["labels"] == {
            "alertname": "EcmExporterDown",
            "severity": "critical",
        }
        lines = [json.loads(ln) for ln in notes.read_text().splitlines()]
        arrived = [line.pop("at") for line in lines]
        assert arrived == [n.at for n in sink.received()]
        assert before <= arrived[0] <= arrived[1] <= time.time()
        assert lines == [
            {"receiver": "pager", "payload": FIRING},
            {"receiver": "tickets", "payload": resolved},
        ]
    finally:
        sink.stop()


def test_bad_posts_are_refused_with_a_reason(tmp_path: Path) -> None:
    """Not JSON: 400; not an object: 422; GET: 405; nothing is recorded."""
    sink = WebhookSink(tmp_path / "n.jsonl").start()
    try:
        bad = requests.post(
            sink.url("pager"), data=b"{", headers={"Content-Type": "application/json"}, timeout=5
        )
        assert bad.status_code == 400
        assert bad.headers["content-type"] == "application/problem+json"
        assert requests.post(sink.url("pager"), json=[1, 2], timeout=5).status_code == 422
        assert requests.get(sink.url("pager"), timeout=5).status_code == 405
        assert sink.received() == []
        assert not (tmp_path / "n.jsonl").exists()
    finally:
        sink.stop()
