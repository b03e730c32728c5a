"""The pager's tables: what its login may do, what the other logins may not, and the database's
own guarantee of one open incident per service."""

from __future__ import annotations

import psycopg
import pytest

from db.roles import EXPORTER_LOGIN, GENERATOR_LOGIN, LOGINS, ensure_login, url_for
from tests.fixtures.postgres import EcmDb

pytestmark = pytest.mark.integration


def test_one_open_incident_per_service_is_enforced_by_the_database(pager_url: str) -> None:
    with psycopg.connect(pager_url, autocommit=True) as conn:
        conn.execute("INSERT INTO pager_services VALUES ('ecm', false, now())")
        opened = (
            "INSERT INTO pager_incidents (service_id, state, title, policy, opened_at)"
            " VALUES ('ecm', 'triggered', 't', 'p', now())"
        )
        conn.execute(opened)
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(opened)
        conn.execute("UPDATE pager_incidents SET state = 'resolved', resolved_at = now()")
        conn.execute(opened)  # a resolved incident does not count


def test_the_timeline_is_append_only_for_the_pager(pager_url: str) -> None:
    with psycopg.connect(pager_url, autocommit=True) as conn:
        for statement in ("UPDATE pager_events SET kind = kind", "DELETE FROM pager_events"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT count(*) FROM emergency_calls")


@pytest.mark.parametrize("login", [EXPORTER_LOGIN, GENERATOR_LOGIN])
def test_other_logins_cannot_read_the_pagers_tables(test_db: EcmDb, login: str) -> None:
    ensure_login(test_db.url, login, None, LOGINS[login])
    with psycopg.connect(url_for(test_db.url, login, None), autocommit=True) as conn:
        for table in ("pager_outbox", "pager_incidents", "pager_services"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"SELECT * FROM {table}")
