"""PM events from a request body: parsed (JSON object, JSON array or NDJSON), validated one by one,
and turned into columns for one set-based insert, with a verdict for every event.

A bad event never spoils its batch: it gets a `rejected` verdict with a reason from REASONS (a
fixed vocabulary, used as a metric label) and a detail that never echoes the client's values.
Bounds (docs/CONTRACT.md, "RAN PM events"): ids and names of bounded length and charset, at most
MAX_METRICS metrics, finite numbers of magnitude at most MAX_MAGNITUDE, percentages (`*_pct`)
within 0..100, event_time within [now - max_event_age, now + max_future_skew].
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, get_args

import orjson

from ecm_common.durations import format_duration

SCHEMA_VERSIONS = frozenset({1})
FIELDS = (
    "event_id",
    "schema_version",
    "source",
    "event_time",
    "entity_type",
    "entity_id",
    "metrics",
)
_FIELD_SET = frozenset(FIELDS)
MAX_METRICS = 64
MAX_MAGNITUDE = 1e15
MAX_TIME_CHARS = 64
MAX_UUID_CHARS = 45
JSON_TYPES = ("application/json",)
NDJSON_TYPES = ("application/x-ndjson", "application/ndjson")

# Why an event was rejected: the `reason` of its verdict and the label of the rejected counter.
Reason = Literal[
    "malformed_json",
    "not_an_object",
    "missing_field",
    "unknown_field",
    "bad_event_id",
    "unknown_schema_version",
    "bad_event_time",
    "event_time_out_of_range",
    "bad_source",
    "bad_entity",
    "bad_metrics",
]
REASONS: tuple[Reason, ...] = get_args(Reason)
Status = Literal["accepted", "duplicate", "rejected"]

_SOURCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_ENTITY_TYPE = re.compile(r"[a-z][a-z0-9_]{0,31}")
_ENTITY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/=-]{0,127}")
_METRIC = re.compile(r"[a-z][a-z0-9_]{0,63}")
_CANONICAL_UUID = re.compile(r"(?i)[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# Values already found valid, per pattern (metric names, sources and entity types repeat in
# every event): a set lookup instead of a regex. Bounded: past the limit, values are checked
# each time. Entity ids (one per cell) are not remembered.
_VALID: dict[re.Pattern[str], set[str]] = {_SOURCE: set(), _ENTITY_TYPE: set(), _METRIC: set()}
MAX_REMEMBERED = 4096


def _matches(pattern: re.Pattern[str], value: str) -> bool:
    known = _VALID.get(pattern)
    if known is not None and value in known:
        return True
    if not pattern.fullmatch(value):
        return False
    if known is not None and len(known) < MAX_REMEMBERED:
        known.add(value)
    return True


class BodyError(Exception):
    """The body as a whole cannot be read (the answer is a 4xx problem, nothing is stored)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class Bounds:
    """What an event must keep to, from the settings."""

    max_events: int
    max_event_age_s: float
    max_future_skew_s: float


@dataclass(frozen=True)
class Verdict:
    """The answer for one event of the batch, by its position."""

    index: int
    event_id: str | None
    status: Status
    reason: Reason | None = None
    detail: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The verdict as it appears in the response's `results`."""
        out: dict[str, Any] = {
            "index": self.index,
            "event_id": self.event_id,
            "status": self.status,
        }
        if self.reason is not None:
            out["reason"] = self.reason
            out["detail"] = self.detail
        return out


@dataclass
class Rows:
    """Valid events as columns (the insert's arrays) and their positions in the batch."""

    index: list[int] = field(default_factory=list)
    event_id: list[str] = field(default_factory=list)  # canonical UUID text
    event_time: list[datetime] = field(default_factory=list)
    source: list[str] = field(default_factory=list)
    entity_type: list[str] = field(default_factory=list)
    entity_id: list[str] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)
    schema_version: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.index)


class _Malformed:
    """A line of NDJSON that is not JSON."""

    def __init__(self, detail: str) -> None:
        self.detail = detail


