"""Bad scenario files: one line naming the phase and the field, exit 2, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.postgres import EcmDb
from tests.generator.helpers import PAST_ISO, SCENARIOS, count_calls, run_gen

pytestmark = pytest.mark.integration

GOOD_PHASE = """
  - name: {name}
    start: 1m
    duration: 5m
    targets: {targets}
    effects: {effects}
"""


def scenario(
    tmp: Path, *, targets: str = "{all: true}", effects: str = "{failure_prob: 0.5}", top: str = ""
) -> Path:
    path = tmp / "s.yaml"
    path.write_text(
        "name: t\ndescription: test\n"
        + top
        + "phases:"
        + GOOD_PHASE.format(name="fine", targets="{all: true}", effects="{}")
        + GOOD_PHASE.format(name="broken", targets=targets, effects=effects)
    )
    return path


@pytest.mark.parametrize(
    ("kwargs", "needles"),
    [
        ({"targets": "{towers: [TOWER_77]}"}, ["phase 'broken'", "targets.towers", "TOWER_77"]),
        ({"effects": "{failure_prob: 1.5}"}, ["phase 'broken'", "effects.failure_prob"]),
        ({"effects": "{reason: LOST_IN_SPACE}"}, ["phase 'broken'", "effects.reason"]),
        ({"effects": "{latency_multipler: 2}"}, ["phase 'broken'", "latency_multipler"]),
        ({"targets": "{share: 0.2, all: true}"}, ["phase 'broken'", "exactly one"]),
        ({"top": "alerts: [EcmMadeUp]\n"}, ["alerts", "EcmMadeUp"]),
    ],
)
def test_bad_scenario_is_one_line_exit_2_and_writes_nothing(
    kwargs: dict[str, str], needles: list[str], test_db: EcmDb, tmp_path: Path
) -> None:
    path = scenario(tmp_path, **kwargs)
    proc = run_gen(
        "--scenario",
        str(path),
        "--count",
        "10",
        "--start",
        PAST_ISO,
        "--database-url",
        test_db.url,
        tmp=tmp_path,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0]
    assert count_calls(test_db.url) == 0


def test_malformed_yaml(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nphases: [\n")
    proc = run_gen("--scenario", str(path), "--check-only", tmp=tmp_path)
    assert proc.returncode == 2
    assert "not valid YAML" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_missing_scenario_file(tmp_path: Path) -> None:
    proc = run_gen("--scenario", str(tmp_path / "nope.yaml"), "--check-only", tmp=tmp_path)
    assert proc.returncode == 2
    assert "nope.yaml" in proc.stderr and "Traceback" not in proc.stderr


def test_phase_past_scenario_end(tmp_path: Path) -> None:
    path = scenario(tmp_path, top="duration: 3m\n")
    proc = run_gen("--scenario", str(path), "--check-only", tmp=tmp_path)
    assert proc.returncode == 2
    assert "phase 'fine'" in proc.stderr and "duration" in proc.stderr


def test_backfill_bad_range(tmp_path: Path) -> None:
    proc = run_gen(
        "backfill",
        "--from",
        "1h",
        "--to",
        "2h",
        "--database-url",
        "postgresql://x@127.0.0.1:1/x",
        tmp=tmp_path,
    )
    assert proc.returncode == 2
    assert "--to" in proc.stderr


def test_check_only_lists_targets(tmp_path: Path) -> None:
    proc = run_gen("--scenario", str(SCENARIOS / "tower-outage.yaml"), "--check-only", tmp=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "tower-3-down" in proc.stdout and "TOWER_3" in proc.stdout
    assert "configuration OK" in proc.stdout
