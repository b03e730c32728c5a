"""The command line as a user runs it: --once report, exit statuses, bad input."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from exporter import __main__ as exporter_cli
from stack.pgcluster import free_port
from tests.exporter.helpers import Call, percentile_cont, write_calls
from tests.fixtures.postgres import EcmDb

pytestmark = pytest.mark.integration

LINE = re.compile(
    r"^\[(OK|WARN|ALERT)\] last_(\d+)m total=(\d+) failed=(\d+) failure_rate=(\d+\.\d)% "
    r"avg_latency=(\d+)ms p95=(\d+)ms$"
)
# The seed's example: 200 calls, 38 failed, TOWER_5 failing 11 of 41.
SEED_TOWERS = {"TOWER_5": (41, 11), "TOWER_1": (40, 8), "TOWER_2": (40, 7), "TOWER_3": (40, 6),
               "TOWER_4": (39, 6)}  # fmt: skip


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """python -m exporter with a clean ECM_* environment."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("ECM_")}
    return subprocess.run(
        [sys.executable, "-m", "exporter", *args],
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def seed_calls(now: float) -> list[Call]:
    """200 calls in the last 8 minutes shaped like the seed's example."""
    calls = []
    i = 0
    for tower, (n, failed) in SEED_TOWERS.items():
        for k in range(n):
            i += 1
            lat = 300 + (i * 37) % 700 + (900 if i % 19 == 0 else 0)
            calls.append(
                Call(now - 5 - (i % 480), tower, lat, "CORE_TIMEOUT" if k < failed else None)
            )
    # Outside the 10-minute window: not counted.
    calls += [Call(now - 11 * 60 - i, "TOWER_5", 9000, "IMS_UNREACHABLE") for i in range(30)]
    return calls


def test_once_prints_the_seed_report_and_exits_20_on_alert(test_db: EcmDb) -> None:
    calls = seed_calls(time.time())
    write_calls(test_db.writer_url, calls)
    proc = run_cli("--once", "--window", "10", env={"ECM_DATABASE_URL": test_db.reader_url})
    assert proc.returncode == 20, proc.stderr
    lines = proc.stdout.splitlines()
    m = LINE.match(lines[0])
    assert m, lines[0]
    inside = [c for c in calls if c.epoch_s > time.time() - 600]
    lat = [c.latency_ms for c in inside]
    assert m.group(1, 2, 3, 4, 5) == ("ALERT", "10", "200", "38", "19.0")
    assert int(m.group(6)) == round(sum(lat) / len(lat))
    assert int(m.group(7)) == pytest.approx(percentile_cont(lat), rel=0.01)
    assert lines[1] == "  worst_towers:"
    assert lines[2] == "    - TOWER_5: failure=26.83% (11/41)"
    assert lines[3] == "    - TOWER_1: failure=20.00% (8/40)"


def test_once_json_has_the_same_numbers(test_db: EcmDb) -> None:
    write_calls(test_db.writer_url, seed_calls(time.time()))
    proc = run_cli("--once", "--window", "10", "--json", "--database-url", test_db.reader_url)
    assert proc.returncode == 20, proc.stderr
    doc = json.loads(proc.stdout)
    assert (doc["status"], doc["total"], doc["failed"]) == ("ALERT", 200, 38)
    assert doc["failure_ratio"] == pytest.approx(0.19)
    assert doc["reasons"]["CORE_TIMEOUT"] == {"failed": 38, "ratio": pytest.approx(0.19)}
    assert doc["towers"]["TOWER_5"]["calls"] == 41
    assert doc["worst_towers"][0] == {
        "tower": "TOWER_5", "calls": 41, "failed": 11, "failure_ratio": pytest.approx(11 / 41)
    }  # fmt: skip


@pytest.mark.parametrize(
    ("failed", "status", "code"), [(0, "OK", 0), (2, "WARN", 10), (6, "ALERT", 20)]
)
def test_once_exit_status_tells_ok_warn_alert_apart(
    test_db: EcmDb, failed: int, status: str, code: int
) -> None:
    now = time.time()
    calls = [
        Call(now - 10 - i, f"TOWER_{i % 4 + 1}", 800, "PSAP_BUSY" if i < failed else None)
        for i in range(100)
    ]
    write_calls(test_db.writer_url, calls)
    proc = run_cli("--once", "--window", "5", env={"ECM_DATABASE_URL": test_db.reader_url})
    assert proc.returncode == code, proc.stderr
    assert proc.stdout.startswith(f"[{status}] last_5m total=100 failed={failed} ")


def test_once_with_no_calls_says_so(test_db: EcmDb) -> None:
    proc = run_cli("--once", env={"ECM_DATABASE_URL": test_db.reader_url})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "[OK] last_10m total=0 failed=0 (no calls in the window)\n"


def test_unreachable_database_is_one_line_and_exit_3() -> None:
    url = f"postgresql://ecm@127.0.0.1:{free_port()}/ecm"
    proc = run_cli("--once", "--database-url", url)
    assert proc.returncode == 3
    assert proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "cannot connect" in proc.stderr


@pytest.mark.parametrize(
    ("args", "env", "needle"),
    [
        (["--interval", "soon"], {}, "interval"),
        (["--bogus"], {}, "--bogus"),
        (["--windows", "5x"], {}, "5x"),
        (["--port", "70000"], {}, "port"),
        (["--window", "0", "--once"], {}, "--window"),
        (["--warn-failure-ratio", "0.2"], {}, "warn_failure_ratio"),
        ([], {"ECM_TOP_N": "many"}, "environment"),
        (["--json"], {}, "--once"),
    ],
)
def test_bad_values_are_one_line_and_exit_2(
    args: list[str], env: dict[str, str], needle: str
) -> None:
    proc = run_cli(*args, "--check-only", env=env)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert needle in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unknown_yaml_key_is_named(tmp_path: Path) -> None:
    cfg = tmp_path / "exporter.yml"
    cfg.write_text("interval: 10\nwindow_size: 5m\n")
    proc = run_cli("--config", str(cfg), "--check-only")
    assert proc.returncode == 2
    assert "window_size" in proc.stderr and str(cfg) in proc.stderr


def test_check_only_validates_the_example_and_layers(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[2] / "exporter" / "example.yml"
    proc = run_cli("--config", str(example), "--check-only")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("configuration OK")
    cfg = tmp_path / "e.yml"
    cfg.write_text("interval: 30\nwindows: [5m, 1h]\nport: 9000\n")
    # Flags beat the environment, which beats the file.
    proc = run_cli(
        "--config", str(cfg), "--check-only", "--port", "9100", env={"ECM_INTERVAL": "20"}
    )
    assert proc.returncode == 0, proc.stderr
    assert (
        ":9100," in proc.stdout and "interval 20s" in proc.stdout and "windows 5m,1h" in proc.stdout
    )


@pytest.fixture
def exporter_main(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., tuple[int, str, str]]:
    """main(argv) in-process with a clean ECM_* environment; (status, stdout, stderr)."""
    for key in [k for k in os.environ if k.startswith("ECM_")]:
        monkeypatch.delenv(key)

    def run(*args: str) -> tuple[int, str, str]:
        status = exporter_cli.main(list(args))
        out = capsys.readouterr()
        return status, out.out, out.err

    return run


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--warn-failure-ratio", "0.05"], "warn_failure_ratio"),
        (["--warn-p95-seconds", "8", "--alert-p95-seconds", "8"], "warn_p95_seconds"),
        (["--interval", "inf"], "interval"),
        (["--interval", "2h"], "interval"),
        (["--warn-p95-seconds", "nan"], "warn_p95_seconds"),
        (["--alert-failure-ratio", "inf"], "alert_failure_ratio"),
        (["--windows", "8d"], "windows"),
        (["--tower-detail-max", "-1"], "tower_detail_max"),
        (["--failing-towers-max", "1e9"], "failing_towers_max"),
        (["--detail-towers", "A," + "B" * 300], "detail_towers"),
        (["--warn-tower-failure-ratio", "1.5"], "warn_tower_failure_ratio"),
        (["--windows", "90s"], "windows"),
        (["--min-calls", "[1]"], "min_calls"),
        (["--database-url", "mysql://x"], "database_url"),
        (["--once", "--window", "99999999"], "--window"),
        (["--listen-address", "a b"], "listen_address"),
    ],
)
def test_bad_values_never_pass_check_only(
    args: list[str], needle: str, exporter_main: Callable[..., tuple[int, str, str]]
) -> None:
    status, out, err = exporter_main(*args, "--check-only")
    assert status == 2, out + err
    assert len(err.strip().splitlines()) == 1 and needle in err


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"interval: 10\n\xff\n", "not UTF-8"),
        (b"interval: 10\ninterval: 20\n", "duplicate key 'interval'"),
        (b"windows: &w [5m]\nx: *w\n", "aliases"),
        (b"interval: [10]\n", "interval"),
        (b"min_calls: null\n", "min_calls"),
        (b"warn_failure_ratio: .nan\n", "warn_failure_ratio"),
    ],
)
def test_bad_config_files_are_one_line(
    content: bytes,
    needle: str,
    exporter_main: Callable[..., tuple[int, str, str]],
    tmp_path: Path,
) -> None:
    cfg = tmp_path / "e.yml"
    cfg.write_bytes(content)
    status, _, err = exporter_main("--config", str(cfg), "--check-only")
    assert status == 2
    assert len(err.strip().splitlines()) == 1 and needle in err and str(cfg) in err


