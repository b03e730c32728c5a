"""What Prometheus sees over HTTP: parseable, promtool-clean, and never a database query."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter.refresh import RefreshJob
from exporter.server import MetricsServer, make_app
from tests.exporter.helpers import Call, add_towers, by_tower, value, write_calls
from tests.fixtures.clock import FakeClock
from tests.fixtures.postgres import EcmDb
from tests.fixtures.tools import require_binary

pytestmark = pytest.mark.integration


@pytest.fixture
def server(job: RefreshJob) -> Iterator[MetricsServer]:
    """The exporter's HTTP server on an ephemeral loopback port."""
    srv = MetricsServer(
        make_app(job.exposition, lambda: "database up", job.exposition_gzip), "127.0.0.1", 0
    )
    srv.start()
    yield srv
    srv.stop()


def get(srv: MetricsServer, path: str) -> tuple[int, str, str]:
    """Status, content type and body of a GET."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{srv.port}{path}", timeout=5) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def test_metrics_parse_and_pass_promtool(
    test_db: EcmDb, job: RefreshJob, clock: FakeClock, server: MetricsServer
) -> None:
    promtool = require_binary("promtool", "prometheus")
    add_towers(test_db.url, ["TOWER_1", "TOWER_2"])
    assert job.refresh()
    write_calls(test_db.writer_url, [Call(clock.now - i, "TOWER_1", 1200 + i, None if i % 5 else
                                          "PSAP_BUSY") for i in range(50)])  # fmt: skip
    assert job.refresh()
    status, ctype, body = get(server, "/metrics")
    assert status == 200 and ctype.startswith("text/plain")
    names = {fam.name for fam in text_string_to_metric_families(body)}
    assert {"ecm_calls", "ecm_calls_failed", "ecm_call_latency_seconds", "ecm_window_calls",
            "ecm_database_up", "ecm_exporter_query_failures"} <= names  # fmt: skip
    assert by_tower(body, "ecm_calls_total", tower="TOWER_1") == 50
    assert by_tower(body, "ecm_calls_total", tower="TOWER_2") == 0
    assert by_tower(body, "ecm_calls_failed_total", tower="TOWER_1", reason="PSAP_BUSY") == 10
    assert value(body, "ecm_window_calls", window="5m") == 50
    assert value(body, "ecm_database_up") == 1
    assert value(body, "ecm_exporter_refresh_interval_seconds") == 15
    assert value(body, "ecm_threshold_failure_ratio", level="alert") == 0.05
    assert (
        value(body, "ecm_exporter_query_last_success_timestamp_seconds", query="new_calls")
        == clock.now
    )
    assert "refreshed every 15 s" in body
    check = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True,
                           text=True, timeout=30, check=False)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.strip() == "" and check.stderr.strip() == ""


def test_scrape_serves_the_prepared_exposition_without_the_database(
    test_db: EcmDb, job: RefreshJob, clock: FakeClock, server: MetricsServer
) -> None:
    write_calls(test_db.writer_url, [Call(clock.now, "TOWER_1", 1000)])
    assert job.refresh()
    first = get(server, "/metrics")[2]
    write_calls(test_db.writer_url, [Call(clock.now, "TOWER_1", 1000)])
    # New rows show only after the next refresh: scrapes read the cached text.
    assert get(server, "/metrics")[2] == first
    assert job.refresh()
    assert value(get(server, "/metrics")[2], "ecm_window_calls", window="5m") == 2


def test_gzip_for_scrapers_that_accept_it(job: RefreshJob, server: MetricsServer) -> None:
    assert job.refresh()
    req = urllib.request.Request(
        f"http://127.0.0.1:{server.port}/metrics", headers={"Accept-Encoding": "gzip"}
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.headers["Content-Encoding"] == "gzip"
        assert gzip.decompress(resp.read()).decode() == get(server, "/metrics")[2]


def test_landing_page_health_and_unknown_paths(server: MetricsServer) -> None:
    status, ctype, body = get(server, "/")
    assert status == 200 and "text/html" in ctype
    assert 'href="/metrics"' in body and "database up" in body
    assert get(server, "/healthz")[:1] == (200,)
    assert get(server, "/nope")[0] == 404


def test_head_answers_the_get_headers_without_a_body(
    job: RefreshJob, server: MetricsServer
) -> None:
    assert job.refresh()
    req = urllib.request.Request(f"http://127.0.0.1:{server.port}/metrics", method="HEAD")
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.status == 200 and resp.read() == b""
        assert int(resp.headers["Content-Length"]) == len(job.exposition())


def test_a_port_in_use_ends_the_exporter_with_one_line_and_exit_2(server: MetricsServer) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "exporter", "--listen-address", "127.0.0.1",
         "--port", str(server.port)],
        env={**os.environ, "ECM_DATABASE_URL": "postgresql://ecm@127.0.0.1:1/ecm"},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ecm-exporter: error: "), proc.stderr
    assert str(server.port) in lines[0] and "in use" in lines[0]
