"""The exporter as a long-running service: starts, refreshes on schedule, stops on SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.exporter.helpers import Call, by_tower, value, write_calls
from tests.fixtures.postgres import EcmDb

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DEADLINE_S = 30


def wait_for_line(proc: subprocess.Popen[str], pattern: str) -> re.Match[str]:
    """Read stderr until a line matches (readiness, not time logic), or fail with the log."""
    seen = []
    assert proc.stderr is not None
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen.append(line)
        m = re.search(pattern, line)
        if m:
            return m
    proc.kill()
    pytest.fail(f"no line matching {pattern!r}; log:\n{''.join(seen)}")


def scrape(port: int) -> str:
    """GET /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return str(resp.read().decode())


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serves_refreshes_and_stops_cleanly(test_db: EcmDb, sig: signal.Signals) -> None:
    write_calls(test_db.writer_url, [Call(time.time() - 5, "TOWER_1", 900)] * 25)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECM_")}
    env["ECM_DATABASE_URL"] = test_db.reader_url
    proc = subprocess.Popen(
        [sys.executable, "-m", "exporter", "--port", "0", "--listen-address", "127.0.0.1",
         "--interval", "0.2", "--log-level", "DEBUG"],
        env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        port = int(wait_for_line(proc, r"serving /metrics on http://127\.0\.0\.1:(\d+)/").group(1))
        wait_for_line(proc, r"rollups rebuilt from 25 calls")
        write_calls(test_db.writer_url, [Call(time.time(), "TOWER_2", 1100, "PSAP_BUSY")] * 3)
        wait_for_line(proc, r"refresh: 3 new calls")
        wait_for_line(proc, r"refresh: 0 new calls")  # the 3-call refresh has been rendered
        text = scrape(port)
        list(text_string_to_metric_families(text))
        assert by_tower(text, "ecm_calls_failed_total", tower="TOWER_2", reason="PSAP_BUSY") == 3
        assert value(text, "ecm_window_calls", window="5m") == 28
        assert value(text, "ecm_database_up") == 1
        proc.send_signal(sig)
        assert proc.wait(timeout=DEADLINE_S) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()
