"""The README's first command: the whole stack comes up on a fresh database and Ctrl-C ends it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
import requests

from stack.pgcluster import find_bindir, free_port
from tests.fixtures.tools import in_ci, require_binary

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

DEADLINE_S = 90.0
T = TypeVar("T")


def _wait_for(
    predicate: Callable[[], T], what: str, proc: subprocess.Popen[str], timeout: float = DEADLINE_S
) -> T:
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


def test_demo_runs_everything_and_stops_cleanly(tmp_path: Path) -> None:
    if find_bindir() is None:
        reason = "no PostgreSQL server binaries for the local database"
        if in_ci():
            pytest.fail(reason)
        pytest.skip(reason)
    require_binary("prometheus", "prometheus")
    require_binary("prometheus-alertmanager", "prometheus-alertmanager")
    ports = {name: free_port() for name in ("exporter", "gen", "prom", "am", "sink")}
    env = {k: v for k, v in os.environ.items() if k != "ECM_DATABASE_URL"}
    state = tmp_path / "state"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stack",
            "--state-dir",
            str(state),
            "--rate",
            "50",
            "--exporter-port",
            str(ports["exporter"]),
            "--generator-metrics-port",
            str(ports["gen"]),
            "--prometheus-port",
            str(ports["prom"]),
            "--alertmanager-port",
            str(ports["am"]),
            "--sink-port",
            str(ports["sink"]),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:

        def exporter_counts() -> float:
            text = requests.get(f"http://127.0.0.1:{ports['exporter']}/metrics", timeout=2).text
            m = re.search(r'^ecm_window_calls\{window="5m"\} (\S+)$', text, re.M)
            return float(m.group(1)) if m else 0.0

        assert _wait_for(exporter_counts, "calls counted by the exporter", proc) > 0

        def targets_up() -> bool:
            r = requests.get(f"http://127.0.0.1:{ports['prom']}/api/v1/targets", timeout=2).json()
            health = {t["labels"]["job"]: t["health"] for t in r["data"]["activeTargets"]}
            return len(health) == 4 and set(health.values()) == {"up"}

        _wait_for(targets_up, "all four Prometheus targets up", proc)
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "ECM is running" in out
    assert f"http://127.0.0.1:{ports['prom']}" in out
    db_dir = re.search(r"data in (\S+)/data\)", out)
    assert db_dir, out
    assert not Path(db_dir.group(1)).exists(), "the throwaway cluster was not removed"
    for name in ("generator.log", "exporter.log", "prometheus.log", "alertmanager.log"):
        assert (state / name).exists()
    assert _processes_mentioning(str(state)) == [], "children left running after Ctrl-C"


def _processes_mentioning(text: str) -> list[str]:
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


def test_bad_option_is_one_line_and_exit_2() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "stack", "--rate", "-3"], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "rate" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_a_scenario_keeps_its_own_baseline_unless_overridden() -> None:
    from ecm_common.config import load_config
    from stack.__main__ import generator_args
    from stack.config import StackConfig

    def args(**flags: object) -> list[str]:
        return generator_args(load_config(StackConfig, flags=flags, environ={}))

    plain = args()
    assert plain[plain.index("--rate") + 1] == "5.0"
    assert plain[plain.index("--failure-prob") + 1] == "0.005"
    scenario = args(scenario="scenarios/tower-outage.yaml")
    assert "--rate" not in scenario and "--failure-prob" not in scenario
    assert scenario[scenario.index("--scenario") + 1] == "scenarios/tower-outage.yaml"
    overridden = args(scenario="scenarios/tower-outage.yaml", rate=20)
    assert overridden[overridden.index("--rate") + 1] == "20.0"
