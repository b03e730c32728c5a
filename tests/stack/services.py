"""Real Prometheus, Alertmanager and exporter processes on free loopback ports, for the tests.

They run under stack/runner.py's Supervisor, as in the local run; these helpers add what tests
need on top: a free port, and a test failure (with the log tail) instead of an EcmError.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests

from ecm_common.errors import EcmError
from stack.pgcluster import free_port
from stack.runner import Child, Supervisor

T = TypeVar("T")
START_TIMEOUT_S = 30.0


def start_service(
    sup: Supervisor,
    name: str,
    make_argv: Callable[[int], Sequence[str]],
    workdir: Path,
    ready_path: str,
    *,
    port: int | None = None,
    env: Mapping[str, str] | None = None,
) -> Child:
    """Start a service on port (default: a free one) and wait until it answers ready_path."""
    port = port or free_port()
    child = Child(
        name,
        list(make_argv(port)),
        workdir / f"{name}.log",
        env=dict(env or {}),
        url=f"http://127.0.0.1:{port}",
        ready_path=ready_path,
    )
    try:
        sup.start(child, wait=False)
        child.wait_ready(START_TIMEOUT_S)
    except EcmError as exc:
        child.stop()
        pytest.fail(str(exc), pytrace=False)
    return child


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
