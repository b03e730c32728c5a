"""The PM routes: POST /v1/events/pm."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from api.pm_events import FIELDS, JSON_TYPES, NDJSON_TYPES
from api.pm_ingest import Ingest
from ecm_common.service import RequireToken

_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": list(FIELDS),
    "additionalProperties": False,
    "properties": {
        "event_id": {"type": "string", "format": "uuid"},
        "schema_version": {"type": "integer", "enum": [1]},
        "source": {"type": "string", "maxLength": 64},
        "event_time": {"type": "string", "format": "date-time"},
        "entity_type": {"type": "string", "maxLength": 32, "example": "cell"},
        "entity_id": {"type": "string", "maxLength": 128, "example": "CELL-000123"},
        "metrics": {
            "type": "object",
            "maxProperties": 64,
            "additionalProperties": {"type": "number"},
            "example": {
                "dl_prb_util_pct": 73.2,
                "ul_prb_util_pct": 41.8,
                "rrc_conn_avg": 18,
                "drop_rate_pct": 0.7,
            },
        },
    },
}
_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            JSON_TYPES[0]: {
                "schema": {"oneOf": [_EVENT_SCHEMA, {"type": "array", "items": _EVENT_SCHEMA}]}
            },
            NDJSON_TYPES[0]: {"schema": {"type": "string", "description": "one event per line"}},
        },
    }
}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "every event accepted or a duplicate"},
    207: {"description": "some events rejected, the others stored (same body)"},
    401: {"description": "a bearer token is required or not valid"},
    413: {"description": "body or batch over the limit"},
    415: {"description": "not application/json or application/x-ndjson"},
    422: {"description": "every event rejected (problem+json with the same members)"},
    503: {"description": "database unavailable; retry after Retry-After seconds"},
}


def pm_router(ingest: Ingest) -> APIRouter:
    """The router of PM ingest."""
    router = APIRouter(tags=["pm"])

    @router.post(
        "/v1/events/pm",
        summary="Store PM counter events (one, a JSON array, or NDJSON); dedup by event_id",
        dependencies=[RequireToken],
        responses=_RESPONSES,
        openapi_extra=_BODY,
    )
    async def post_pm_events(request: Request) -> Response:
        body = await request.body()
        return await ingest.handle(body, request.headers.get("content-type"))

    return router