class _Rejected(Exception):
    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def media_type(content_type: str | None) -> str:
    """The media type of a Content-Type header, lower case, without parameters."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def _loads(text: str) -> Any:
    # orjson: several times faster than json on a 1,000-event batch; it refuses NaN, Infinity,
    # numbers out of range and nesting deeper than 1024 levels (a ValueError, as json's).
    return orjson.loads(text)


def parse_body(body: bytes, content_type: str | None, max_events: int) -> list[object]:
    """The events of a body, in order; BodyError (400, 413, 415) when the body is unusable."""
    kind = media_type(content_type)
    if kind not in JSON_TYPES + NDJSON_TYPES:
        raise BodyError(415, "send application/json (an event or an array) or application/x-ndjson")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BodyError(400, f"the body is not UTF-8 (byte {exc.start})") from None
    if kind in NDJSON_TYPES:
        lines = [line for line in text.split("\n") if line.strip()]
        if len(lines) > max_events:
            raise _too_many(len(lines), max_events)
        return [_ndjson_line(line) for line in lines]
    try:
        doc = _loads(text)
    except (ValueError, RecursionError) as exc:
        raise BodyError(400, f"the body is not valid JSON: {_why(exc)}") from None
    if isinstance(doc, dict):
        return [doc]
    if not isinstance(doc, list):
        raise BodyError(400, "the body must be an event (a JSON object) or an array of events")
    if len(doc) > max_events:
        raise _too_many(len(doc), max_events)
    return doc


def _too_many(n: int, limit: int) -> BodyError:
    return BodyError(413, f"the batch holds {n} events; at most {limit} per request")


def _why(exc: Exception) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    # orjson's messages name a position, never the content.
    return str(exc).split("\n", 1)[0][:120]


def _ndjson_line(line: str) -> object:
    try:
        return _loads(line)
    except (ValueError, RecursionError) as exc:
        return _Malformed(f"the line is not valid JSON: {_why(exc)}")


def validate(events: Sequence[object], now: datetime, bounds: Bounds) -> tuple[Rows, list[Verdict]]:
    """Rows to insert and the verdicts of the rejected events and repeats within the batch.

    The second occurrence of an event_id in one batch is a duplicate of the first, whatever it
    holds; the stored event is the first.
    """
    rows = Rows()
    verdicts: list[Verdict] = []
    seen: set[str] = set()
    oldest = now - timedelta(seconds=bounds.max_event_age_s)
    newest = now + timedelta(seconds=bounds.max_future_skew_s)
    for i, event in enumerate(events):
        try:
            if isinstance(event, _Malformed):
                raise _Rejected("malformed_json", event.detail)
            _check_event(event, rows, oldest, newest, bounds)
        except _Rejected as exc:
            verdicts.append(Verdict(i, _id_of(event), "rejected", exc.reason, exc.detail))
            continue
        eid = rows.event_id[-1]
        if eid in seen:
            _drop_last(rows)
            verdicts.append(Verdict(i, eid, "duplicate"))
            continue
        seen.add(eid)
        rows.index.append(i)
    return rows, verdicts


def _drop_last(rows: Rows) -> None:
    for column in (
        rows.event_id,
        rows.event_time,
        rows.source,
        rows.entity_type,
        rows.entity_id,
        rows.metrics,
        rows.schema_version,
    ):
        column.pop()


def _id_of(event: object) -> str | None:
    """The event's id when it is one (echoing an id back is safe; anything else is not)."""
    if isinstance(event, dict):
        value = event.get("event_id")
        if isinstance(value, str) and len(value) <= MAX_UUID_CHARS:
            try:
                return str(uuid.UUID(value))
            except ValueError:
                return None
    return None