def test_windows_take_the_common_duration_syntax(
    exporter_main: Callable[..., tuple[int, str, str]],
) -> None:
    status, out, err = exporter_main(
        "--windows", "5m,1h30m,2d", "--interval", "30s", "--check-only"
    )
    assert status == 0, err
    assert "windows 5m,1h30m,2d" in out and "interval 30s" in out


def test_database_password_is_not_echoed_by_a_bad_url(
    exporter_main: Callable[..., tuple[int, str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "hunter2-not-shown"
    monkeypatch.setenv("ECM_DATABASE_URL", f"postgresql://u:{secret}@h:99999/db")
    status, _, err = exporter_main("--check-only")
    assert status == 2
    assert "database_url" in err and secret not in err


def test_port_in_use_is_one_line_and_exit_2() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = run_cli(
            "--listen-address", "127.0.0.1", "--port", str(port),
            "--database-url", "postgresql://x@127.0.0.1:1/x",
        )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"ecm-exporter: error: port: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]


def test_a_validation_error_names_the_field_not_the_settings(
    exporter_main: Callable[..., tuple[int, str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """warn >= alert is refused with both names; the database URL beside it is not shown."""
    secret = "hunter2-not-shown"
    monkeypatch.setenv("ECM_DATABASE_URL", f"postgresql://u:{secret}@h/db")
    status, _, err = exporter_main("--warn-failure-ratio", "0.05", "--check-only")
    assert status == 2
    assert "warn_failure_ratio (0.05)" in err and "alert_failure_ratio (0.05)" in err
    assert secret not in err and "postgresql" not in err


def test_a_password_on_the_command_line_is_refused(
    exporter_main: Callable[..., tuple[int, str, str]],
) -> None:
    """Any user can read a process's arguments: a password belongs in the environment or a file."""
    secret = "hunter2-not-shown"
    status, _, err = exporter_main("--database-url", f"postgresql://u:{secret}@h/db", "--once")
    assert status == 2
    assert "--database-url carries a password" in err and secret not in err
