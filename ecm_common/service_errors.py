"""RFC 9457 problem details: every 4xx and 5xx of an ECM HTTP service is application/problem+json.

A body always has `type`, `title`, `status` and `detail`; a client's input is never echoed back,
so a huge or secret value sent by mistake does not come back in the error.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
# A validation answer lists at most this many fields, each message cut to this length.
MAX_FIELD_ERRORS = 20
MAX_MESSAGE_CHARS = 200


class Problem(HTTPException):
    """An error a route raises: status, a detail for the client, optional type URI and members."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        type_uri: str = "about:blank",
        title: str | None = None,
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(status, detail, dict(headers) if headers else None)
        self.type_uri = type_uri
        self.title = title
        self.extensions = extensions


def problem_response(
    status: int,
    detail: str,
    *,
    type_uri: str = "about:blank",
    title: str | None = None,
    headers: Mapping[str, str] | None = None,
    extensions: Mapping[str, Any] | None = None,
) -> JSONResponse:
    """A problem+json response; the title defaults to the status phrase, as RFC 9457 asks."""
    body = {
        "type": type_uri,
        "title": title or _phrase(status),
        "status": status,
        "detail": detail,
        **(extensions or {}),
    }
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def install_problem_handlers(app: FastAPI) -> None:
    """Answer HTTP errors (404, 405, 401, 413, ...), validation errors and crashes as problems."""
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _crash)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else _phrase(exc.status_code)
    if isinstance(exc, Problem):
        return problem_response(
            exc.status_code,
            detail,
            type_uri=exc.type_uri,
            title=exc.title,
            headers=exc.headers,
            extensions=exc.extensions,
        )
    return problem_response(exc.status_code, detail, headers=exc.headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors: Sequence[Any] = exc.errors()
    bad_json = [e for e in errors if e.get("type") == "json_invalid"]
    if bad_json:
        reason = (bad_json[0].get("ctx") or {}).get("error", "JSON decode error")
        return problem_response(400, f"request body is not valid JSON: {_cut(str(reason))}")
    fields = [
        {"field": ".".join(str(p) for p in e.get("loc", ())), "message": _cut(str(e.get("msg")))}
        for e in errors[:MAX_FIELD_ERRORS]
    ]
    summary = "; ".join(f"{f['field']}: {f['message']}" for f in fields[:5])
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return problem_response(422, f"invalid request: {summary}{more}", extensions={"errors": fields})


async def _crash(request: Request, exc: Exception) -> JSONResponse:
    # uvicorn logs the traceback; the client learns nothing about the inside.
    return problem_response(500, "internal error; the service log has the details")


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _cut(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 1] + "…"
