"""The local run without server binaries: the embedded PostgreSQL from the pgserver wheel."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import psycopg
import pytest

from tests.local_run.run import cluster_dir, processes_mentioning, require_embedded, start_stack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PARTS = {"ecm_exporter", "ecm_generator"}


def test_local_run_on_the_embedded_server(tmp_path: Path) -> None:
    bindir = require_embedded()
    # The system binaries are not consulted at all: the run must work on pgserver's alone.
    run = start_stack(tmp_path, "--postgres", "embedded", "--without-prometheus")
    try:
        assert run.wait_for(run.exporter_calls, "calls counted by the exporter") > 0
        banner = run.banner()
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

            def parts_logged_in() -> bool:
                rows = conn.execute(
                    "SELECT usename FROM pg_stat_activity WHERE datname = current_database()"
                ).fetchall()
                return {str(r[0]) for r in rows} >= PARTS

            # Both parts connect with their own least-privilege logins, as on the system cluster.
            run.wait_for(parts_logged_in, "the exporter and generator logins")
    finally:
        out = run.interrupt()
    assert run.proc.returncode == 0, out
    assert re.search(r"^ +postgres +embedded pgserver [\d.]+, PostgreSQL [\d.]+ \(", out, re.M)
    assert server, f"no postgres process from {bindir} serves the cluster"
    expected = subprocess.run(
        [str(bindir / "postgres"), "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert f" {version}" in expected, "the database is not the embedded server"
    db_dir = cluster_dir(out)
    assert not db_dir.exists(), "the throwaway cluster was not removed"
    assert processes_mentioning(str(db_dir)) == [], "the server is still running after Ctrl-C"
    assert processes_mentioning(str(run.state)) == [], "children left running after Ctrl-C"
