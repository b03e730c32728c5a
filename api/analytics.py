"""The analytics routes, from the per-minute call rollups (api/call_rollup.py), never raw calls:
GET /v1/analytics/summary, /failure-reasons, /timeseries, /towers; POST /v1/analytics/rebuild.

A range [from, to) holds the minutes that start in it, from rounded down to the minute; both
default to the last 24 hours. p95 comes from the minutes' latency histograms in the shared layout
(ecm_common/latency.py): within 1% of percentile_cont over the raw calls.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import anyio
import numpy as np
from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from api import analytics_sql as q
from api.call_rollup import CallRollup
from api.calls import TOWER_ID_MAX, check_range
from api.reader import Reader
from ecm_common.clock import Clock
from ecm_common.durations import SYNTAX, parse_duration
from ecm_common.latency import N_BUCKETS, quantile_from_counts, quantiles_by_row
from ecm_common.service import Problem, RequireToken

DAY_S = 86400.0
MAX_RANGE_S = 400 * DAY_S
MAX_POINTS = 10_000
MAX_TOWERS = 1000
Metric = Literal["calls", "failed", "failure_ratio", "avg_latency_ms", "p95_latency_ms"]
Order = Literal["failure_ratio", "failed", "calls", "avg_latency_ms"]

From = Annotated[
    datetime | None, Query(alias="from", description="start (RFC 3339); default to - 24h")
]
To = Annotated[datetime | None, Query(description="end, exclusive (RFC 3339); default now")]
Tower = Annotated[str | None, Query(max_length=TOWER_ID_MAX, description="one tower only")]
_ERRORS: dict[int | str, dict[str, Any]] = {
    422: {"description": "a parameter is malformed or out of range (the detail says which)"},
    503: {"description": "database unavailable or the query timed out; retry"},
}


class Summary(BaseModel):
    """Calls of a range: counts, failure ratio (0..1), latency average and p95 (ms)."""

    start: datetime = Field(serialization_alias="from")
    end: datetime = Field(serialization_alias="to")
    tower: str | None
    calls: int
    failed: int
    failure_ratio: float | None
    avg_latency_ms: float | None
    p95_latency_ms: float | None


class ReasonCount(BaseModel):
    """Failed calls of one reason and their share of the failed calls (0..1)."""

    reason: str
    calls: int
    share: float


class Reasons(BaseModel):
    """Failed calls of a range by failure reason, most first."""

    start: datetime = Field(serialization_alias="from")
    end: datetime = Field(serialization_alias="to")
    tower: str | None
    failed: int
    reasons: list[ReasonCount]


class Point(BaseModel):
    """One step of a time series; value is null where it is undefined (no calls)."""

    t: datetime
    value: float | None


class Series(BaseModel):
    """A metric per step over a range."""

    metric: str
    step_seconds: int
    start: datetime = Field(serialization_alias="from")
    end: datetime = Field(serialization_alias="to")
    tower: str | None
    points: list[Point]


class RankedTower(BaseModel):
    """A tower's calls over the range."""

    tower_id: str
    region: str
    calls: int
    failed: int
    failure_ratio: float
    avg_latency_ms: float


class Ranking(BaseModel):
    """Towers worst first by order."""

    order: str
    start: datetime = Field(serialization_alias="from")
    end: datetime = Field(serialization_alias="to")
    items: list[RankedTower]


def window(start: datetime | None, end: datetime | None, clock: Clock) -> tuple[datetime, datetime]:
    """[from, to) with defaults, from rounded down to the minute; 422 when it is not a range."""
    check_range(start, end)
    to = end or datetime.fromtimestamp(clock.time(), UTC)
    frm = start or to - timedelta(days=1)
    frm = frm.astimezone(UTC).replace(second=0, microsecond=0)
    if frm >= to:
        raise Problem(422, "the range holds no whole minute start: from must be earlier than to")
    if (to - frm).total_seconds() > MAX_RANGE_S:
        raise Problem(422, f"the range is longer than {MAX_RANGE_S / DAY_S:g} days")
    return frm, to


