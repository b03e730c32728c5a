"""The local run without server binaries: the embedded PostgreSQL from the pgserver wheel."""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path

import psycopg
import pytest

from tests.local_run.run import (
    cluster_dir,
    exporter_calls,
    ports,
    processes_mentioning,
    require_embedded,
    start_stack,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_local_run_on_the_embedded_server(tmp_path: Path) -> None:
    bindir = require_embedded()
    port = ports()
    state = tmp_path / "state"
    out_file = tmp_path / "stack.out"
    # The system binaries are not consulted at all: the run must work on pgserver's alone.
    with open(out_file, "w", encoding="utf-8") as out:
        proc = start_stack(
            state, port, "--postgres", "embedded", "--without-prometheus", stdout=out
        )
    try:
        assert wait_for(lambda: exporter_calls(port["exporter"]), "counted calls", proc) > 0

        def printed_banner() -> str:
            text = out_file.read_text()
            return text if "ECM is running" in text else ""

        banner = wait_for(printed_banner, "the banner", proc)
        server = [
            args
            for args in processes_mentioning(str(cluster_dir(banner)))
            if args.startswith(str(bindir / "postgres"))
        ]
        m = re.search(r"ECM_DATABASE_URL='([^']+)'", banner)
        assert m, banner
        with psycopg.connect(m.group(1), autocommit=True) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            assert row is not None
            version = str(row[0])

            def logged_in() -> set[str]:
                rows = conn.execute(
                    "SELECT usename FROM pg_stat_activity WHERE datname = current_database()"
                ).fetchall()
                return {str(r[0]) for r in rows} & {"ecm_exporter", "ecm_generator"}

            parts = wait_for(
                lambda: len(logged_in()) == 2 and logged_in(), "both parts connected", proc
            )
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    out_text = out_file.read_text()
    assert proc.returncode == 0, out_text
    assert "embedded pgserver" in out_text and "(asked for: embedded)" in out_text
    assert server, f"no postgres process from {bindir} serves the cluster"
    expected = subprocess.run(
        [str(bindir / "postgres"), "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert version in expected, "the database is not the embedded server"
    assert parts == {"ecm_exporter", "ecm_generator"}, "the parts did not use their own logins"
    db_dir = cluster_dir(out_text)
    assert not db_dir.exists(), "the throwaway cluster was not removed"
    assert processes_mentioning(str(db_dir)) == [], "the server is still running after Ctrl-C"
    assert processes_mentioning(str(state)) == [], "children left running after Ctrl-C"
