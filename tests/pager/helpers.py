"""Alertmanager payloads and database reads for the pager tests."""

from __future__ import annotations

from typing import Any

import psycopg

from pager.payload import Webhook

STARTS = "2027-01-15T08:00:00Z"


def alert(
    fingerprint: str,
    status: str = "firing",
    *,
    service: str | None = None,
    alertname: str = "EcmTowerFailureRatioHigh",
    starts: str = STARTS,
) -> dict[str, Any]:
    """One alert as Alertmanager sends it."""
    labels = {"alertname": alertname, "severity": "critical", "tower": f"T{fingerprint}"}
    if service is not None:
        labels["service"] = service
    return {
        "status": status,
        "labels": labels,
        "annotations": {"summary": f"{alertname} on T{fingerprint}"},
        "startsAt": starts,
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2027-01-15T09:00:00Z",
        "generatorURL": "http://prometheus:9090/graph",
        "fingerprint": fingerprint,
    }


def payload(*alerts: dict[str, Any]) -> dict[str, Any]:
    """The webhook body around alerts."""
    firing = any(a["status"] == "firing" for a in alerts)
    return {
        "version": "4",
        "groupKey": '{}/{severity="critical"}:{alertname="EcmTowerFailureRatioHigh"}',
        "truncatedAlerts": 0,
        "status": "firing" if firing else "resolved",
        "receiver": "pager",
        "groupLabels": {"alertname": "EcmTowerFailureRatioHigh"},
        "commonLabels": {"severity": "critical"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": list(alerts),
    }


def hook(*alerts: dict[str, Any]) -> Webhook:
    """The parsed webhook."""
    return Webhook.model_validate(payload(*alerts))


def rows(url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Every row of a query."""
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()


def notified(url: str) -> list[tuple[int, int, int, str, str]]:
    """(incident, step, level, channel, target) of every queued notification, in order."""
    return [
        (r[0], r[1], r[2], r[3], r[4])
        for r in rows(
            url,
            "SELECT incident_id, step, level, channel, target FROM pager_outbox"
            " ORDER BY notification_id",
        )
    ]


def levels(url: str, incident_id: int) -> list[int]:
    """The level of each escalation step of an incident, in order (one entry per step)."""
    return [
        r[0]
        for r in rows(
            url,
            "SELECT min(level) FROM pager_outbox WHERE incident_id = %s"
            " GROUP BY step ORDER BY step",
            incident_id,
        )
    ]


def state(url: str, incident_id: int) -> str:
    """The incident's state."""
    return str(
        rows(url, "SELECT state FROM pager_incidents WHERE incident_id = %s", incident_id)[0][0]
    )


def healthy(url: str, service: str) -> bool:
    """The service's health as stored."""
    return bool(
        rows(url, "SELECT healthy FROM pager_services WHERE service_id = %s", service)[0][0]
    )
