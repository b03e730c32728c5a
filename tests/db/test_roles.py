"""init-db's least-privilege logins: real password logins, and no password in any output or in
the server's statement log."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from db.migrate import migrate
from db.roles import EXPORTER_LOGIN, GENERATOR_LOGIN, LOGINS, ensure_login, url_for
from stack.pgcluster import SUPERUSER, ClusterError, LocalCluster
from tests.fixtures.tools import in_ci

pytestmark = pytest.mark.integration

INSERT_CALL = (
    "INSERT INTO emergency_calls (call_uuid, timestamp, caller_id, tower_id, latency_ms,"
    " status) VALUES (%s, now(), 'c', 'TOWER_1', 5, 'SUCCESS')"
)


@pytest.fixture(scope="module")
def scram_cluster() -> Iterator[LocalCluster]:
    """A cluster that checks passwords (SCRAM) for every login but the superuser, and logs
    every statement it runs."""
    try:
        cluster = LocalCluster()
        cluster.init()
        (cluster.data / "pg_hba.conf").write_text(
            f"local all all trust\n"
            f"host all {SUPERUSER} 127.0.0.1/32 trust\n"
            "host all all 127.0.0.1/32 scram-sha-256\n",
            encoding="utf-8",
        )
        with open(cluster.data / "postgresql.auto.conf", "a", encoding="utf-8") as fh:
            fh.write("log_statement = 'all'\npassword_encryption = 'scram-sha-256'\n")
        cluster.start()
    except ClusterError as exc:
        if in_ci():
            pytest.fail(f"cannot start PostgreSQL: {exc}", pytrace=False)
        pytest.skip(f"cannot start PostgreSQL: {exc}")
    try:
        yield cluster
    finally:
        cluster.destroy()


def _server_log(cluster: LocalCluster) -> str:
    return cluster.logfile.read_text(encoding="utf-8", errors="replace")


def test_init_db_logins_work_and_no_password_is_shown_or_logged(
    scram_cluster: LocalCluster,
) -> None:
    url = scram_cluster.ensure_database(f"ecm_init_{uuid.uuid4().hex[:8]}")
    admin_secret, reader_secret, writer_secret = (f"pw-{uuid.uuid4().hex}" for _ in range(3))
    env = {
        **os.environ,
        # The superuser's login is trusted, so any password works: it is only there to be hidden.
        "ECM_DATABASE_URL": url_for(url, SUPERUSER, admin_secret),
        "ECM_EXPORTER_PASSWORD": reader_secret,
        "ECM_GENERATOR_PASSWORD": writer_secret,
    }
    proc = subprocess.run(
        [sys.executable, "-m", "generator", "init-db"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    shown = proc.stdout + proc.stderr
    assert "login role ecm_exporter ready" in shown
    assert f"postgresql://{SUPERUSER}:***@" in shown
    for secret in (admin_secret, reader_secret, writer_secret):
        assert secret not in shown
    with psycopg.connect(url_for(url, GENERATOR_LOGIN, writer_secret), autocommit=True) as w:
        w.execute(INSERT_CALL, (uuid.uuid4(),))
    with psycopg.connect(url_for(url, EXPORTER_LOGIN, reader_secret), autocommit=True) as r:
        assert r.execute("SELECT count(*) FROM emergency_calls").fetchone() == (1,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            r.execute(INSERT_CALL, (uuid.uuid4(),))
    log = _server_log(scram_cluster)
    # The role statements were logged (with the verifier); the passwords were not.
    assert 'ROLE "ecm_generator" LOGIN PASSWORD \'SCRAM-SHA-256$4096:' in log
    assert reader_secret not in log and writer_secret not in log


def test_a_changed_password_replaces_the_old_one_without_being_logged(
    scram_cluster: LocalCluster,
) -> None:
    url = scram_cluster.ensure_database(f"ecm_alter_{uuid.uuid4().hex[:8]}")
    migrate(url)
    old, new = f"old-{uuid.uuid4().hex}", f"new-{uuid.uuid4().hex}"
    ensure_login(url, EXPORTER_LOGIN, old, LOGINS[EXPORTER_LOGIN])
    ensure_login(url, EXPORTER_LOGIN, new, LOGINS[EXPORTER_LOGIN])
    with psycopg.connect(url_for(url, EXPORTER_LOGIN, new)) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (EXPORTER_LOGIN,)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(url_for(url, EXPORTER_LOGIN, old)).close()
    log = _server_log(scram_cluster)
    assert 'ALTER ROLE "ecm_exporter" LOGIN PASSWORD \'SCRAM-SHA-256$' in log
    assert old not in log and new not in log


def test_url_for_swaps_only_the_credentials() -> None:
    assert (
        url_for("postgresql://ecm@127.0.0.1:5433/ecm?sslmode=disable", "ecm_exporter", "p@ss")
        == "postgresql://ecm_exporter:p%40ss@127.0.0.1:5433/ecm?sslmode=disable"
    )
