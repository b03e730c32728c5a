"""Real Prometheus, Alertmanager and exporter processes on free loopback ports, for the tests."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests

from stack.pgcluster import free_port

T = TypeVar("T")
START_TIMEOUT_S = 30.0


class Service:
    """One child process with its log file; stop() is safe to call twice."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        port: int,
        *,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.port = port
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL of the service."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the process, appending to its log."""
        full_env = {**os.environ, **(self.env or {})}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, env=full_env
            )

    def log_tail(self, lines: int = 60) -> str:
        """The end of the log, for failure messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def wait_ready(self, path: str, timeout_s: float = START_TIMEOUT_S) -> None:
        """Poll path until it answers 200; fail with the log when the process dies or times out."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                pytest.fail(
                    f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}",
                    pytrace=False,
                )
            with contextlib.suppress(requests.RequestException):
                if requests.get(self.url + path, timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        pytest.fail(
            f"{self.name} not ready within {timeout_s:.0f} s:\n{self.log_tail()}", pytrace=False
        )

    def kill(self) -> None:
        """Kill the process at once, as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        """Terminate politely, kill when it does not stop."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


def start_service(
    name: str,
    make_argv: Callable[[int], Sequence[str]],
    workdir: Path,
    ready_path: str,
    *,
    env: Mapping[str, str] | None = None,
) -> Service:
    """Start a service on a free port and wait until it answers ready_path."""
    port = free_port()
    svc = Service(name, make_argv(port), workdir / f"{name}.log", port, env=env)
    svc.start()
    try:
        svc.wait_ready(ready_path)
    except BaseException:
        svc.stop()
        raise
    return svc


def poll(
    what: str,
    probe: Callable[[], T | None],
    timeout_s: float,
    *,
    interval_s: float = 0.25,
    diagnostics: Callable[[], str] | None = None,
) -> T:
    """Call probe until it returns something other than None; fail naming what was awaited."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = probe()
        if result is not None:
            return result
        if time.monotonic() >= deadline:
            extra = f"\n{diagnostics()}" if diagnostics else ""
            pytest.fail(
                f"timed out after {timeout_s:.0f} s waiting for {what}{extra}", pytrace=False
            )
        time.sleep(interval_s)


def get_json(url: str, **params: Any) -> Any:
    """GET a JSON API, raising on HTTP errors."""
    resp = requests.get(url, params=params, timeout=5)
    resp.raise_for_status()
    return resp.json()
