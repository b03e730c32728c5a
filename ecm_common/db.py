"""Finding and connecting to the database: one URL, one error type for 'cannot reach it'."""

from __future__ import annotations

import logging
import os
import re

import psycopg
from psycopg_pool import ConnectionPool

from ecm_common.errors import ConfigError, DatabaseUnavailable

log = logging.getLogger(__name__)

URL_ENV = "ECM_DATABASE_URL"
CONNECT_TIMEOUT_S = 5


def database_url(explicit: str | None = None) -> str:
    """The libpq URL from a flag, else ECM_DATABASE_URL; ConfigError when neither is set."""
    url = explicit or os.environ.get(URL_ENV, "")
    if not url:
        raise ConfigError(f"no database given: set {URL_ENV} or pass --database-url")
    if not re.match(r"^(postgres|postgresql)://", url) and "=" not in url:
        raise ConfigError(
            f"database URL must be a libpq URL (postgresql://...), got {redact(url)!r}"
        )
    return url


def redact(url: str) -> str:
    """The URL with any password replaced, fit for logs and error messages."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def describe(exc: BaseException) -> str:
    """A one-line reason from a psycopg error."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def connect(url: str, *, autocommit: bool = False, app: str = "ecm") -> psycopg.Connection:
    """Open a connection or raise DatabaseUnavailable with one clear line."""
    try:
        return psycopg.connect(
            url, autocommit=autocommit, connect_timeout=CONNECT_TIMEOUT_S, application_name=app
        )
    except psycopg.Error as exc:
        raise DatabaseUnavailable(f"cannot connect to {redact(url)}: {describe(exc)}") from None


def make_pool(url: str, *, app: str, max_size: int = 4) -> ConnectionPool:
    """A lazily opening pool whose connections are checked before use."""
    return ConnectionPool(
        url,
        min_size=0,
        max_size=max_size,
        open=True,
        kwargs={"connect_timeout": CONNECT_TIMEOUT_S, "application_name": app},
        check=ConnectionPool.check_connection,
        timeout=CONNECT_TIMEOUT_S,
        name=app,
    )
