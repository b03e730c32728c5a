"""init-db's least-privilege logins: the exporter's reads, the generator's writes."""

from __future__ import annotations

import subprocess
import sys
import uuid

import psycopg
import pytest

from db.roles import url_for

pytestmark = pytest.mark.integration


def test_init_db_creates_reader_and_writer_logins(empty_db: str) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "generator",
            "init-db",
            "--database-url",
            empty_db,
            "--exporter-password",
            "r-secret",
            "--generator-password",
            "w-secret",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "login role ecm_exporter ready" in proc.stdout
    insert = (
        "INSERT INTO emergency_calls (call_uuid, timestamp, caller_id, tower_id, latency_ms,"
        " status) VALUES (%s, now(), 'c', 'TOWER_1', 5, 'SUCCESS')"
    )
    with psycopg.connect(url_for(empty_db, "ecm_generator", "w-secret"), autocommit=True) as w:
        w.execute(insert, (uuid.uuid4(),))
    with psycopg.connect(url_for(empty_db, "ecm_exporter", "r-secret"), autocommit=True) as r:
        assert r.execute("SELECT count(*) FROM emergency_calls").fetchone() == (1,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            r.execute(insert, (uuid.uuid4(),))


def test_url_for_swaps_only_the_credentials() -> None:
    assert (
        url_for("postgresql://ecm@127.0.0.1:5433/ecm?sslmode=disable", "ecm_exporter", "p@ss")
        == "postgresql://ecm_exporter:p%40ss@127.0.0.1:5433/ecm?sslmode=disable"
    )
