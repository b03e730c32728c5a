"""Login accounts for the parts: the exporter reads through ecm_reader, the generator writes
through ecm_writer (group roles created by the migrations).

A password never travels as SQL text: libpq hashes it on the client into a SCRAM-SHA-256
verifier and only the verifier is sent, so a server logging every statement logs no secret."""

from __future__ import annotations

import logging
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
from psycopg import sql

from ecm_common.db import connect, describe
from ecm_common.errors import EcmError

log = logging.getLogger(__name__)

EXPORTER_LOGIN = "ecm_exporter"
GENERATOR_LOGIN = "ecm_generator"
BROADCAST_LOGIN = "ecm_broadcast"
LOGINS = {
    EXPORTER_LOGIN: "ecm_reader",
    GENERATOR_LOGIN: "ecm_writer",
    BROADCAST_LOGIN: "ecm_broadcast_rw",
}
# The ECM API writes PM events and keeps their rollups (0004); Grafana's datasource reads.
API_LOGIN = "ecm_api"
GRAFANA_LOGIN = "ecm_grafana"
LOGINS.update({API_LOGIN: "ecm_api_rw", GRAFANA_LOGIN: "ecm_reader"})
# The pager keeps services, incidents, the timeline and its outbox (0003).
PAGER_LOGIN = "ecm_pager"
LOGINS[PAGER_LOGIN] = "ecm_pager_rw"
PASSWORD_ALGORITHM = "scram-sha-256"


class RoleError(EcmError):
    """A login role could not be created or updated."""


def ensure_login(url: str, user: str, password: str | None, group: str) -> None:
    """Create or update a LOGIN role that is a member of group (ecm_reader or ecm_writer)."""
    try:
        with connect(url, autocommit=True, app="ecm-roles") as conn:
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,)).fetchone()
            verb = sql.SQL("ALTER" if exists else "CREATE")
            conn.execute(
                sql.SQL("{} ROLE {} LOGIN PASSWORD {}").format(
                    verb, sql.Identifier(user), sql.Literal(verifier(conn, user, password))
                )
            )
            conn.execute(
                sql.SQL("GRANT {} TO {}").format(sql.Identifier(group), sql.Identifier(user))
            )
    except psycopg.Error as exc:
        raise RoleError(f"cannot set up login role {user}: {describe(exc)}") from None
    log.info("login role %s ready (member of %s)", user, group)


def verifier(conn: psycopg.Connection, user: str, password: str | None) -> str | None:
    """The SCRAM-SHA-256 verifier of password, computed by libpq; None (no password) stays None."""
    if password is None:
        return None
    hashed = conn.pgconn.encrypt_password(
        password.encode(), user.encode(), PASSWORD_ALGORITHM.encode()
    )
    return hashed.decode("ascii")


def url_for(url: str, user: str, password: str | None) -> str:
    """The same database URL with another user and password."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    auth = quote(user, safe="") + (f":{quote(password, safe='')}" if password else "")
    return urlunsplit((parts.scheme, f"{auth}@{host}", parts.path, parts.query, parts.fragment))
