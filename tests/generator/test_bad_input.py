"""Bad scenario files: one line naming the phase and the field, exit 2, nothing written."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from generator.__main__ import main as gen_main
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


# Every class of bad input from issue 8 section 3: one line on stderr, exit 2, before anything
# runs. The CLI's main() runs in-process (fast); the subprocess tests below show it is the same
# for a user.
BIG = "9" * 5000
SECRET = "hunter2-do-not-show"


@pytest.fixture
def gen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., tuple[int, str, str]]:
    """Run generator main(argv) with spool paths under tmp; returns (status, stdout, stderr)."""
    for key in [k for k in os.environ if k.startswith("ECM_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))

    def run(*args: str) -> tuple[int, str, str]:
        status = gen_main(list(args))
        out = capsys.readouterr()
        return status, out.out, out.err

    return run


def write(tmp: Path, name: str, data: str | bytes) -> str:
    """A file under tmp with this content; its path."""
    path = tmp / name
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data, encoding="utf-8")
    return str(path)


def phases(n: int, overlap: bool = False) -> str:
    """A scenario with n phases, one after the other (or each lasting to the end)."""
    length = 10**6 if overlap else 60
    body = "".join(f"  - {{name: p{i}, start: {i * 60}, duration: {length}}}\n" for i in range(n))
    return f"name: t\ndescription: d\nphases:\n{body}"


CONFIG_CASES: dict[str, tuple[str | bytes, str]] = {
    "not UTF-8": (b"rate: 5\n\xff\xfe\n", "not UTF-8"),
    "list for a number": ("rate: [1]\n", "rate"),
    "null for a number": ("rate: null\n", "rate"),
    "list as a weight": ("reason_weights: {CORE_TIMEOUT: [1]}\n", "CORE_TIMEOUT"),
    "infinite latency": ("latency_median_ms: .inf\n", "latency_median_ms"),
    "NaN weight": ("tower_weights: {TOWER_1: .nan}\n", "TOWER_1"),
    "duplicate key": ("rate: 1\nrate: 2\n", "duplicate key 'rate'"),
    "alias bomb": (
        "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\n"
        "c: [*b, *b, *b, *b, *b, *b, *b, *b]\n",
        "aliases",
    ),
    "too large": ("# " + "x" * 300_000 + "\n", "larger than"),
    "too deep": ("rate: " + "[" * 40 + "]" * 40 + "\n", "nested deeper"),
    "year 0": ("start: 0000-01-01\n", "cannot be read"),
}


@pytest.mark.parametrize("case", CONFIG_CASES, ids=str)
def test_bad_config_file_is_one_line_exit_2(
    case: str, gen: Callable[..., tuple[int, str, str]], tmp_path: Path
) -> None:
    content, needle = CONFIG_CASES[case]
    path = write(tmp_path, "gen.yml", content)
    status, out, err = gen("--config", path, "--check-only")
    assert status == 2, out + err
    assert len(err.strip().splitlines()) == 1, err
    assert needle in err and path in err
    assert len(err) < 400


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--rate", "inf"), "rate"),
        (("--rate", "nan"), "rate"),
        (("--speed", "inf"), "speed"),
        (("--latency-median-ms", "nan"), "latency_median_ms"),
        (("--latency-median-ms", "700000"), "latency_median_ms"),
        (("--reason-weights", "CORE_TIMEOUT=inf"), "reason_weights"),
        (("--failed-latency-ms", "PSAP_BUSY=nan"), "failed_latency_ms"),
        (("--tower-weights", "TOWER_1=1e999"), "tower_weights"),
        (("--duration", "99999999999d"), "duration"),
        (("--flush-interval", "1h"), "flush_interval"),
        (("--retry-max-delay", "1d"), "retry_max_delay"),
        (("--retry-base-delay", "10", "--retry-max-delay", "5"), "retry_base_delay"),
        (("--queue-size", "1e12"), "queue_size"),
        (("--start", "9999-12-31T23:59:59"), "start"),
        (("--database-url", "mysql://x"), "database_url"),
        (("--spool-dir", "/etc/hostname/spool"), "spool_dir"),
        (("--dead-letter-file", "/etc/hostname/dl.jsonl"), "dead_letter_file"),
        (("backfill", "--from", "99999999d"), "--from"),
        (("backfill", "--from", "1h", "--to", "2999-01-01"), "future"),
        (("backfill", "--from", "11000d"), "--from"),
        (("init-db", "--exporter-password", "x"), "unrecognized arguments"),
        (("init-db", "--generator-password", "x"), "unrecognized arguments"),
    ],
)
def test_bad_value_fails_check_only_with_one_line(
    args: tuple[str, ...], needle: str, gen: Callable[..., tuple[int, str, str]]
) -> None:
    """Non-finite, out-of-range or unusable values never pass --check-only."""
    status, out, err = gen(*args, "--check-only")
    assert status == 2, out + err
    assert len(err.strip().splitlines()) == 1, err
    assert needle in err


def test_huge_value_is_not_echoed_whole(gen: Callable[..., tuple[int, str, str]]) -> None:
    status, _, err = gen("--rate", BIG, "--check-only")
    assert status == 2
    assert "rate" in err and len(err) < 300


def test_database_url_password_is_never_echoed(
    gen: Callable[..., tuple[int, str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ECM_DATABASE_URL", f"postgresql://u:{SECRET}@h:port/db")
    status, _, err = gen("--check-only")
    assert status == 2
    assert "database_url" in err and SECRET not in err


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://u:{SECRET}@h/db",
        f"host=h password={SECRET}",
        f"postgresql://h/db?password={SECRET}",
    ],
)
def test_a_password_on_the_command_line_is_refused(
    gen: Callable[..., tuple[int, str, str]], url: str
) -> None:
    """Any user can read a process's arguments: a password belongs in the environment or a file."""
    status, _, err = gen("--database-url", url, "--check-only")
    assert status == 2
    assert err.count("\n") == 1 and SECRET not in err
    assert "--database-url carries a password" in err and "ECM_DATABASE_URL" in err


