"""Sending the outbox: each pending notification is claimed FOR UPDATE SKIP LOCKED (one process
sends it), sent, and marked sent; a failure is recorded on the row and in the incident's
timeline, counted, and retried with exponential backoff until `send_attempts` are used up.

A failed channel never stops an escalation: the escalator does not wait for the outbox.
Delivery is at least once: a process that dies between sending and committing leaves the row
pending, and another sends it again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg.rows import class_row
from psycopg_pool import ConnectionPool

from ecm_common.clock import Clock
from pager import queries as q
from pager.channels import Channels, Message, SendError
from pager.config import PagerSettings
from pager.metrics import PagerMetrics

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 3600.0


def backoff(settings: PagerSettings, attempts: int) -> float:
    """Seconds before the next attempt after `attempts` failed ones: base, 2x base, 4x ..."""
    return min(settings.send_backoff * 2.0 ** max(attempts - 1, 0), MAX_BACKOFF_S)


class OutboxSender:
    """Sends what is due, one notification per transaction."""

    def __init__(
        self,
        pool: ConnectionPool,
        settings: PagerSettings,
        channels: Channels,
        clock: Clock,
        metrics: PagerMetrics | None = None,
    ) -> None:
        self.pool = pool
        self.settings = settings
        self.channels = channels
        self.clock = clock
        self.metrics = metrics

    def send_due(self, limit: int = 1000) -> int:
        """Send up to limit due notifications; returns how many were attempted."""
        done = 0
        while done < limit and self._send_one():
            done += 1
        return done

    def _send_one(self) -> bool:
        now = datetime.fromtimestamp(self.clock.time(), UTC)
        with self.pool.connection() as conn, conn.transaction():
            with conn.cursor(row_factory=class_row(_Claimed)) as cur:
                row = cur.execute(q.CLAIM_NOTIFICATION, {"now": now}).fetchone()
            if row is None:
                return False
            try:
                self.channels.send(row)
            except SendError as exc:
                self._failed(conn, row, str(exc), now)
                return True
            conn.execute(q.NOTIFICATION_SENT, {"id": row.notification_id, "now": now})
            conn.execute(
                q.ADD_EVENT,
                (row.incident_id, now, "notification sent", f"level {row.level}: {row.where()}"),
            )
            if self.metrics is not None:
                self.metrics.sent.labels(row.channel).inc()
            log.info("incident %d: %s sent", row.incident_id, row.where())
        return True

    def _failed(self, conn: psycopg.Connection, row: _Claimed, error: str, now: datetime) -> None:
        attempts = row.attempts + 1
        if self.metrics is not None:
            self.metrics.failed.labels(row.channel).inc()
        if attempts >= self.settings.send_attempts:
            conn.execute(q.NOTIFICATION_FAILED, {"id": row.notification_id, "error": error})
            kind, note = "notification failed", f"gave up after {attempts} attempts"
            if self.metrics is not None:
                self.metrics.abandoned.labels(row.channel).inc()
            log.error("incident %d: %s failed for good: %s", row.incident_id, row.where(), error)
        else:
            wait = backoff(self.settings, attempts)
            next_at = now + timedelta(seconds=wait)
            conn.execute(
                q.NOTIFICATION_RETRY,
                {"id": row.notification_id, "error": error, "next_at": next_at},
            )
            kind, note = "notification attempt failed", f"attempt {attempts}, retry in {wait:g} s"
            log.warning(
                "incident %d: %s failed (%s): %s", row.incident_id, row.where(), note, error
            )
        detail = f"level {row.level}: {row.where()}: {error} ({note})"
        conn.execute(q.ADD_EVENT, (row.incident_id, now, kind, detail))


@dataclass(frozen=True)
class _Claimed(Message):
    """A claimed outbox row: the message and how many attempts it has had."""

    attempts: int

    def where(self) -> str:
        """channel and target, for the timeline."""
        return f"{self.channel} {self.target}"
