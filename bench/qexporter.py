"""The generic SQL exporter running the same window queries, for comparison (never a dependency)."""

from __future__ import annotations

import contextlib
import logging
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bench import measure, queries
from stack.pgcluster import free_port

log = logging.getLogger(__name__)

PACKAGE = "query-exporter"
VENV = Path(tempfile.gettempdir()) / "ecm-bench-query-exporter"
INSTALL_TIMEOUT_S = 600
CYCLES = 3
READY_TIMEOUT_S = 180.0
_LATENCY = re.compile(rb'^query_latency_(sum|count)\{[^}]*query="([^"]+)"[^}]*\} (\S+)$', re.M)
_SUCCESS = re.compile(rb'^queries_total\{[^}]*status="success"[^}]*\} (\S+)$', re.M)


@dataclass(frozen=True)
class QeResult:
    """What the comparison measured, or why it could not run."""

    available: bool
    reason: str = ""
    version: str = ""
    refresh_s: float = 0.0
    scrape: measure.ScrapeStats | None = None
    rss_bytes: int = 0
    queries: int = 0


def binary() -> Path:
    """Where the benchmark's private install puts the command."""
    return VENV / "bin" / "query-exporter"


def ensure_installed(allow_install: bool) -> tuple[Path | None, str]:
    """The command, installing it into a private venv when allowed; else None and why."""
    found = shutil.which("query-exporter")
    if found:
        return Path(found), ""
    if binary().exists():
        return binary(), ""
    if not allow_install:
        return None, f"not installed (the full run installs it into {VENV})"
    log.info("installing %s into %s", PACKAGE, VENV)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, capture_output=True)
        proc = subprocess.run(
            [str(VENV / "bin" / "pip"), "install", "--quiet", PACKAGE, "psycopg[binary]"],
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"cannot create its venv: {exc}"
    if proc.returncode != 0 or not binary().exists():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return None, f"pip install {PACKAGE} failed: {tail[0][:160]}"
    return binary(), ""


def version(cmd: Path) -> str:
    """The installed version, as the command reports it."""
    proc = subprocess.run([str(cmd), "--version"], capture_output=True, text=True, check=False)
    return (proc.stdout or proc.stderr).strip().split()[-1] if proc.returncode == 0 else "?"


def config(url: str, windows: dict[str, int], interval_s: float) -> dict[str, Any]:
    """Its YAML configuration: the same overall, per-tower and per-reason window queries."""
    dsn = url.replace("postgresql://", "postgresql+psycopg://", 1)
    params = [{"window": label, "seconds": seconds} for label, seconds in windows.items()]
    gauges = {
        "qe_window_calls": ["window"],
        "qe_window_failed_calls": ["window"],
        "qe_window_latency_avg_seconds": ["window"],
        "qe_window_latency_p95_seconds": ["window"],
        "qe_tower_window_calls": ["window", "tower"],
        "qe_tower_window_failed_calls": ["window", "tower"],
        "qe_tower_window_latency_p95_seconds": ["window", "tower"],
        "qe_window_reason_failed_calls": ["window", "reason"],
    }
    metrics = {
        name: {"type": "gauge", "description": name, "labels": labels}
        for name, labels in gauges.items()
    }

    def query(sql: str, names: list[str]) -> dict[str, Any]:
        return {
            "databases": ["ecm"],
            "metrics": names,
            "sql": sql,
            "interval": interval_s,
            "parameters": params,
        }

    return {
        "databases": {"ecm": {"dsn": dsn}},
        "metrics": metrics,
        "queries": {
            "overall": query(queries.QE_OVERALL, list(gauges)[:4]),
            "per_tower": query(queries.QE_PER_TOWER, list(gauges)[4:7]),
            "per_reason": query(queries.QE_PER_REASON, ["qe_window_reason_failed_calls"]),
        },
    }


def refresh_seconds(body: bytes, n_windows: int) -> tuple[float, int]:
    """One refresh (every query for every window) from its own latency histogram of executions."""
    sums: dict[bytes, float] = {}
    counts: dict[bytes, float] = {}
    for kind, name, value in _LATENCY.findall(body):
        (sums if kind == b"sum" else counts)[name] = float(value)
    # Each query runs once per window (one parameter set each) under the query's own label.
    total = sum(sums[q] / counts[q] * n_windows for q in sums if counts.get(q))
    return total, len(sums)


def run(cmd: Path, url: str, windows: dict[str, int], scrapes: int) -> QeResult:
    """Run it against the database until every query ran CYCLES times, then scrape it."""
    work = Path(tempfile.mkdtemp(prefix="ecm-bench-qe-"))
    cfg = work / "config.yaml"
    # Back to back: the interval only has to be shorter than one cycle of queries.
    cfg.write_text(yaml.safe_dump(config(url, windows, interval_s=1.0)), encoding="utf-8")
    port = free_port()
    log_path = work / "query-exporter.log"
    n_queries = 3
    with open(log_path, "wb") as log_fh:
        proc = subprocess.Popen(
            [str(cmd), "--config", str(cfg), "-H", "127.0.0.1", "-p", str(port), "-L", "warning"],
            stdout=log_fh,
            stderr=subprocess.STDOUT,
        )
    try:

        def ready(body: bytes) -> bool:
            done = [float(v) for v in _SUCCESS.findall(body)]
            return len(done) >= n_queries and min(done) >= CYCLES * len(windows)

        try:
            body = measure.wait_http("127.0.0.1", port, READY_TIMEOUT_S, ready)
        except TimeoutError as exc:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] or [""]
            return QeResult(False, reason=f"did not run its queries: {exc}; log: {tail[0][:160]}")
        refresh, counted = refresh_seconds(body, len(windows))
        stats = measure.scrape_latency("127.0.0.1", port, scrapes, use_gzip=True)
        rss = measure.rss_bytes(proc.pid)
        return QeResult(
            True,
            version=version(cmd),
            refresh_s=refresh,
            scrape=stats,
            rss_bytes=rss,
            queries=counted,
        )
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(work, ignore_errors=True)
        time.sleep(0)
