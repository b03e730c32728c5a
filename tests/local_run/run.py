"""Running `python -m stack` from a test: free ports, waiting, /metrics, leftover processes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest
import requests

from stack.pgbinaries import embedded_bindir
from stack.pgcluster import free_port
from tests.fixtures.tools import in_ci

DEADLINE_S = 90.0
STOP_TIMEOUT_S = 60.0
T = TypeVar("T")


@dataclass
class LocalRun:
    """One `python -m stack` process, its ports, state directory and console output."""

    proc: subprocess.Popen[bytes]
    port: dict[str, int]
    state: Path
    out: Path

    def output(self) -> str:
        """Everything the run printed so far (log lines and banner)."""
        return self.out.read_text(errors="replace")

    def wait_for(self, predicate: Callable[[], T], what: str, timeout: float = DEADLINE_S) -> T:
        """Poll until predicate is truthy; fail naming what did not happen, or if the run ended."""
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"ecm-stack exited early with {self.proc.returncode}:\n{self.output()}")
            try:
                last = predicate()
                if last:
                    return last
            except requests.RequestException as exc:
                last = exc
            time.sleep(0.5)
        pytest.fail(f"timed out waiting for {what}; last: {last!r}\n{self.output()}")

    def banner(self) -> str:
        """The output once the run says it is running."""

        def printed() -> str:
            text = self.output()
            return text if "ECM is running" in text else ""

        return self.wait_for(printed, "the banner")

    def interrupt(self) -> str:
        """Ctrl-C, as a user would press it; returns the whole output once the run has ended."""
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=STOP_TIMEOUT_S)
        return self.output()

    def exporter_calls(self) -> float:
        """The exporter's 5-minute call count from its /metrics (0 before the first refresh)."""
        url = f"http://127.0.0.1:{self.port['exporter']}/metrics"
        m = re.search(
            r'^ecm_window_calls\{window="5m"\} (\S+)$', requests.get(url, timeout=2).text, re.M
        )
        return float(m.group(1)) if m else 0.0


def start_stack(tmp_path: Path, *extra: str) -> LocalRun:
    """`python -m stack` on free ports with its own database (no ECM_DATABASE_URL)."""
    names = ("exporter", "gen", "prom", "am", "sink", "pager", "api", "broadcast")
    port = {name: free_port() for name in names}
    state = tmp_path / "state"
    env = {k: v for k, v in os.environ.items() if k not in ("ECM_DATABASE_URL", "ECM_POSTGRES")}
    argv = [sys.executable, "-m", "stack", "--state-dir", str(state), "--rate", "50"]
    for flag, name in (
        ("--exporter-port", "exporter"),
        ("--generator-metrics-port", "gen"),
        ("--prometheus-port", "prom"),
        ("--alertmanager-port", "am"),
        ("--sink-port", "sink"),
        ("--pager-port", "pager"),
        ("--api-port", "api"),
        ("--broadcast-port", "broadcast"),
    ):
        argv += [flag, str(port[name])]
    out = tmp_path / "stack.out"
    with open(out, "wb") as fh:
        proc = subprocess.Popen([*argv, *extra], stdout=fh, stderr=subprocess.STDOUT, env=env)
    return LocalRun(proc, port, state, out)


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
