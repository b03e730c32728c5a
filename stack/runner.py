"""Start, watch and stop the child processes of a local run."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 15.0


@dataclass
class Child:
    """One supervised process with its log file."""

    name: str
    argv: list[str]
    logfile: Path
    env: dict[str, str] = field(default_factory=dict)
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

    def stop(self) -> None:
        """SIGTERM, wait, then SIGKILL; close the log."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in %.0f s; killing it", self.name, STOP_TIMEOUT_S)
                self.proc.kill()
                self.proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def tail(self, lines: int = 15) -> str:
        """The end of the log file."""
        with contextlib.suppress(OSError):
            return "\n".join(self.logfile.read_text(errors="replace").splitlines()[-lines:])
        return ""


class Supervisor:
    """Children started in order, stopped in reverse; one that dies is reported, not restarted."""

    def __init__(self) -> None:
        self.children: list[Child] = []

    def start(self, child: Child) -> Child:
        """Start a child and remember it."""
        child.start()
        self.children.append(child)
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
