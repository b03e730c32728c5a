"""POST /v1/events/pm from body to answer: parse, validate, store the good events in one
statement, and say for every event whether it was accepted, a duplicate or rejected.

Answers (docs/CONTRACT.md, "RAN PM events"): 200 when no event was rejected; 207 (Multi-Status)
when some were rejected and the others stored; 422 problem+json when every event was rejected;
the same members (accepted, duplicate, rejected, results) in all three. 400/413/415 problems for
a body that cannot be read at all, 503 with Retry-After when the database is unavailable.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

import anyio
import orjson
from fastapi import Response

from api.metrics import IngestMetrics
from api.pm_events import BodyError, Bounds, Rows, Status, Verdict, parse_body, validate
from api.pm_store import Store
from ecm_common.clock import Clock
from ecm_common.errors import DatabaseUnavailable
from ecm_common.service import Problem
from ecm_common.service_errors import problem_response

log = logging.getLogger(__name__)

RETRY_AFTER_S = 5
MULTI_STATUS = 207


class Ingest:
    """The ingest path of PM events, with its store, bounds, clock and metrics."""

    def __init__(self, store: Store, bounds: Bounds, metrics: IngestMetrics, clock: Clock) -> None:
        self.store = store
        self.bounds = bounds
        self.metrics = metrics
        self.clock = clock

    def check(self, body: bytes, content_type: str | None) -> tuple[Rows, list[Verdict], int]:
        """Parse and validate (CPU work, run off the event loop)."""
        try:
            events = parse_body(body, content_type, self.bounds.max_events)
        except BodyError as exc:
            raise Problem(exc.status, exc.detail) from None
        now = datetime.fromtimestamp(self.clock.time(), UTC)
        rows, verdicts = validate(events, now, self.bounds)
        return rows, verdicts, len(events)

    async def handle(self, body: bytes, content_type: str | None) -> Response:
        """The answer to one POST."""
        rows, verdicts, n = await anyio.to_thread.run_sync(self.check, body, content_type)
        self.metrics.batch_events.observe(n)
        start = time.perf_counter()
        try:
            stored = await self.store.insert(rows)
        except DatabaseUnavailable as exc:
            self.metrics.store_failures.inc()
            raise Problem(
                503, f"{exc}; nothing was stored, retry later",
                headers={"Retry-After": str(RETRY_AFTER_S)},
            ) from None  # fmt: skip
        self.metrics.store_duration.observe(time.perf_counter() - start)
        for i, eid in zip(rows.index, rows.event_id, strict=True):
            status: Status = "accepted" if eid in stored else "duplicate"
            verdicts.append(Verdict(i, eid, status))
        verdicts.sort(key=lambda v: v.index)
        return self._answer(verdicts)

    def _answer(self, verdicts: list[Verdict]) -> Response:
        counts = {"accepted": 0, "duplicate": 0, "rejected": 0}
        for v in verdicts:
            counts[v.status] += 1
            if v.reason is not None:
                self.metrics.rejected.labels(v.reason).inc()
        self.metrics.accepted.inc(counts["accepted"])
        self.metrics.duplicate.inc(counts["duplicate"])
        body: dict[str, Any] = {**counts, "results": [v.as_json() for v in verdicts]}
        if counts["rejected"] and not counts["accepted"] + counts["duplicate"]:
            return problem_response(
                422, f"none of the {counts['rejected']} event(s) is valid; see results",
                extensions=body,
            )  # fmt: skip
        return Response(
            orjson.dumps(body),
            status_code=MULTI_STATUS if counts["rejected"] else 200,
            media_type="application/json",
        )