SCENARIO_CASES: dict[str, tuple[str | bytes, str]] = {
    "infinite start": (
        "name: t\ndescription: d\nphases:\n  - {name: a, start: .inf, duration: 1m}\n",
        "start",
    ),
    "NaN failure_prob": (
        "name: t\ndescription: d\nphases:\n"
        "  - {name: a, duration: 1m, effects: {failure_prob: .nan}}\n",
        "failure_prob",
    ),
    "infinite reason weight": (
        "name: t\ndescription: d\nphases:\n"
        "  - {name: a, duration: 1m, effects: {reasons: {CORE_TIMEOUT: .inf}}}\n",
        "CORE_TIMEOUT",
    ),
    "huge rate multiplier": (
        "name: t\ndescription: d\nphases:\n"
        "  - {name: a, duration: 1m, effects: {rate_multiplier: 1e9}}\n",
        "rate_multiplier",
    ),
    "baseline list for a number": (
        "name: t\ndescription: d\nduration: 1m\nbaseline: {rate: [5]}\n",
        "rate",
    ),
    "baseline NaN": (
        "name: t\ndescription: d\nduration: 1m\nbaseline: {latency_sigma: .nan}\n",
        "latency_sigma",
    ),
    "duplicate key": ("name: t\nname: u\ndescription: d\nduration: 1m\n", "duplicate key 'name'"),
    "not UTF-8": (b"name: t\xff\n", "not UTF-8"),
    "too many phases": (phases(1001), "phases"),
    "phases overlapping everywhere": (phases(400, overlap=True), "overlap"),
    "duration beyond ten years": ("name: t\ndescription: d\nduration: 99999d\n", "duration"),
}


@pytest.mark.parametrize("case", SCENARIO_CASES, ids=str)
def test_bad_scenario_field_is_one_line_exit_2(
    case: str, gen: Callable[..., tuple[int, str, str]], tmp_path: Path
) -> None:
    content, needle = SCENARIO_CASES[case]
    path = write(tmp_path, "s.yaml", content)
    status, out, err = gen("--scenario", path, "--check-only")
    assert status == 2, out + err
    assert len(err.strip().splitlines()) == 1, err
    assert needle in err


def test_a_thousand_phases_pass(gen: Callable[..., tuple[int, str, str]], tmp_path: Path) -> None:
    """The bound is not below what a long scenario needs."""
    status, out, err = gen("--scenario", write(tmp_path, "s.yaml", phases(1000)), "--check-only")
    assert status == 0, err
    assert "configuration OK" in out


def test_one_duration_syntax_everywhere(gen: Callable[..., tuple[int, str, str]]) -> None:
    status, _, err = gen("--duration", "1h30m", "--flush-interval", "500ms", "--check-only")
    assert status == 0, err
    status, _, err = gen("backfill", "--from", "1d2h", "--to", "1h30m", "--check-only")
    assert status == 0, err


def test_as_a_user_sees_it(tmp_path: Path) -> None:
    """The same refusals in a real process: one line, exit 2, no traceback."""
    bad = write(tmp_path, "bad.yml", b"\xff\xfe")
    for args in (("--config", bad), ("--rate", "inf"), ("--duration", "99999999999d")):
        proc = run_gen(*args, "--check-only", tmp=tmp_path)
        assert proc.returncode == 2, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_metrics_port_in_use_is_one_line_exit_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = run_gen(
            "--metrics-port", str(port), "--count", "1",
            "--database-url", "postgresql://x@127.0.0.1:1/x", tmp=tmp_path,
        )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert f"metrics_port: cannot listen on 0.0.0.0:{port}" in proc.stderr
