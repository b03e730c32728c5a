"""Start, watch and stop child processes: the one supervisor of the local run and the tests.

A child writes stdout and stderr to its log file; a failure to start or to become ready is one
EcmError that carries the end of that log. Children stop in reverse start order: SIGTERM, a
bounded wait, then SIGKILL.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import requests

from ecm_common.errors import EcmError
from ecm_common.net import check_free

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 15.0
READY_TIMEOUT_S = 60.0
READY_POLL_S = 0.2


@dataclass
class Child:
    """One supervised process with its log file; url is where it answers HTTP ("" if not)."""

    name: str
    argv: list[str]
    logfile: Path
    env: dict[str, str] = field(default_factory=dict)
    url: str = ""
    ready_path: str = "/"
    proc: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None

    def start(self) -> None:
        """Launch the process with stdout and stderr going to its log file."""
        self._log = open(self.logfile, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            self.argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.env},
            # Own process group: Ctrl-C reaches only us, and we stop the children in order.
            start_new_session=True,
        )
        log.info("started %s (pid %d), log: %s", self.name, self.proc.pid, self.logfile)

    def exited(self) -> int | None:
        """The exit status if the process has ended, else None."""
        return None if self.proc is None else self.proc.poll()

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Poll url + ready_path until it answers 200; EcmError with the log if it dies or not."""
        if not self.url:
            raise ValueError(f"{self.name} has no URL to wait for")
        wait_http(self.url + self.ready_path, self, timeout_s)

    def stop(self) -> None:
        """SIGTERM, wait, then SIGKILL; close the log. Safe to call twice."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in %.0f s; killing it", self.name, STOP_TIMEOUT_S)
                self.kill()
        self._close_log()

    def kill(self) -> None:
        """SIGKILL at once, as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def tail(self, lines: int = 15) -> str:
        """The end of the log file."""
        with contextlib.suppress(OSError):
            return "\n".join(self.logfile.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


class Supervisor:
    """Children started in order, stopped in reverse; one that dies is reported, not restarted."""

    def __init__(self) -> None:
        self.children: list[Child] = []

    def start(self, child: Child, *, wait: bool = False) -> Child:
        """Start a child and remember it; wait=True also waits until it is ready."""
        self.children.append(child)
        child.start()
        if wait:
            child.wait_ready()
        return child

    def watch(self, poll_s: float = 1.0) -> Child | None:
        """Block until a child exits (returned) or a KeyboardInterrupt arrives."""
        while True:
            for child in self.children:
                if child.exited() is not None:
                    return child
            time.sleep(poll_s)

    def stop_all(self) -> None:
        """Stop every child, last started first."""
        for child in reversed(self.children):
            child.stop()

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop_all()


def check_port_free(port: int, what: str) -> None:
    """Fail early with a clear line when a port is taken."""
    check_free("0.0.0.0", port, what)


def wait_http(url: str, child: Child, timeout_s: float = READY_TIMEOUT_S) -> None:
    """Poll url until it answers 200, or fail showing the child's log."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if child.exited() is not None:
            raise EcmError(f"{child.name} exited with status {child.exited()}:\n{child.tail()}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(url, timeout=2).status_code == 200:
                return
        time.sleep(READY_POLL_S)
    raise EcmError(
        f"{child.name} did not answer at {url} within {timeout_s:.0f} s:\n{child.tail()}"
    )
