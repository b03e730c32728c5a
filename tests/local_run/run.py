"""Running `python -m stack` from a test: free ports, waiting, /metrics, leftover processes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, TypeVar

import pytest
import requests

from stack.pgbinaries import embedded_bindir
from stack.pgcluster import free_port
from tests.fixtures.tools import in_ci

DEADLINE_S = 90.0
T = TypeVar("T")


def ports() -> dict[str, int]:
    """A free port for every service the local run starts."""
    return {name: free_port() for name in ("exporter", "gen", "prom", "am", "sink")}


def start_stack(
    state: Path, port: dict[str, int], *extra: str, stdout: int | IO[str] = subprocess.PIPE
) -> subprocess.Popen[str]:
    """`python -m stack` on the given ports, with its own database (no ECM_DATABASE_URL)."""
    env = {k: v for k, v in os.environ.items() if k not in ("ECM_DATABASE_URL", "ECM_POSTGRES")}
    argv = [sys.executable, "-m", "stack", "--state-dir", str(state), "--rate", "50"]
    for flag, name in (
        ("--exporter-port", "exporter"),
        ("--generator-metrics-port", "gen"),
        ("--prometheus-port", "prom"),
        ("--alertmanager-port", "am"),
        ("--sink-port", "sink"),
    ):
        argv += [flag, str(port[name])]
    return subprocess.Popen(
        [*argv, *extra], stdout=stdout, stderr=subprocess.STDOUT, text=True, env=env
    )


def wait_for(
    predicate: Callable[[], T], what: str, proc: subprocess.Popen[str], timeout: float = DEADLINE_S
) -> T:
    """Poll until predicate is truthy; fail naming what did not happen, or if the run ended."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"ecm-stack exited early with {proc.returncode}"
        try:
            last = predicate()
            if last:
                return last
        except requests.RequestException as exc:
            last = exc
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}; last: {last!r}")


def exporter_calls(port: int) -> float:
    """The exporter's 5-minute call count from its /metrics (0 before the first refresh)."""
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    m = re.search(r'^ecm_window_calls\{window="5m"\} (\S+)$', text, re.M)
    return float(m.group(1)) if m else 0.0


def cluster_dir(output: str) -> Path:
    """The throwaway cluster's directory, from the local run's log line."""
    m = re.search(r"data in (\S+)/data\)", output)
    assert m, output
    return Path(m.group(1))


def processes_mentioning(text: str) -> list[str]:
    """Command lines of running processes that contain text."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in args:
            found.append(args)
    return found


def require_embedded() -> Path:
    """pgserver's bin directory, or skip (fail in CI) saying how to install it."""
    bindir = embedded_bindir()
    if bindir is None:
        reason = "the embedded PostgreSQL is not installed (pip install -e '.[embedded]')"
        if in_ci():
            pytest.fail(reason + " and CI may not skip", pytrace=False)
        pytest.skip(reason)
    return bindir
