"""Incidents and escalation, all state in PostgreSQL, all time from an injected clock.

Guarantees:
- One open incident per service: the partial unique index decides, never a check-then-insert.
- An alert instance (fingerprint, startsAt) is stored once: a retried webhook changes nothing.
- A level of a pass is queued once: due incidents are claimed FOR UPDATE SKIP LOCKED, and the
  outbox's unique key (incident, step, channel, target) backs that up; so two pager processes
  never notify one level twice, and a restart resumes what was due.
- The first level of a new incident is queued in the webhook's own transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import psycopg
from psycopg.rows import class_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from ecm_common.clock import Clock
from pager import queries as q
from pager.acklink import AckSigner
from pager.config import PagerSettings, Policy
from pager.metrics import PagerMetrics
from pager.payload import Alert, Webhook

log = logging.getLogger(__name__)

T = TypeVar("T")
TX_ATTEMPTS = 5
CLAIM_BATCH = 50
SILENCE_TITLE = "monitoring pipeline silent"


class NotFound(Exception):
    """No such incident."""


class Conflict(Exception):
    """The incident is in a state that does not allow this."""


@dataclass(frozen=True)
class Incident:
    """One row of pager_incidents."""

    incident_id: int
    service_id: str
    state: str
    title: str
    policy: str
    opened_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    next_level: int
    pass_: int
    step: int
    next_escalation_at: datetime | None


INCIDENT_ROW = class_row(Incident)


@dataclass
class IngestResult:
    """What one webhook changed."""

    opened: list[int] = field(default_factory=list)
    attached: int = 0
    resolved_alerts: int = 0
    resolved_incidents: list[int] = field(default_factory=list)
    unchanged: int = 0
    heartbeat: bool = False


class Engine:
    """The pager's state machine over a connection pool."""

    def __init__(
        self,
        pool: ConnectionPool,
        settings: PagerSettings,
        signer: AckSigner,
        clock: Clock,
        metrics: PagerMetrics | None = None,
    ) -> None:
        self.pool = pool
        self.settings = settings
        self.signer = signer
        self.clock = clock
        self.metrics = metrics

    def now(self) -> datetime:
        """The injected clock's time as a UTC datetime."""
        return datetime.fromtimestamp(self.clock.time(), UTC)

    def _tx(self, work: Callable[[psycopg.Connection], T]) -> T:
        """Run work in one transaction, again after a deadlock or serialization failure."""
        for attempt in range(1, TX_ATTEMPTS + 1):
            try:
                with self.pool.connection() as conn, conn.transaction():
                    return work(conn)
            except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure):
                if attempt == TX_ATTEMPTS:
                    raise
                log.debug("transaction retried after a lock conflict (attempt %d)", attempt)
        raise AssertionError("unreachable")

    # --- Alertmanager ---------------------------------------------------------------------

    def ingest(self, hook: Webhook) -> IngestResult:
        """Apply one Alertmanager webhook: open, attach, resolve; the Watchdog feeds the switch."""
        if self.metrics is not None:
            self.metrics.alerts.inc(len(hook.alerts))
        watchdog = self.settings.watchdog_alertname
        beats = [a for a in hook.alerts if a.alertname == watchdog and a.status == "firing"]
        # One order for every transaction (service, then alert): concurrent webhooks lock
        # incidents in the same order and cannot deadlock each other.
        alerts = sorted(
            (
                (self.settings.service_for(a.labels), a)
                for a in hook.alerts
                if a.alertname != watchdog
            ),
            key=lambda pair: (pair[0], pair[1].fingerprint, pair[1].startsAt),
        )
        now = self.now()

        def work(conn: psycopg.Connection) -> IngestResult:
            result = IngestResult()
            self._firing(conn, [(s, a) for s, a in alerts if a.status == "firing"], now, result)
            for _service, alert in alerts:
                if alert.status == "resolved":
                    self._resolved(conn, alert, now, result)
            return result

        result = self._tx(work) if alerts else IngestResult()
        if beats:
            self.heartbeat()
            result.heartbeat = True
        return result

    def _firing(
        self,
        conn: psycopg.Connection,
        alerts: list[tuple[str, Alert]],
        now: datetime,
        r: IngestResult,
    ) -> None:
        """Attach the new firing alerts to their services' open incidents, opening those that
        are missing; a few statements per webhook, whatever its number of alerts."""
        if not alerts:
            return
        known = {
            (fp, starts)
            for fp, starts in conn.execute(
                q.FIND_ALERTS,
                ([a.fingerprint for _, a in alerts], [a.startsAt for _, a in alerts]),
            ).fetchall()
        }
        fresh: dict[tuple[str, datetime], tuple[str, Alert]] = {}
        for service, alert in alerts:
            key = (alert.fingerprint, alert.startsAt)
            if key in known or key in fresh:
                r.unchanged += 1
            else:
                fresh[key] = (service, alert)
        incident_of: dict[str, int] = {}
        for service, alert in fresh.values():
            if service not in incident_of:
                incident_of[service] = self._incident_for(conn, service, alert.summary, now, r)
        rows = list(fresh.values())
        attached = conn.execute(
            q.ATTACH_ALERTS,
            {
                "fingerprints": [a.fingerprint for _, a in rows],
                "starts": [a.startsAt for _, a in rows],
                "incidents": [incident_of[s] for s, _ in rows],
                "alertnames": [a.alertname[:200] for _, a in rows],
                "labels": [Jsonb(a.labels) for _, a in rows],
                "now": now,
            },
        ).fetchall()
        # A concurrent retry of the same webhook may have stored some first: those are not new.
        stored = {(fp, starts) for fp, starts in attached}
        events = [
            (incident_of[s], _describe(a)) for s, a in rows if (a.fingerprint, a.startsAt) in stored
        ]
        conn.execute(
            q.ADD_EVENTS,
            {
                "incidents": [i for i, _ in events],
                "now": now,
                "kind": "alert firing",
                "details": [d for _, d in events],
            },
        )
        r.attached += len(stored)
        r.unchanged += len(rows) - len(stored)

    def _incident_for(
        self, conn: psycopg.Connection, service: str, title: str, now: datetime, r: IngestResult
    ) -> int:
        """The service's open incident, opened (and its first level paged) when there is none."""
        for _ in range(TX_ATTEMPTS):
            # Usually it is open already: share its key (attachers do not wait for each other;
            # a resolver's FOR UPDATE waits for us, then counts our alerts).
            row = conn.execute(q.SHARE_OPEN_INCIDENT, {"service": service}).fetchone()
            if row is not None:
                return int(row[0])
            opened = self._open(conn, service, title, now)
            if opened is not None:
                r.opened.append(opened)
                return opened
            # Another webhook opened it first: attach to that one.
        raise Conflict(f"could not find or open an incident for service {service!r}")

    def _open(
        self, conn: psycopg.Connection, service: str, title: str, now: datetime
    ) -> int | None:
        """Open an incident for service and page its first level; None when one is open."""
        spec = (
            self.settings.services.get(service)
            or self.settings.services[self.settings.default_service]
        )
        conn.execute(q.ENSURE_SERVICE, {"service": service, "now": now})
        row = conn.execute(
            q.OPEN_INCIDENT, {"service": service, "title": title, "policy": spec.policy, "now": now}
        ).fetchone()
        if row is None:
            return None
        incident_id = int(row[0])
        conn.execute(q.MARK_SERVICE, {"service": service, "healthy": False, "now": now})
        self._event(conn, incident_id, now, "triggered", title)
        if self.metrics is not None:
            self.metrics.opened.inc()
        self._escalate(conn, self._lock(conn, incident_id), now)
        return incident_id

    def _resolved(
        self, conn: psycopg.Connection, alert: Alert, now: datetime, r: IngestResult
    ) -> None:
        row = conn.execute(
            q.RESOLVE_ALERT,
            {"fingerprint": alert.fingerprint, "starts_at": alert.startsAt, "now": now},
        ).fetchone()
        if row is None:
            r.unchanged += 1  # already resolved, or never seen firing
            return
        r.resolved_alerts += 1
        incident = self._lock(conn, int(row[0]))
        if incident.state == "resolved":
            return
        self._event(conn, incident.incident_id, now, "alert resolved", _describe(alert))
        firing = conn.execute(q.FIRING_ALERTS, (incident.incident_id,)).fetchone()
        if firing is not None and firing[0] == 0:
            self._resolve(conn, incident, now, "alertmanager", "all its alerts resolved")
            r.resolved_incidents.append(incident.incident_id)

    # --- escalation -----------------------------------------------------------------------

    def escalate_due(self) -> int:
        """Notify the next level of every incident whose timeout passed; re-trigger timed-out
        acknowledgements. Returns how many incidents were handled."""
        handled = 0
        while True:
            now = self.now()

            def work(conn: psycopg.Connection, now: datetime = now) -> int:
                with conn.cursor(row_factory=INCIDENT_ROW) as cur:
                    due = cur.execute(q.CLAIM_DUE, {"now": now, "limit": CLAIM_BATCH}).fetchall()
                for incident in due:
                    if incident.state == "acknowledged":
                        self._event(
                            conn, incident.incident_id, now, "re-triggered",
                            "no resolution within the acknowledgement timeout",
                        )  # fmt: skip
                        incident = _restart(incident)
                    self._escalate(conn, incident, now)
                return len(due)

            n = self._tx(work)
            handled += n
            if n < CLAIM_BATCH:
                return handled

    def _policy(self, incident: Incident) -> Policy:
        named = self.settings.policies.get(incident.policy)
        return named or self.settings.policy_of(incident.service_id)

    def _escalate(self, conn: psycopg.Connection, incident: Incident, now: datetime) -> None:
        """Queue the incident's next level (or start the policy over, or stop at its end)."""
        policy = self._policy(incident)
        level_index, pass_ = incident.next_level, incident.pass_
        if level_index >= len(policy.levels):
            if pass_ >= policy.repeat:
                self._save(conn, incident, "triggered", level_index, pass_, incident.step, None)
                self._event(
                    conn, incident.incident_id, now, "escalation exhausted",
                    f"every level notified {policy.repeat + 1} time(s); still unacknowledged",
                )  # fmt: skip
                return
            pass_, level_index = pass_ + 1, 0
        level = policy.levels[level_index]
        step = incident.step + 1
        expires = now.timestamp() + self.settings.ack_link_ttl
        ack_url = f"{self.settings.public_url.rstrip('/')}/v1/ack/" + self.signer.sign(
            incident.incident_id, expires
        )
        subject, body = _message(incident, level_index + 1, ack_url)
        for target in level.targets:
            conn.execute(
                q.QUEUE_NOTIFICATION,
                {
                    "incident_id": incident.incident_id,
                    "step": step,
                    "level": level_index + 1,
                    "channel": target.channel,
                    "target": target.address,
                    "subject": subject,
                    "body": body,
                    "ack_url": ack_url,
                    "now": now,
                },
            )
        targets = ", ".join(f"{t.channel} {t.address}" for t in level.targets)
        self._event(
            conn, incident.incident_id, now, "escalated",
            f"level {level_index + 1} (pass {pass_ + 1}) notified: {targets}",
        )  # fmt: skip
        next_at = now + timedelta(seconds=level.timeout)
        self._save(conn, incident, "triggered", level_index + 1, pass_, step, next_at)
        if self.metrics is not None:
            self.metrics.escalations.inc()

    def _save(
        self,
        conn: psycopg.Connection,
        incident: Incident,
        state: str,
        next_level: int,
        pass_: int,
        step: int,
        next_at: datetime | None,
    ) -> None:
        conn.execute(
            q.SAVE_ESCALATION,
            {
                "incident_id": incident.incident_id,
                "state": state,
                "next_level": next_level,
                "pass": pass_,
                "step": step,
                "next_at": next_at,
            },
        )

    # --- people ---------------------------------------------------------------------------

    def acknowledge(self, incident_id: int, by: str) -> Incident:
        """Stop the escalation; it re-triggers after ack_timeout unless resolved first."""
        now = self.now()

        def work(conn: psycopg.Connection) -> Incident:
            incident = self._lock(conn, incident_id)
            if incident.state == "resolved":
                raise Conflict(
                    f"incident {incident_id} is resolved; there is nothing to acknowledge"
                )
            next_at = now + timedelta(seconds=self.settings.ack_timeout)
            conn.execute(
                q.ACKNOWLEDGE,
                {"incident_id": incident_id, "now": now, "by": by, "next_at": next_at},
            )
            conn.execute(q.CANCEL_PENDING, (incident_id,))
            self._event(conn, incident_id, now, "acknowledged", f"by {by}")
            if incident.state == "triggered" and self.metrics is not None:
                self.metrics.time_to_ack.observe((now - incident.opened_at).total_seconds())
            return self._lock(conn, incident_id)

        return self._tx(work)

    def resolve(self, incident_id: int, by: str) -> Incident:
        """Close the incident by hand and mark its service healthy."""
        now = self.now()

        def work(conn: psycopg.Connection) -> Incident:
            incident = self._lock(conn, incident_id)
            if incident.state == "resolved":
                raise Conflict(f"incident {incident_id} is already resolved")
            self._resolve(conn, incident, now, by, f"by {by}")
            return self._lock(conn, incident_id)

        return self._tx(work)

    def _resolve(
        self, conn: psycopg.Connection, incident: Incident, now: datetime, by: str, why: str
    ) -> None:
        conn.execute(q.RESOLVE, {"incident_id": incident.incident_id, "now": now, "by": by})
        conn.execute(q.CANCEL_PENDING, (incident.incident_id,))
        conn.execute(q.MARK_SERVICE, {"service": incident.service_id, "healthy": True, "now": now})
        self._event(conn, incident.incident_id, now, "resolved", why)
        if self.metrics is not None:
            self.metrics.time_to_resolve.observe((now - incident.opened_at).total_seconds())

    # --- dead man's switch ----------------------------------------------------------------

    def heartbeat(self) -> None:
        """The Watchdog arrived: note it, and close a 'pipeline silent' incident if open."""
        now = self.now()
        name = self.settings.watchdog_alertname

        def work(conn: psycopg.Connection) -> None:
            conn.execute(q.TOUCH_HEARTBEAT, {"name": name, "now": now})
            row = conn.execute(
                q.LOCK_OPEN_INCIDENT, {"service": self.settings.monitoring_service}
            ).fetchone()
            if row is not None:
                incident = self._lock(conn, int(row[0]))
                if incident.title.startswith(SILENCE_TITLE):
                    self._resolve(conn, incident, now, "watchdog", f"{name} arrived again")

        self._tx(work)

    def check_silence(self) -> int | None:
        """Open the 'pipeline silent' incident when the Watchdog is overdue; its id if opened."""
        now = self.now()
        name = self.settings.watchdog_alertname
        limit = self.settings.watchdog_silence

        def work(conn: psycopg.Connection) -> int | None:
            conn.execute(q.ARM_HEARTBEAT, {"name": name, "now": now})
            row = conn.execute(q.LAST_HEARTBEAT, (name,)).fetchone()
            if row is None or (now - row[0]).total_seconds() <= limit:
                return None
            title = f"{SILENCE_TITLE}: no {name} for {int((now - row[0]).total_seconds())} s"
            return self._open(conn, self.settings.monitoring_service, title, now)

        opened = self._tx(work)
        if opened is not None:
            log.warning("%s has not arrived for over %g s: incident %d opened", name, limit, opened)
        return opened

    # --- reading --------------------------------------------------------------------------

    def _lock(self, conn: psycopg.Connection, incident_id: int) -> Incident:
        with conn.cursor(row_factory=INCIDENT_ROW) as cur:
            incident = cur.execute(q.LOCK_INCIDENT, (incident_id,)).fetchone()
        if incident is None:
            raise NotFound(f"no incident {incident_id}")
        return incident

    def _event(
        self, conn: psycopg.Connection, incident_id: int, now: datetime, kind: str, detail: str
    ) -> None:
        conn.execute(q.ADD_EVENT, (incident_id, now, kind, detail[:2000]))


def _restart(incident: Incident) -> Incident:
    """The incident as the escalator sees it when an acknowledgement times out: level 1 again."""
    return Incident(**{**incident.__dict__, "state": "triggered", "next_level": 0, "pass_": 0})


def _describe(alert: Alert) -> str:
    labels = ", ".join(f"{k}={v}" for k, v in sorted(alert.labels.items()) if k != "alertname")
    return f"{alert.alertname} {{{labels}}} ({alert.fingerprint})"[:500]


def _message(incident: Incident, level: int, ack_url: str) -> tuple[str, str]:
    subject = f"[ECM] incident #{incident.incident_id} on {incident.service_id}: {incident.title}"
    body = (
        f"Incident #{incident.incident_id} on service {incident.service_id} is unacknowledged.\n"
        f"{incident.title}\n\n"
        f"Opened at {incident.opened_at.isoformat()}; you are escalation level {level}.\n\n"
        f"Acknowledge: {ack_url}\n"
    )
    return subject[:300], body
