"""Driving the ECM exporter: a refresh job on an injected clock, and reading what it publishes."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from ecm_common.db import URL_ENV
from exporter.assess import Thresholds
from exporter.config import parse_window
from exporter.refresh import RefreshJob

REFRESH_INTERVAL_S = 15.0


@dataclass
class FakeClock:
    """Wall-clock seconds that move only when the benchmark says so."""

    now: float

    def __call__(self) -> float:
        """The current simulated time."""
        return self.now

    def advance(self, seconds: float) -> float:
        """Move forward; returns the new time."""
        self.now += seconds
        return self.now


def make_job(url: str, windows: tuple[str, ...], clock: FakeClock) -> RefreshJob:
    """A refresh job as the exporter builds it, with its own registry and the given clock."""
    return RefreshJob(
        url,
        [parse_window(w) for w in windows],
        Thresholds(),
        REFRESH_INTERVAL_S,
        CollectorRegistry(auto_describe=False),
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