def _check_event(
    event: object, rows: Rows, oldest: datetime, newest: datetime, bounds: Bounds
) -> None:
    """Append the event's columns to rows (all or none), or raise _Rejected."""
    if not isinstance(event, dict):
        raise _Rejected("not_an_object", "an event must be a JSON object")
    if len(event) != len(FIELDS) or not event.keys() >= _FIELD_SET:
        missing = [f for f in FIELDS if f not in event]
    else:
        missing = []
    if missing:
        raise _Rejected("missing_field", "missing: " + ", ".join(missing))
    unknown = len(event) - len(FIELDS)
    if unknown:
        raise _Rejected("unknown_field", f"{unknown} field(s) beyond {', '.join(FIELDS)}")
    version = event["schema_version"]
    if type(version) is not int or version not in SCHEMA_VERSIONS:
        known = ", ".join(str(v) for v in sorted(SCHEMA_VERSIONS))
        raise _Rejected("unknown_schema_version", f"schema_version must be one of: {known}")
    event_id = _uuid(event["event_id"])
    event_time = _time(event["event_time"], oldest, newest, bounds)
    source = _text(event["source"], _SOURCE, "bad_source", "source", 64)
    entity_type = _text(event["entity_type"], _ENTITY_TYPE, "bad_entity", "entity_type", 32)
    entity_id = _text(event["entity_id"], _ENTITY_ID, "bad_entity", "entity_id", 128)
    metrics = _metrics(event["metrics"])
    rows.event_id.append(event_id)
    rows.event_time.append(event_time)
    rows.source.append(source)
    rows.entity_type.append(entity_type)
    rows.entity_id.append(entity_id)
    rows.metrics.append(metrics)
    rows.schema_version.append(version)


def _uuid(value: object) -> str:
    """The UUID in its canonical text (lower case, hyphens): the key dedup compares."""
    if isinstance(value, str) and len(value) <= MAX_UUID_CHARS:
        # The usual form by a regex (uuid.UUID() costs a third of an event's validation).
        if _CANONICAL_UUID.fullmatch(value):
            return value.lower()
        try:
            return str(uuid.UUID(value))
        except ValueError:
            pass
    raise _Rejected("bad_event_id", "event_id must be a UUID string")


def _time(value: object, oldest: datetime, newest: datetime, bounds: Bounds) -> datetime:
    if not isinstance(value, str) or len(value) > MAX_TIME_CHARS:
        raise _Rejected("bad_event_time", "event_time must be an ISO 8601 timestamp string")
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        raise _Rejected(
            "bad_event_time", "event_time must be an ISO 8601 timestamp string"
        ) from None
    if t.tzinfo is None or t.utcoffset() is None:
        raise _Rejected("bad_event_time", "event_time needs a time zone (Z or +hh:mm)")
    if t < oldest:
        limit = format_duration(bounds.max_event_age_s)
        raise _Rejected("event_time_out_of_range", f"event_time is more than {limit} in the past")
    if t > newest:
        limit = format_duration(bounds.max_future_skew_s)
        raise _Rejected("event_time_out_of_range", f"event_time is more than {limit} in the future")
    return t


def _text(value: object, pattern: re.Pattern[str], reason: Reason, name: str, size: int) -> str:
    if isinstance(value, str) and _matches(pattern, value):
        return value
    raise _Rejected(reason, f"{name} must be 1 to {size} characters of the form {pattern.pattern}")


def _metrics(value: object) -> str:
    """The metrics object as canonical JSON text, after checking every value."""
    if not isinstance(value, dict) or not value:
        raise _Rejected("bad_metrics", "metrics must be a non-empty JSON object")
    if len(value) > MAX_METRICS:
        raise _Rejected("bad_metrics", f"at most {MAX_METRICS} metrics per event")
    for name, v in value.items():
        if not _matches(_METRIC, name):
            raise _Rejected("bad_metrics", f"metric names must be of the form {_METRIC.pattern}")
        # Magnitude first: math.isfinite overflows on a huge int.
        if type(v) not in (int, float) or abs(v) > MAX_MAGNITUDE or not math.isfinite(v):
            raise _Rejected(
                "bad_metrics", f"metric {name}: need a finite number of magnitude up to 1e15"
            )
        if name.endswith("_pct") and not 0 <= v <= 100:
            raise _Rejected("bad_metrics", f"metric {name}: a percentage must be within 0..100")
    return orjson.dumps(value).decode()
