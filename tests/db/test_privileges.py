"""Least privilege with the real logins: each role can do what its part does and nothing more."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest

from db.migrate import available, migrate
from db.roles import EXPORTER_LOGIN, GENERATOR_LOGIN, LOGINS, ensure_login, url_for
from generator import queries
from tests.fixtures.postgres import PgServer

pytestmark = pytest.mark.integration

INSERT_CALL = (
    "INSERT INTO emergency_calls (call_uuid, timestamp, caller_id, tower_id, latency_ms,"
    " status) VALUES (%s, now(), 'c', 'TOWER_1', 5, 'SUCCESS')"
)
# Every way to change a table; each must be refused where the role has no business writing.
WRITES = {
    "insert": "INSERT INTO {t} SELECT * FROM {t} LIMIT 0",
    "update": "UPDATE {t} SET {c} = {c}",
    "delete": "DELETE FROM {t}",
    "truncate": "TRUNCATE {t}",
}
TABLES = {"emergency_calls": "caller_id", "towers": "region", "ecm_schema_migrations": "name"}


@dataclass
class Logins:
    """A freshly migrated database (not a template clone: database grants are not copied)."""

    owner: str
    writer: str
    reader: str


@pytest.fixture
def logins(empty_db: str) -> Iterator[Logins]:
    """The real login roles init-db creates, on a database migrated from nothing."""
    migrate(empty_db)
    for user in (EXPORTER_LOGIN, GENERATOR_LOGIN):
        ensure_login(empty_db, user, "unused-with-trust-auth", LOGINS[user])
    yield Logins(
        owner=empty_db,
        writer=url_for(empty_db, GENERATOR_LOGIN, None),
        reader=url_for(empty_db, EXPORTER_LOGIN, None),
    )


def test_writer_stores_calls_towers_and_stages_a_retried_batch(logins: Logins) -> None:
    with psycopg.connect(logins.writer) as conn:
        conn.execute(INSERT_CALL, (uuid.uuid4(),))
        conn.execute(queries.UPSERT_TOWERS, (["TOWER_1"], [2.0], ["REGION_1"]))
        conn.execute(queries.UPSERT_TOWERS, (["TOWER_1"], [3.0], ["REGION_2"]))
        # The retry path: a temporary staging table, then an idempotent move.
        conn.execute(queries.CREATE_STAGE)
        conn.execute(
            "INSERT INTO ecm_generator_stage (call_uuid, timestamp, caller_id, tower_id,"
            " latency_ms, status) VALUES (%s, now(), 'c', 'TOWER_2', 7, 'SUCCESS')",
            (uuid.uuid4(),),
        )
        conn.execute(queries.INSERT_FROM_STAGE)
    with psycopg.connect(logins.owner) as conn:
        assert conn.execute("SELECT count(*) FROM emergency_calls").fetchone() == (2,)
        assert conn.execute("SELECT weight FROM towers").fetchall() == [(3.0,)]


@pytest.mark.parametrize("write", sorted(WRITES))
def test_writer_cannot_change_the_migrations_bookkeeping(logins: Logins, write: str) -> None:
    stmt = WRITES[write].format(t="ecm_schema_migrations", c="name")
    with (
        psycopg.connect(logins.writer, autocommit=True) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute(stmt.encode())
    with psycopg.connect(logins.owner) as conn:
        migrations = conn.execute("SELECT count(*) FROM ecm_schema_migrations").fetchone()
    assert migrations == (len(available()),)


def test_writer_gets_no_write_on_a_table_a_later_migration_adds(logins: Logins) -> None:
    with psycopg.connect(logins.owner, autocommit=True) as conn:
        conn.execute("CREATE TABLE later_table (x integer)")
    with psycopg.connect(logins.writer, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM later_table").fetchone() == (0,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO later_table VALUES (1)")


def test_reader_cannot_create_a_temporary_table(logins: Logins) -> None:
    with (
        psycopg.connect(logins.reader, autocommit=True) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege, match="temporary tables"),
    ):
        conn.execute(queries.CREATE_STAGE)


@pytest.mark.parametrize("table", sorted(TABLES))
@pytest.mark.parametrize("write", sorted(WRITES))
def test_reader_cannot_write_anything(logins: Logins, table: str, write: str) -> None:
    stmt = WRITES[write].format(t=table, c=TABLES[table])
    with psycopg.connect(logins.reader, autocommit=True) as conn:
        conn.execute(f"SELECT count(*) FROM {table}".encode())
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(stmt.encode())


def test_reader_cannot_create_tables(logins: Logins) -> None:
    with (
        psycopg.connect(logins.reader, autocommit=True) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute("CREATE TABLE public.sneaky (x integer)")


def test_a_role_outside_ecm_gets_no_temporary_tables(logins: Logins, pg_server: PgServer) -> None:
    name = f"ecm_outsider_{uuid.uuid4().hex[:8]}"
    with pg_server.admin() as conn:
        conn.execute(f"CREATE ROLE {name} LOGIN".encode())
    with (
        psycopg.connect(url_for(logins.owner, name, None), autocommit=True) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute("CREATE TEMP TABLE t (x integer)")