def _inner(frm: datetime, to: datetime, size_s: int) -> tuple[datetime, datetime]:
    """The whole size_s periods (epoch-aligned) inside [frm, to), or an empty range at to."""
    lo = -(-frm.timestamp() // size_s) * size_s
    hi = to.timestamp() // size_s * size_s
    if lo >= hi:
        return to, to
    return datetime.fromtimestamp(lo, UTC), datetime.fromtimestamp(hi, UTC)


def levels(frm: datetime, to: datetime) -> dict[str, datetime]:
    """Bounds of the whole hours and whole days inside [frm, to) (analytics_sql._LEVELS)."""
    h_lo, h_hi = _inner(frm, to, 3600)
    d_lo, d_hi = _inner(h_lo, h_hi, 86400) if h_lo < h_hi else (h_hi, h_hi)
    return {"h_lo": h_lo, "h_hi": h_hi, "d_lo": d_lo, "d_hi": d_hi}


def _ratio(num: Any, den: int) -> float | None:
    return float(num) / den if den and num is not None else None


def analytics_router(
    reader: Reader, rollup: CallRollup, clock: Clock, guard: Sequence[Any] = ()
) -> APIRouter:
    """The router of the analytics routes; guard: the read scope's dependency."""
    router = APIRouter(tags=["analytics"], dependencies=list(guard))

    @router.get(
        "/v1/analytics/summary", summary="Calls, failures, latency of a range", responses=_ERRORS
    )
    async def summary(start: From = None, to: To = None, tower: Tower = None) -> Summary:
        frm, end = window(start, to, clock)
        params = {"from": frm, "to": end, "tower": tower, **levels(frm, end)}
        rows = await reader.rows(q.SUMMARY_TOWER if tower else q.SUMMARY_ALL, params)
        calls = failed = 0
        latency_sum: Any = None
        counts = np.zeros(N_BUCKETS, np.int64)
        for bucket, a, b, c in rows:
            if bucket is None:
                calls, failed, latency_sum = int(a or 0), int(b or 0), c
            else:
                counts[int(bucket)] = int(a)
        p95 = quantile_from_counts(counts) if calls else math.nan
        return Summary(
            start=frm,
            end=end,
            tower=tower,
            calls=calls,
            failed=failed,
            failure_ratio=_ratio(failed, calls),
            avg_latency_ms=_ratio(latency_sum, calls),
            p95_latency_ms=None if math.isnan(p95) else p95,
        )

    @router.get(
        "/v1/analytics/failure-reasons",
        summary="Failed calls of a range by failure reason",
        responses=_ERRORS,
    )
    async def failure_reasons(start: From = None, to: To = None, tower: Tower = None) -> Reasons:
        frm, end = window(start, to, clock)
        params = {"from": frm, "to": end, "tower": tower}
        rows = await reader.rows(q.REASONS_TOWER if tower else q.REASONS_ALL, params)
        failed = sum(int(n) for _, n in rows)
        return Reasons(
            start=frm,
            end=end,
            tower=tower,
            failed=failed,
            reasons=[ReasonCount(reason=r, calls=int(n), share=int(n) / failed) for r, n in rows],
        )

    @router.get(
        "/v1/analytics/timeseries", summary="A metric per step over a range", responses=_ERRORS
    )
    async def timeseries(
        metric: Metric = "calls",
        step: Annotated[str, Query(max_length=32, description="whole minutes: 1m, 5m, 1h")] = "5m",
        start: From = None,
        to: To = None,
        tower: Tower = None,
    ) -> Series:
        frm, end = window(start, to, clock)
        try:
            step_s = parse_duration(step)
        except ValueError:
            raise Problem(422, f"step: expected {SYNTAX}") from None
        if step_s < 60 or step_s % 60:
            raise Problem(422, "step must be a whole number of minutes, at least 1m")
        first = datetime.fromtimestamp(frm.timestamp() // step_s * step_s, UTC)
        n = math.ceil((end - first).total_seconds() / step_s)
        if n > MAX_POINTS:
            raise Problem(422, f"from, to and step make {n} points; at most {MAX_POINTS}")
        params = {"from": frm, "to": end, "tower": tower, "step": timedelta(seconds=step_s)}
        sums: dict[datetime, tuple[int, int, Any]] = {}
        for t, calls, failed, lat in await reader.rows(
            q.SERIES_TOWER if tower else q.SERIES_ALL, params
        ):
            sums[t] = (int(calls), int(failed), lat)
        times = [first + timedelta(seconds=i * step_s) for i in range(n)]
        values: list[float | None]
        if metric == "p95_latency_ms":
            index = {t: i for i, t in enumerate(times)}
            counts = np.zeros((n, N_BUCKETS), np.int64)
            for t, bucket, c in await reader.rows(
                q.SERIES_HIST_TOWER if tower else q.SERIES_HIST_ALL, params
            ):
                counts[index[t], int(bucket)] = int(c)
            values = [None if math.isnan(v) else float(v) for v in quantiles_by_row(counts)]
        else:
            values = [_value(metric, sums.get(t)) for t in times]
        return Series(
            metric=metric,
            step_seconds=int(step_s),
            start=frm,
            end=end,
            tower=tower,
            points=[Point(t=t, value=v) for t, v in zip(times, values, strict=True)],
        )

    @router.get(
        "/v1/analytics/towers", summary="Towers worst first over a range", responses=_ERRORS
    )
    async def towers(
        order: Order = "failure_ratio",
        limit: Annotated[int, Query(ge=1, le=MAX_TOWERS)] = 10,
        min_calls: Annotated[int, Query(ge=1, le=1_000_000_000)] = 1,
        start: From = None,
        to: To = None,
    ) -> Ranking:
        frm, end = window(start, to, clock)
        params = {"from": frm, "to": end, "limit": limit, "min_calls": min_calls}
        rows = await reader.rows(q.towers_ranked(order), params)
        return Ranking(
            order=order,
            start=frm,
            end=end,
            items=[
                RankedTower(
                    tower_id=t,
                    region=r,
                    calls=int(c),
                    failed=int(f),
                    failure_ratio=int(f) / int(c),
                    avg_latency_ms=float(lat) / int(c),
                )
                for t, r, c, f, lat in rows
            ],
        )

    @router.post(
        "/v1/analytics/rebuild",
        summary="Rebuild the call rollups from the raw calls (write token)",
        status_code=202,
        dependencies=[RequireToken],
        responses={401: {"description": "a bearer token is required or not valid"}},
    )
    async def rebuild() -> Response:
        await anyio.to_thread.run_sync(rollup.reset)
        return Response(
            '{"status":"rebuilding","detail":"the rollups were emptied; the rollup job folds'
            ' every stored call back in, in bounded steps"}',
            status_code=202,
            media_type="application/json",
        )

    return router


def _value(metric: str, sums: tuple[int, int, Any] | None) -> float | None:
    calls, failed, lat = sums or (0, 0, None)
    if metric == "calls":
        return float(calls)
    if metric == "failed":
        return float(failed)
    if metric == "failure_ratio":
        return _ratio(failed, calls)
    return _ratio(lat, calls)
