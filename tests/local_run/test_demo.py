"""The README's first command: the whole stack comes up on a fresh database and Ctrl-C ends it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from stack.pgcluster import find_bindir
from tests.fixtures.tools import in_ci, require_binary
from tests.local_run.run import cluster_dir, processes_mentioning, start_stack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_demo_runs_everything_and_stops_cleanly(tmp_path: Path) -> None:
    bindir = find_bindir()
    if bindir is None:
        reason = "no PostgreSQL server binaries for the local database"
        if in_ci():
            pytest.fail(reason)
        pytest.skip(reason)
    require_binary("prometheus", "prometheus")
    require_binary("prometheus-alertmanager", "prometheus-alertmanager")
    run = start_stack(tmp_path)
    prom = f"http://127.0.0.1:{run.port['prom']}"
    try:
        assert run.wait_for(run.exporter_calls, "calls counted by the exporter") > 0

        def targets_up() -> bool:
            r = requests.get(f"{prom}/api/v1/targets", timeout=2).json()
            health = {t["labels"]["job"]: t["health"] for t in r["data"]["activeTargets"]}
            jobs = {"ecm-exporter", "ecm-generator", "prometheus", "alertmanager", "ecm-pager"}
            return set(health) >= jobs and set(health.values()) == {"up"}

        run.wait_for(targets_up, "every Prometheus target up")
    finally:
        out = run.interrupt()
    assert run.proc.returncode == 0, out
    assert "ECM is running" in out
    assert prom in out
    # With server binaries on the machine, auto mode uses them and says so.
    assert re.search(rf"^ +postgres +system binaries at {re.escape(str(bindir))}, ", out, re.M)
    assert not cluster_dir(out).exists(), "the throwaway cluster was not removed"
    for name in ("generator.log", "exporter.log", "prometheus.log", "alertmanager.log"):
        assert (run.state / name).exists()
    assert processes_mentioning(str(run.state)) == [], "children left running after Ctrl-C"


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
