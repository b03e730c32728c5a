"""Apply the versioned SQL migrations in order, once each, safely from several processes."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from importlib import resources

import psycopg

from ecm_common.db import connect, describe
from ecm_common.errors import DatabaseUnavailable, EcmError

log = logging.getLogger(__name__)

# Any constant works; it only has to be the same for every ECM process.
LOCK_KEY = 0x45434D  # "ECM"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class MigrationError(EcmError):
    """A migration failed or the schema is missing and cannot be created."""


@dataclass(frozen=True)
class Migration:
    """One numbered SQL file."""

    version: int
    name: str
    sql: str


def available() -> list[Migration]:
    """Every migration shipped with the package, by version."""
    out = []
    for entry in resources.files("db").joinpath("migrations").iterdir():
        m = _NAME.match(entry.name)
        if m:
            out.append(Migration(int(m.group(1)), m.group(2), entry.read_text(encoding="utf-8")))
    return sorted(out, key=lambda mig: mig.version)


def applied(conn: psycopg.Connection) -> set[int]:
    """Versions already applied; empty when the bookkeeping table does not exist yet."""
    exists = conn.execute("SELECT to_regclass('ecm_schema_migrations') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return set()
    return {row[0] for row in conn.execute("SELECT version FROM ecm_schema_migrations")}


def pending(url: str) -> list[Migration]:
    """Migrations not yet applied to the database at url."""
    with connect(url, autocommit=True, app="ecm-migrate") as conn:
        done = applied(conn)
    return [m for m in available() if m.version not in done]


def migrate(url: str) -> list[Migration]:
    """Apply every pending migration, each in its own transaction; returns those applied."""
    done_now: list[Migration] = []
    with connect(url, autocommit=True, app="ecm-migrate") as conn:
        try:
            conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
            try:
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS ecm_schema_migrations ("
                    " version integer PRIMARY KEY, name text NOT NULL,"
                    " applied_at timestamptz NOT NULL DEFAULT now())"
                )
                done = applied(conn)
                for mig in available():
                    if mig.version in done:
                        continue
                    with conn.transaction():
                        conn.execute(mig.sql.encode())
                        conn.execute(
                            "INSERT INTO ecm_schema_migrations (version, name) VALUES (%s, %s)",
                            (mig.version, mig.name),
                        )
                    log.info("applied migration %04d_%s", mig.version, mig.name)
                    done_now.append(mig)
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
        except psycopg.errors.InsufficientPrivilege as exc:
            raise MigrationError(f"not allowed to create the schema: {describe(exc)}") from None
        except psycopg.OperationalError as exc:
            raise DatabaseUnavailable(
                f"database went away while migrating: {describe(exc)}"
            ) from None
        except psycopg.Error as exc:
            raise MigrationError(f"migration failed: {describe(exc)}") from None
    return done_now


def ensure_schema(url: str) -> None:
    """Apply pending migrations when allowed; a clear error when they are needed but cannot be."""
    if not pending(url):
        return
    try:
        migrate(url)
    except MigrationError as exc:
        raise MigrationError(
            f"the schema is not up to date and {exc}; run 'ecm-generator init-db' "
            "as the database owner"
        ) from None
