"""The calls routes: GET /v1/calls, /v1/calls/{call_id}, /v1/towers, /v1/towers/{id}/calls.

Pages are keyset pages (api/calls_sql.py) with an opaque cursor: the key of the page's last row.
A cursor names a position, not a filter: the client sends the same filters with it. Rows
committed later with an older timestamp than the cursor's appear on no page already read (a
page never skips or repeats a row that existed when the first page was read).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel

from api import calls_sql
from api.reader import Reader
from ecm_common.clock import Clock
from ecm_common.service import Problem

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_PAGE = 1000
DEFAULT_PAGE = 100
MAX_TOWERS_PAGE = 5000
MAX_CURSOR_CHARS = 400
TOWER_ID_MAX = 128
REASON_MAX = 64
HOUR_S = 3600.0


class Call(BaseModel):
    """One emergency call as stored."""

    call_id: int
    call_uuid: str
    timestamp: datetime
    caller_id: str
    tower_id: str
    latency_ms: int
    status: Literal["SUCCESS", "FAILED"]
    failure_reason: str | None


class CallPage(BaseModel):
    """A page of calls, newest first; next_cursor is null on the last page."""

    items: list[Call]
    next_cursor: str | None


class Tower(BaseModel):
    """A tower, its region and its calls of the last 60 minutes (the current one included),
    from the call rollups."""

    tower_id: str
    region: str
    calls_last_hour: int
    failed_last_hour: int
    failure_ratio_last_hour: float | None
    avg_latency_ms_last_hour: float | None


class TowerPage(BaseModel):
    """A page of towers by id; next_cursor is null on the last page."""

    items: list[Tower]
    next_cursor: str | None


From = Annotated[
    datetime | None, Query(alias="from", description="earliest timestamp (RFC 3339, inclusive)")
]
To = Annotated[datetime | None, Query(description="latest timestamp (RFC 3339, exclusive)")]
Status = Annotated[Literal["SUCCESS", "FAILED"] | None, Query(description="call status")]
Reason = Annotated[
    str | None, Query(max_length=REASON_MAX, description="failure reason (implies FAILED)")
]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"rows per page (1..{MAX_PAGE})")]
Cursor = Annotated[
    str | None, Query(max_length=MAX_CURSOR_CHARS, description="next_cursor of the page before")
]
TowerId = Annotated[str, Path(min_length=1, max_length=TOWER_ID_MAX)]
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "no such call or tower"}}
_BAD: dict[int | str, dict[str, Any]] = {
    400: {"description": "the cursor is not one this API gave"},
    422: {"description": "a filter is malformed or out of range (the detail says which)"},
    503: {"description": "database unavailable or the query timed out; retry"},
}


def encode_call_cursor(ts: datetime, call_id: int) -> str:
    """The cursor after a row: its timestamp in microseconds and its id."""
    us = (ts - EPOCH) // timedelta(microseconds=1)
    return _b64(f"c1:{us}:{call_id}")


def decode_call_cursor(cursor: str) -> tuple[datetime, int]:
    """(timestamp, call_id) of a cursor; a Problem 400 when it is not one of ours."""
    parts = _unb64(cursor).split(":")
    if len(parts) != 3 or parts[0] != "c1":
        raise _bad_cursor()
    try:
        us, call_id = int(parts[1]), int(parts[2])
        return EPOCH + timedelta(microseconds=us), call_id
    except (ValueError, OverflowError):
        raise _bad_cursor() from None


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _unb64(cursor: str) -> str:
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise _bad_cursor() from None


def _bad_cursor() -> Problem:
    return Problem(400, "the cursor is not valid; use next_cursor from a page of this route")


def _aware(name: str, value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise Problem(422, f"{name} must carry a time zone (e.g. 2026-05-28T10:00:00Z)")
    return value


def check_range(start: datetime | None, end: datetime | None) -> None:
    """Both times carry a zone and from comes before to (422 otherwise)."""
    _aware("from", start)
    _aware("to", end)
    if start is not None and end is not None and start >= end:
        raise Problem(422, "from must be earlier than to")


def calls_router(reader: Reader, clock: Clock, guard: Sequence[Any] = ()) -> APIRouter:
    """The router of the calls and towers routes; guard: the read scope's dependency."""
    router = APIRouter(tags=["calls"], dependencies=list(guard))

    async def page(
        tower: str | None,
        start: datetime | None,
        end: datetime | None,
        status: str | None,
        reason: str | None,
        limit: int,
        cursor: str | None,
    ) -> CallPage:
        check_range(start, end)
        if reason is not None and status == "SUCCESS":
            raise Problem(422, "a failure reason filter needs status FAILED or no status")
        params: dict[str, Any] = {
            "from": start,
            "to": end,
            "tower": tower,
            "status": status,
            "reason": reason,
            "limit": limit + 1,
        }
        if cursor is not None:
            params["after_ts"], params["after_id"] = decode_call_cursor(cursor)
            params["after"] = True
        filters = [n for n in calls_sql.FILTERS if params.get(n) is not None]
        if "reason" in filters and "status" in filters:
            filters.remove("status")
        rows = await reader.rows(calls_sql.calls_page(filters), params)
        items = [_call(r) for r in rows[:limit]]
        more = len(rows) > limit
        last = items[-1] if items else None
        nxt = encode_call_cursor(last.timestamp, last.call_id) if more and last else None
        return CallPage(items=items, next_cursor=nxt)

    @router.get("/v1/calls", summary="Emergency calls, newest first (keyset pages)", responses=_BAD)
    async def list_calls(
        start: From = None,
        to: To = None,
        tower: Annotated[str | None, Query(max_length=TOWER_ID_MAX)] = None,
        status: Status = None,
        reason: Reason = None,
        limit: Limit = DEFAULT_PAGE,
        cursor: Cursor = None,
    ) -> CallPage:
        return await page(tower, start, to, status, reason, limit, cursor)

    @router.get(
        "/v1/calls/{call_id}", summary="One emergency call", responses={**_BAD, **_NOT_FOUND}
    )
    async def get_call(call_id: Annotated[int, Path(ge=1, le=2**63 - 1)]) -> Call:
        rows = await reader.rows(calls_sql.ONE_CALL, {"id": call_id})
        if not rows:
            raise Problem(404, f"no call with call_id {call_id}")
        return _call(rows[0])

    @router.get(
        "/v1/towers/{tower_id}/calls",
        summary="A tower's emergency calls, newest first (keyset pages)",
        responses={**_BAD, **_NOT_FOUND},
    )
    async def tower_calls(
        tower_id: TowerId,
        start: From = None,
        to: To = None,
        status: Status = None,
        reason: Reason = None,
        limit: Limit = DEFAULT_PAGE,
        cursor: Cursor = None,
    ) -> CallPage:
        known = await reader.rows(calls_sql.TOWER_KNOWN, {"tower": tower_id})
        if not known or not known[0][0]:
            raise Problem(404, "no such tower: not in the towers table and named by no call")
        return await page(tower_id, start, to, status, reason, limit, cursor)

    @router.get(
        "/v1/towers", summary="Towers by id with region and last-hour numbers", responses=_BAD
    )
    async def list_towers(
        region: Annotated[str | None, Query(max_length=TOWER_ID_MAX)] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_TOWERS_PAGE)] = 1000,
        cursor: Cursor = None,
    ) -> TowerPage:
        after = ""
        if cursor is not None:
            text = _unb64(cursor)
            if not text.startswith("t1:"):
                raise _bad_cursor()
            after = text[3:]
        # The last hour is the 60 minutes of rollups up to the current one.
        since = datetime.fromtimestamp((clock.time() - HOUR_S) // 60 * 60 + 60, UTC)
        params = {"after_tower": after, "region": region, "limit": limit + 1, "since": since}
        rows = await reader.rows(calls_sql.TOWERS_PAGE, params)
        items = [_tower(r) for r in rows[:limit]]
        more = len(rows) > limit
        nxt = _b64(f"t1:{items[-1].tower_id}") if more and items else None
        return TowerPage(items=items, next_cursor=nxt)

    return router


def _call(r: tuple[Any, ...]) -> Call:
    return Call(
        call_id=r[0],
        call_uuid=r[1],
        timestamp=r[2],
        caller_id=r[3],
        tower_id=r[4],
        latency_ms=r[5],
        status=r[6],
        failure_reason=r[7],
    )


def _tower(r: tuple[Any, ...]) -> Tower:
    calls, failed, latency_sum = int(r[2] or 0), int(r[3] or 0), r[4]
    return Tower(
        tower_id=r[0],
        region=r[1],
        calls_last_hour=calls,
        failed_last_hour=failed,
        failure_ratio_last_hour=failed / calls if calls else None,
        avg_latency_ms_last_hour=float(latency_sum) / calls if calls else None,
    )
