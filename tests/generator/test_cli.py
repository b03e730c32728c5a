"""The seed-compatible command line against a real database."""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from pathlib import Path

import pytest

from tests.fixtures.postgres import EcmDb
from tests.generator.helpers import PAST_ISO, parse_counts, query, run_gen

pytestmark = pytest.mark.integration


def test_seed_command_writes_exactly_count_with_failure_share(
    test_db: EcmDb, tmp_path: Path
) -> None:
    proc = run_gen(
        "--rate",
        "5",
        "--failure-prob",
        "0.2",
        "--count",
        "2000",
        "--seed",
        "7",
        "--start",
        PAST_ISO,
        "--database-url",
        test_db.writer_url,
        tmp=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "wrote 2000 calls" in proc.stdout
    assert parse_counts(proc.stdout)["generated"] == 2000
    [(total, failed, towers, span_s, bad_reason)] = query(
        test_db.url,
        "SELECT count(*), count(*) FILTER (WHERE status = 'FAILED'), count(DISTINCT tower_id),"
        ' extract(epoch FROM max("timestamp") - min("timestamp")),'
        " count(*) FILTER (WHERE (status = 'FAILED') <> (failure_reason IS NOT NULL))"
        " FROM emergency_calls",
    )
    assert total == 2000
    # Binomial(2000, 0.2): sd ~18 calls; 5 sd either side.
    assert 310 <= failed <= 490
    assert towers >= 30
    assert bad_reason == 0
    # 1999 gaps of mean 0.2 s: 400 s, sd ~9 s.
    assert 350 <= float(span_s) <= 450


def test_init_db_is_idempotent(empty_db: str, tmp_path: Path) -> None:
    for _ in range(2):
        proc = run_gen("init-db", "--database-url", empty_db, tmp=tmp_path)
        assert proc.returncode == 0, proc.stderr
    [(n,)] = query(empty_db, "SELECT count(*) FROM emergency_calls")
    assert n == 0


def test_schema_applied_at_start_when_missing(empty_db: str, tmp_path: Path) -> None:
    proc = run_gen("--count", "10", "--start", PAST_ISO, "--database-url", empty_db, tmp=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert query(empty_db, "SELECT count(*) FROM emergency_calls") == [(10,)]
    [(towers,)] = query(empty_db, "SELECT count(*) FROM towers")
    assert towers == 50


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--rate", "-5"), "rate"),
        (("--failure-prob", "1.5"), "failure_prob"),
        (("--reason-weights", "NOPE=1"), "unknown failure reason"),
        (("--tower-weights", "TOWER_99=2", "--towers", "10"), "unknown tower"),
        (("--bogus",), "unrecognized"),
    ],
)
def test_bad_values_exit_2_with_one_line(
    args: tuple[str, ...], needle: str, tmp_path: Path
) -> None:
    proc = run_gen(
        *args, "--count", "1", "--database-url", "postgresql://x@127.0.0.1:1/x", tmp=tmp_path
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0]
    assert "Traceback" not in proc.stderr


def test_unreachable_database_at_start_spools_and_exits_4(tmp_path: Path) -> None:
    """The generator starts anyway; calls still spooled at the end are a distinct status."""
    from stack.pgcluster import free_port

    url = f"postgresql://ecm@127.0.0.1:{free_port()}/ecm"
    proc = run_gen("--count", "5", "--database-url", url, tmp=tmp_path)
    assert proc.returncode == 4, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert "5 call(s) wait in the spool" in last and "Traceback" not in proc.stderr


def scram_matches(verifier: str, password: str) -> bool:
    """Whether a SCRAM-SHA-256 verifier from pg_authid was made from this password (RFC 5802)."""
    head, keys = verifier.split("$", 1)[1].split("$")
    iterations, salt = head.split(":")
    stored_key = base64.b64decode(keys.split(":")[0])
    salted = hashlib.pbkdf2_hmac(
        "sha256", password.encode(), base64.b64decode(salt), int(iterations)
    )
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    return hashlib.sha256(client_key).digest() == stored_key


def test_init_db_takes_passwords_from_a_file_never_from_a_flag(
    empty_db: str, tmp_path: Path
) -> None:
    secret = f"pw-{uuid.uuid4().hex}"
    pw_file = tmp_path / "generator-password"
    pw_file.write_text(secret + "\n")
    proc = run_gen(
        "init-db",
        "--database-url",
        empty_db,
        "--generator-password-file",
        str(pw_file),
        tmp=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "login role ecm_generator ready" in proc.stdout
    assert secret not in proc.stdout + proc.stderr
    [(verifier,)] = query(
        empty_db, "SELECT rolpassword FROM pg_authid WHERE rolname = 'ecm_generator'"
    )
    assert scram_matches(verifier, secret)
    flag = run_gen(
        "init-db", "--database-url", empty_db, "--generator-password", secret, tmp=tmp_path
    )
    assert flag.returncode == 2
    assert "unrecognized arguments" in flag.stderr and secret not in flag.stderr


def test_init_db_password_file_problems_are_one_line(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")
    for path, needle in ((empty, "no password"), (tmp_path / "missing", "cannot read")):
        proc = run_gen(
            "init-db", "--exporter-password-file", str(path), "--check-only", tmp=tmp_path
        )
        assert proc.returncode == 2
        assert len(proc.stderr.strip().splitlines()) == 1
        assert "--exporter-password-file" in proc.stderr and needle in proc.stderr


def test_regions_split_the_towers_into_contiguous_blocks(empty_db: str, tmp_path: Path) -> None:
    def run(regions: str) -> None:
        proc = run_gen("--count", "10", "--towers", "10", "--regions", regions, "--start",
                       PAST_ISO, "--database-url", empty_db, tmp=tmp_path)  # fmt: skip
        assert proc.returncode == 0, proc.stderr

    run("3")
    rows = query(empty_db, "SELECT region FROM towers ORDER BY length(tower_id), tower_id")
    assert [r for (r,) in rows] == ["REGION_1"] * 4 + ["REGION_2"] * 3 + ["REGION_3"] * 3
    # Running again with another split moves the towers (the upsert updates the region).
    run("2")
    rows = query(empty_db, "SELECT region, count(*) FROM towers GROUP BY region ORDER BY region")
    assert rows == [("REGION_1", 5), ("REGION_2", 5)]
