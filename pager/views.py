"""What the API and the CLI show: incidents (one page, newest first), one incident with its
alerts and timeline, and the services' health; plain dicts ready for JSON."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg_pool import ConnectionPool

from pager import queries as q
from pager.engine import INCIDENT_ROW, Incident, NotFound

MAX_PAGE = 500


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def incident_json(incident: Incident) -> dict[str, Any]:
    """The public form of an incident."""
    return {
        "id": incident.incident_id,
        "service": incident.service_id,
        "state": incident.state,
        "title": incident.title,
        "policy": incident.policy,
        "opened_at": _time(incident.opened_at),
        "acknowledged_at": _time(incident.acknowledged_at),
        "acknowledged_by": incident.acknowledged_by,
        "resolved_at": _time(incident.resolved_at),
        "resolved_by": incident.resolved_by,
        "levels_notified": incident.step,
        "next_escalation_at": _time(incident.next_escalation_at),
    }


def list_incidents(
    pool: ConnectionPool,
    *,
    state: str | None = None,
    service: str | None = None,
    before: int | None = None,
    limit: int = 50,
) -> dict[str, Any]:
    """One page of incidents, newest first; `next` is the `before` of the following page."""
    limit = max(1, min(limit, MAX_PAGE))
    params = {"state": state, "service": service, "before": before, "limit": limit + 1}
    with pool.connection() as conn, conn.cursor(row_factory=INCIDENT_ROW) as cur:
        found = cur.execute(q.LIST_INCIDENTS, params).fetchall()
    page = found[:limit]
    more = len(found) > limit
    return {
        "incidents": [incident_json(i) for i in page],
        "next": page[-1].incident_id if more and page else None,
    }


def incident_detail(pool: ConnectionPool, incident_id: int) -> dict[str, Any]:
    """One incident with its alerts and its timeline; NotFound when there is no such one."""
    with pool.connection() as conn:
        with conn.cursor(row_factory=INCIDENT_ROW) as cur:
            incident = cur.execute(q.GET_INCIDENT, (incident_id,)).fetchone()
        if incident is None:
            raise NotFound(f"no incident {incident_id}")
        alerts = conn.execute(q.INCIDENT_ALERTS, (incident_id,)).fetchall()
        events = conn.execute(q.TIMELINE, (incident_id,)).fetchall()
    out = incident_json(incident)
    out["alerts"] = [
        {
            "fingerprint": a[0],
            "starts_at": _time(a[1]),
            "alertname": a[2],
            "labels": a[3],
            "status": a[4],
            "received_at": _time(a[5]),
            "resolved_at": _time(a[6]),
        }
        for a in alerts
    ]
    out["timeline"] = [{"at": _time(e[0]), "kind": e[1], "detail": e[2]} for e in events]
    return out


def services(pool: ConnectionPool, configured: list[str]) -> list[dict[str, Any]]:
    """Every configured or seen service: healthy or not, and its open incident."""
    with pool.connection() as conn:
        found = {r[0]: r for r in conn.execute(q.SERVICES).fetchall()}
    out = []
    for name in sorted(set(configured) | set(found)):
        row = found.get(name)
        out.append(
            {
                "service": name,
                "healthy": bool(row[1]) if row else True,
                "since": _time(row[2]) if row else None,
                "open_incident": row[3] if row else None,
                "incident_state": row[4] if row else None,
                "configured": name in configured,
            }
        )
    return out
