"""The one connection of a background job: opened on first use with the job's statement
timeout, reopened after a failure closed it."""

from __future__ import annotations

import psycopg

from ecm_common.db import CONNECT_TIMEOUT_S


class JobConnection:
    """A job's lazily (re)opened connection."""

    def __init__(self, url: str, app: str, statement_timeout_s: float) -> None:
        self.url = url
        self.app = app
        self.statement_timeout_s = statement_timeout_s
        self.conn: psycopg.Connection | None = None

    def get(self) -> psycopg.Connection:
        """The open connection, opening it if needed."""
        if self.conn is None or self.conn.closed:
            self.conn = psycopg.connect(
                self.url,
                connect_timeout=CONNECT_TIMEOUT_S,
                application_name=self.app,
                options=f"-c statement_timeout={int(self.statement_timeout_s * 1000)}",
            )
        return self.conn

    def close(self) -> None:
        """Close it (the next get() opens a new one)."""
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def rollback(self) -> None:
        """Roll back a failed transaction, keeping the connection."""
        if self.conn is not None and not self.conn.closed:
            self.conn.rollback()
