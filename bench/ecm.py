"""Driving the ECM exporter: a refresh job on an injected clock, and reading what it publishes."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from ecm_common.db import URL_ENV
from exporter.assess import Thresholds
from exporter.config import parse_window
from exporter.refresh import RefreshJob

REFRESH_INTERVAL_S = 15.0


@dataclass
class FakeClock:
    """An ecm_common.clock.Clock whose wall-clock seconds move only when the benchmark says so;
    monotonic time is real, so the exporter's own durations are measured."""

    now: float

    def time(self) -> float:
        """The current simulated time."""
        return self.now

    def monotonic(self) -> float:
        """time.monotonic()."""
        return time.monotonic()

    def wait(self, seconds: float, event: threading.Event) -> bool:
        """Simulated time passes at once."""
        if not event.is_set():
            self.advance(max(seconds, 0.0))
        return event.is_set()

    def advance(self, seconds: float) -> float:
        """Move forward; returns the new time."""
        self.now += seconds
        return self.now


def make_job(url: str, windows: tuple[str, ...], clock: FakeClock) -> RefreshJob:
    """A refresh job as the exporter builds it, on the given clock."""
    return RefreshJob(
        url,
        [parse_window(w) for w in windows],
        Thresholds(),
        REFRESH_INTERVAL_S,
        clock=clock,
    )


@contextlib.contextmanager
def job(url: str, windows: tuple[str, ...], clock: FakeClock) -> Iterator[RefreshJob]:
    """A refresh job closed afterwards."""
    j = make_job(url, windows, clock)
    try:
        yield j
    finally:
        j.close()


def samples(exposition: bytes, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Every sample of one metric in an exposition, keyed by its sorted labels."""
    out: dict[tuple[tuple[str, str], ...], float] = {}
    for family in text_string_to_metric_families(exposition.decode()):
        for s in family.samples:
            if s.name == name:
                out[tuple(sorted(s.labels.items()))] = float(s.value)
    return out


def window_value(exposition: bytes, name: str, window: str) -> float | None:
    """A window gauge's value, or None when it is not published."""
    return samples(exposition, name).get((("window", window),))


def tower_values(exposition: bytes, name: str, window: str) -> dict[str, float]:
    """A per-tower window gauge, tower -> value."""
    out = {}
    for labels, value in samples(exposition, name).items():
        d = dict(labels)
        if d.get("window") == window and "tower" in d:
            out[d["tower"]] = value
    return out


def serve_process(url: str, port: int, windows: tuple[str, ...]) -> subprocess.Popen[bytes]:
    """The exporter as users run it (its own process, real clock), on 127.0.0.1:port."""
    args = [sys.executable, "-m", "exporter", "--port", str(port), "--listen-address", "127.0.0.1"]
    args += ["--windows", ",".join(windows), "--interval", str(REFRESH_INTERVAL_S)]
    args += ["--log-level", "WARNING"]
    env = {**os.environ, URL_ENV: url}
    return subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """Terminate a child and reap it."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
