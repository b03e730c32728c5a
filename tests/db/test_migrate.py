"""The schema: migrations apply once, roles can do what they should and nothing more."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import psycopg
import pytest

from db.migrate import available, migrate, pending
from tests.fixtures.postgres import EcmDb, PgServer

pytestmark = pytest.mark.integration


def test_migrate_applies_everything_once(empty_db: str) -> None:
    first = migrate(empty_db)
    assert [m.version for m in first] == [m.version for m in available()]
    assert migrate(empty_db) == []
    assert pending(empty_db) == []
    with psycopg.connect(empty_db) as conn:
        assert conn.execute("SELECT count(*) FROM ecm_schema_migrations").fetchone() == (
            len(available()),
        )


def _insert(conn: psycopg.Connection, status: str, reason: str | None) -> None:
    conn.execute(
        "INSERT INTO emergency_calls (call_uuid, timestamp, caller_id, tower_id, latency_ms,"
        " status, failure_reason) VALUES (%s, %s, 'c', 'TOWER_1', 100, %s, %s)",
        (uuid.uuid4(), datetime.now(UTC), status, reason),
    )


def test_reason_is_null_exactly_when_success(test_db: EcmDb) -> None:
    with psycopg.connect(test_db.url, autocommit=True) as conn:
        _insert(conn, "SUCCESS", None)
        _insert(conn, "FAILED", "CORE_TIMEOUT")
        with pytest.raises(psycopg.errors.CheckViolation):
            _insert(conn, "SUCCESS", "CORE_TIMEOUT")
        with pytest.raises(psycopg.errors.CheckViolation):
            _insert(conn, "FAILED", None)
        with pytest.raises(psycopg.errors.CheckViolation):
            _insert(conn, "DROPPED", None)


def test_reader_role_reads_but_cannot_write(test_db: EcmDb) -> None:
    with psycopg.connect(test_db.writer_url, autocommit=True) as conn:
        _insert(conn, "SUCCESS", None)
    with psycopg.connect(test_db.reader_url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM emergency_calls").fetchone() == (1,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            _insert(conn, "SUCCESS", None)


def test_window_query_uses_index_only_scan(test_db: EcmDb) -> None:
    with psycopg.connect(test_db.url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO emergency_calls (call_uuid, timestamp, caller_id, tower_id, latency_ms,"
            " status, failure_reason)"
            " SELECT gen_random_uuid(), now() - g * interval '1 second', 'c', 'T' || (g % 50),"
            " g % 3000, 'SUCCESS', NULL FROM generate_series(1, 50000) g"
        )
        conn.execute("VACUUM ANALYZE emergency_calls")
        plan = "\n".join(
            r[0]
            for r in conn.execute(
                "EXPLAIN SELECT tower_id, count(*), avg(latency_ms) FROM emergency_calls"
                " WHERE timestamp >= now() - interval '5 minutes' GROUP BY tower_id"
            )
        )
    assert "Index Only Scan using emergency_calls_timestamp_idx" in plan, plan


def test_unique_call_uuid(test_db: EcmDb, pg_server: PgServer) -> None:
    key = uuid.uuid4()
    with psycopg.connect(test_db.url, autocommit=True) as conn:
        sql = (
            "INSERT INTO emergency_calls (call_uuid, timestamp, caller_id, tower_id, latency_ms,"
            " status) VALUES (%s, now(), 'c', 'T', 1, 'SUCCESS')"
        )
        conn.execute(sql, (key,))
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(sql, (key,))
