"""The pager's HTTP API: Alertmanager's webhook, incidents, acknowledge links, services.

Writes need a bearer token: ECM_PAGER_TOKEN for people's ack/resolve, ECM_PAGER_ALERTMANAGER_TOKEN
for the webhook. Reads are open. Every refusal is problem+json with the reason.

Acknowledge links: a mail client or a chat preview may fetch a link before anyone taps it, so
GET /v1/ack/{token} only shows a page with a confirm button; its POST acknowledges.
"""

from __future__ import annotations

import html
import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path, Query
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field

from ecm_common.service import Problem, RequireToken, bearer_token
from pager.acklink import AckSigner, BadToken
from pager.engine import Conflict, Engine, NotFound
from pager.payload import Webhook
from pager.views import MAX_PAGE, incident_detail, incident_json, list_incidents, services

log = logging.getLogger(__name__)

IncidentId = Annotated[int, Path(ge=1, le=2**63 - 1, description="incident id")]
NAME = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}$"


class Actor(BaseModel):
    """Who acts (shown in the timeline)."""

    model_config = ConfigDict(extra="forbid")
    by: str = Field("api", min_length=1, max_length=100, pattern=r"^[^\x00-\x1f]+$")


def _not_found(exc: NotFound) -> Problem:
    return Problem(404, str(exc))


def _conflict(exc: Conflict) -> Problem:
    return Problem(409, str(exc))


def routers(engine: Engine, signer: AckSigner, alertmanager_token: Any) -> list[APIRouter]:
    """The pager's routes on one engine and one ack-link signer."""
    webhook = APIRouter(tags=["alertmanager"])

    @webhook.post(
        "/v1/alertmanager",
        summary="Alertmanager's webhook (payload version 4); idempotent for retries",
        dependencies=[bearer_token(alertmanager_token)],
    )
    def alertmanager(hook: Webhook) -> dict[str, Any]:
        result = engine.ingest(hook)
        return {
            "opened": result.opened,
            "attached": result.attached,
            "resolved_alerts": result.resolved_alerts,
            "resolved_incidents": result.resolved_incidents,
            "unchanged": result.unchanged,
            "heartbeat": result.heartbeat,
        }

    people = APIRouter(tags=["incidents"])

    @people.get("/v1/incidents", summary="Incidents, newest first (keyset pagination)")
    def incidents(
        state: Literal["triggered", "acknowledged", "resolved"] | None = None,
        service: Annotated[str | None, Query(pattern=NAME)] = None,
        before: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    ) -> dict[str, Any]:
        return list_incidents(engine.pool, state=state, service=service, before=before, limit=limit)

    @people.get("/v1/incidents/{incident_id}", summary="One incident with alerts and timeline")
    def incident(incident_id: IncidentId) -> dict[str, Any]:
        try:
            return incident_detail(engine.pool, incident_id)
        except NotFound as exc:
            raise _not_found(exc) from None

    @people.post(
        "/v1/incidents/{incident_id}/ack",
        summary="Acknowledge: stop the escalation (re-triggers after the ack timeout)",
        dependencies=[RequireToken],
    )
    def ack(incident_id: IncidentId, actor: Annotated[Actor | None, Body()] = None) -> Any:
        try:
            return incident_json(engine.acknowledge(incident_id, actor.by if actor else "api"))
        except NotFound as exc:
            raise _not_found(exc) from None
        except Conflict as exc:
            raise _conflict(exc) from None

    @people.post(
        "/v1/incidents/{incident_id}/resolve",
        summary="Resolve by hand: close the incident, mark the service healthy",
        dependencies=[RequireToken],
    )
    def resolve(incident_id: IncidentId, actor: Annotated[Actor | None, Body()] = None) -> Any:
        try:
            return incident_json(engine.resolve(incident_id, actor.by if actor else "api"))
        except NotFound as exc:
            raise _not_found(exc) from None
        except Conflict as exc:
            raise _conflict(exc) from None

    @people.get("/v1/services", summary="Every monitored service and its health")
    def service_list() -> dict[str, Any]:
        return {"services": services(engine.pool, list(engine.settings.services))}

    link = APIRouter(tags=["acknowledge links"])

    def _checked(token: str) -> int:
        try:
            return signer.verify(token, engine.clock.time())
        except BadToken as exc:
            status = 410 if "expired" in str(exc) else 403 if "signature" in str(exc) else 400
            raise Problem(status, str(exc)) from None

    @link.get(
        "/v1/ack/{token}",
        summary="The page behind an acknowledge link: a button that acknowledges",
        response_class=HTMLResponse,
    )
    def ack_page(token: Annotated[str, Path(max_length=200)]) -> HTMLResponse:
        incident_id = _checked(token)
        return HTMLResponse(_page(
            f"Incident #{incident_id}",
            f'<form method="post"><button type="submit">Acknowledge incident #{incident_id}'
            "</button></form>",
        ))  # fmt: skip

    @link.post(
        "/v1/ack/{token}",
        summary="Acknowledge through a link (the link's token is the credential)",
        response_class=HTMLResponse,
    )
    def ack_link(token: Annotated[str, Path(max_length=200)]) -> HTMLResponse:
        incident_id = _checked(token)
        try:
            engine.acknowledge(incident_id, "ack link")
        except NotFound as exc:
            raise _not_found(exc) from None
        except Conflict as exc:
            raise _conflict(exc) from None
        return HTMLResponse(
            _page(f"Incident #{incident_id}", "<p>Acknowledged. Escalation stopped.</p>")
        )

    return [webhook, people, link]


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width'>"
        f"<title>{html.escape(title)}</title></head><body><h1>{html.escape(title)}</h1>"
        f"{body}</body></html>"
    )
