"""ecm-api as a user runs it: bad options are one line and exit 2; a served process stores
events, shows JSON logs without secrets and stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from db.roles import url_for
from stack.pgcluster import free_port
from tests.api.conftest import event, wait_for
from tests.fixtures.postgres import EcmDb

URL = "postgresql://u@127.0.0.1:1/db"


def run_api(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "ECM_DATABASE_URL": URL, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "api", *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_check_only_accepts_a_good_configuration() -> None:
    out = run_api("--check-only", "--max-event-age", "2d", "--port", "9999")
    assert (out.returncode, out.stdout.strip()) == (0, "configuration OK")


@pytest.mark.parametrize(
    ("args", "env", "says"),
    [
        (["--max-batch-events", "0"], {}, "max_batch_events"),
        (["--port", "70000"], {}, "port"),
        (["--raw-retention", "1d"], {}, "raw_retention must be at least max_event_age"),
        (["--kpi-window", "1m"], {}, "kpi_window"),
        (["--bogus"], {}, "unrecognized arguments"),
        ([], {"ECM_DATABASE_URL": ""}, "no database given"),
        ([], {"ECM_API_TOKEN": "a", "ECM_API_TOKEN_FILE": "/nonexistent"}, "not both"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(
    args: list[str], env: dict[str, str], says: str
) -> None:
    out = run_api("--check-only", *args, env=env)
    assert out.returncode == 2
    assert says in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert "Traceback" not in out.stderr


@pytest.mark.integration
def test_served_process_stores_and_stops_on_sigterm(test_db: EcmDb, api_login: str) -> None:
    port = free_port()
    token = "cli-test-token-not-logged"
    proc = subprocess.Popen(
        [sys.executable, "-m", "api", "--port", str(port), "--listen-address", "127.0.0.1",
         "--log-format", "json"],
        env={**os.environ, "ECM_DATABASE_URL": url_for(test_db.url, api_login, None),
             "ECM_API_TOKEN": token},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"

        def up() -> bool:
            try:
                return httpx.get(base + "/healthz").status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, timeout_s=30)
        resp = httpx.post(
            base + "/v1/events/pm",
            json=event(at=time.time()),
            headers={"authorization": f"Bearer {token}"},
        )
        assert resp.status_code == 200
        assert resp.json()["accepted"] == 1
        assert httpx.get(base + "/readyz").status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output
    assert token not in output
    assert '"message": "ecm-api listening on http://127.0.0.1:' in output
