"""The ecm-broadcast command line as a user runs it: outputs, exit statuses, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from stack.pgcluster import free_port
from tests.broadcast.conftest import states
from tests.fixtures.tools import require_binary

pytestmark = pytest.mark.integration
SEED_VARS = ("MESSAGE_COUNT", "SENDER_MEAN_TIME", "SENDER_FAILURE_RATE", "SENDER_COUNT")


def bc(
    url: str | None, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run python -m broadcast with a clean environment (plus env)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("ECM_") and k not in SEED_VARS}
    if url:
        base["ECM_DATABASE_URL"] = url
    return subprocess.run(
        [sys.executable, "-m", "broadcast", *args],
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def one_error_line(p: subprocess.CompletedProcess[str], code: int, text: str) -> None:
    """Exit status code, and stderr is one line naming the problem, no traceback."""
    assert p.returncode == code, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ecm-broadcast: error: "), p.stderr
    assert text in lines[0]


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["produce", "--count", "0"], "count"),
        (["produce", "--count", "-5"], "count"),
        (["produce", "--count", "lots"], "count"),
        (["produce", "--count", "10000001"], "count"),
        (["produce", "--text", "a" * 1531], "segments"),
        (["produce", "--priority", "10"], "priority"),
        (["sender", "--failure-rate", "1.5"], "failure_rate"),
        (["sender", "--failure-rate", "-0.1"], "failure_rate"),
        (["sender", "--mean-time", "-1"], "mean_time"),
        (["sender", "--window", "0"], "window"),
        (["sender", "--senders", "65"], "senders"),
        (["sender", "--lease", "soon"], "lease"),
        (["monitor", "--interval", "0"], "interval"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], text: str) -> None:
    one_error_line(bc("postgresql://u@127.0.0.1:1/x", *args), 2, text)


def test_bad_seed_variable_names_it() -> None:
    p = bc("postgresql://u@127.0.0.1:1/x", "sender", env={"SENDER_FAILURE_RATE": "2"})
    one_error_line(p, 2, "SENDER_FAILURE_RATE")


def test_unreachable_database_is_exit_3_without_password() -> None:
    p = bc(f"postgresql://u:hunter2@127.0.0.1:{free_port()}/x", "produce", "--count", "5")
    one_error_line(p, 3, "cannot connect")
    assert "hunter2" not in p.stderr


def test_no_database_given_is_exit_2() -> None:
    one_error_line(bc(None, "monitor", "--once"), 2, "ECM_DATABASE_URL")


def test_schema_missing_is_exit_3(empty_db: str) -> None:
    one_error_line(bc(empty_db, "monitor", "--once"), 3, "ecm-generator init-db")


def test_produce_send_monitor_with_the_seed_variables(
    bc_url: str, conn: psycopg.Connection
) -> None:
    p = bc(
        bc_url,
        "produce",
        "--campaign",
        "drill",
        "--text",
        "Évacuez la zone côtière",
        env={"MESSAGE_COUNT": "300"},
    )
    assert p.returncode == 0, p.stderr
    assert (
        p.stdout == "ecm-broadcast: campaign drill: 300 messages queued (1 UCS2 segment(s) each)\n"
    )
    one_error_line(bc(bc_url, "produce", "--campaign", "drill"), 2, "already exists")
    p = bc(
        bc_url,
        *("sender", "--until-empty", "--metrics-port", "0", "--sender-id", "seedy", "--seed", "3"),
        env={"SENDER_MEAN_TIME": "0", "SENDER_FAILURE_RATE": "1", "ECM_FAILURE_RATE": "0"},
    )
    assert p.returncode == 0, p.stderr
    # ECM_FAILURE_RATE wins over the seed's SENDER_FAILURE_RATE: nothing failed.
    assert "delivered 300, failed 0" in p.stdout
    assert states(conn) == {"delivered": 300}
    p = bc(bc_url, "monitor", "--once", "--json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    (c,) = doc["campaigns"]
    assert (c["name"], c["total"], c["delivered"], c["pending"], c["in_flight"]) == (
        "drill",
        300,
        300,
        0,
        0,
    )
    assert (c["encoding"], c["eta_seconds"]) == ("UCS2", 0.0)
    assert [(s["sender_id"], s["delivered"], s["mean_time"]) for s in doc["senders"]] == [
        ("seedy", 300, 0.0)
    ]
    p = bc(bc_url, "monitor", "--once")
    assert p.returncode == 0, p.stderr
    assert "campaign drill: 300 messages, priority 5, 1 UCS2 segment(s), 100.0% done" in p.stdout
    assert "pending 0  in flight 0  delivered 300  failed 0 (none)" in p.stdout
    assert "seedy" in p.stdout


def test_cancel_from_the_command_line(bc_url: str, conn: psycopg.Connection) -> None:
    assert bc(bc_url, "produce", "--count", "50", "--campaign", "oops").returncode == 0
    p = bc(bc_url, "cancel", "oops")
    assert p.returncode == 0, p.stderr
    assert (
        p.stdout == "ecm-broadcast: campaign oops cancelled: 50 pending messages will not be sent\n"
    )
    assert states(conn) == {"cancelled": 50}
    one_error_line(bc(bc_url, "cancel", "nope"), 2, "no campaign named 'nope'")


def test_listed_recipients(bc_url: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    f = tmp_path / "numbers.txt"
    f.write_text("# on call\n+15551230001\n\n+447911123456\n")
    assert bc(bc_url, "produce", "--recipients", str(f)).returncode == 0
    rows = conn.execute("SELECT recipient FROM broadcast_messages ORDER BY message_id").fetchall()
    assert rows == [("+15551230001",), ("+447911123456",)]
    f.write_text("+15551230001\n12345\n")
    one_error_line(bc(bc_url, "produce", "--recipients", str(f)), 2, "line 2: not an E.164 number")


def test_sender_metrics_are_served(bc_url: str) -> None:
    port = free_port()
    assert bc(bc_url, "produce", "--count", "20", "--campaign", "m").returncode == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECM_")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "broadcast",
            "sender",
            "--metrics-port",
            str(port),
            "--mean-time",
            "0",
            "--failure-rate",
            "0",
            "--sender-id",
            "m1",
        ],
        env={**env, "ECM_DATABASE_URL": bc_url},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        text = ""
        for _ in range(200):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                    text = r.read().decode()
                if "ecm_broadcast_messages_delivered_total 20.0" in text:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        lint = subprocess.run(
            [require_binary("promtool", "prometheus"), "check", "metrics"],
            input=text,
            capture_output=True,
            text=True,
            check=False,
        )
        assert lint.returncode == 0 and not lint.stdout.strip(), lint.stdout + lint.stderr
        families = {f.name: f for f in text_string_to_metric_families(text)}
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for f in families.values()
            for s in f.samples
        }
        assert samples[("ecm_broadcast_messages_delivered_total", ())] == 20
        assert samples[("ecm_broadcast_messages_failed_total", (("reason", "UNDELIV"),))] == 0
        assert samples[("ecm_broadcast_messages_in_flight", ())] == 0
        assert samples[("ecm_broadcast_database_up", ())] == 1
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert b"delivered 20" in out
