"""Validation of PM events, event by event: the reason a client is told for each kind of bad
input, and the bounds (no database: the rules alone)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from api.pm_events import REASONS, BodyError, Bounds, parse_body, validate
from tests.api.conftest import NOW, event

BOUNDS = Bounds(max_events=10, max_event_age_s=7 * 86400, max_future_skew_s=300)
T = datetime.fromtimestamp(NOW, UTC)


def verdict(e: object) -> tuple[str, str | None]:
    rows, verdicts = validate([e], T, BOUNDS)
    if rows:
        return "ok", None
    return verdicts[0].status, verdicts[0].reason


def with_(**changes: Any) -> dict[str, Any]:
    e = event()
    e.update(changes)
    return e


def without(name: str) -> dict[str, Any]:
    e = event()
    del e[name]
    return e


def iso(dt: datetime) -> str:
    return dt.isoformat()


BAD: dict[str, tuple[object, str]] = {
    "a list": ([1, 2], "not_an_object"),
    "a number": (7, "not_an_object"),
    "no event_id": (without("event_id"), "missing_field"),
    "no metrics": (without("metrics"), "missing_field"),
    "an extra field": ({**event(), "severity": "x"}, "unknown_field"),
    "event_id not a uuid": (with_(event_id="abc"), "bad_event_id"),
    "event_id a number": (with_(event_id=12), "bad_event_id"),
    "event_id huge": (with_(event_id="a" * 10_000), "bad_event_id"),
    "schema_version 2": (with_(schema_version=2), "unknown_schema_version"),
    "schema_version '1'": (with_(schema_version="1"), "unknown_schema_version"),
    "schema_version true": (with_(schema_version=True), "unknown_schema_version"),
    "event_time not a time": (with_(event_time="yesterday"), "bad_event_time"),
    "event_time epoch number": (with_(event_time=NOW), "bad_event_time"),
    "event_time without zone": (with_(event_time="2026-05-28T20:45:12"), "bad_event_time"),
    "event_time 8 days old": (
        with_(event_time=iso(T - timedelta(days=8))),
        "event_time_out_of_range",
    ),
    "event_time 6 min ahead": (
        with_(event_time=iso(T + timedelta(minutes=6))),
        "event_time_out_of_range",
    ),
    "event_time year 9999": (with_(event_time="9999-12-31T00:00:00Z"), "event_time_out_of_range"),
    "empty source": (with_(source=""), "bad_source"),
    "source with spaces": (with_(source="pm gen"), "bad_source"),
    "entity_id too long": (with_(entity_id="C" * 129), "bad_entity"),
    "entity_id with newline": (with_(entity_id="CELL-1\n"), "bad_entity"),
    "entity_type upper": (with_(entity_type="Cell"), "bad_entity"),
    "metrics empty": (with_(metrics={}), "bad_metrics"),
    "metrics a list": (with_(metrics=[1]), "bad_metrics"),
    "metric a string": (with_(metrics={"dl_prb_util_pct": "73"}), "bad_metrics"),
    "metric a bool": (with_(metrics={"rrc_conn_avg": True}), "bad_metrics"),
    "metric null": (with_(metrics={"rrc_conn_avg": None}), "bad_metrics"),
    "percentage 100.1": (with_(metrics={"dl_prb_util_pct": 100.1}), "bad_metrics"),
    "percentage negative": (with_(metrics={"drop_rate_pct": -0.1}), "bad_metrics"),
    "metric infinite": (with_(metrics={"rrc_conn_avg": float("inf")}), "bad_metrics"),
    "metric huge int": (with_(metrics={"rrc_conn_avg": 10**400}), "bad_metrics"),
    "metric name upper": (with_(metrics={"DL": 1}), "bad_metrics"),
    "65 metrics": (with_(metrics={f"m{i}": 1 for i in range(65)}), "bad_metrics"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_event_is_rejected_with_its_reason(case: str) -> None:
    bad, reason = BAD[case]
    assert verdict(bad) == ("rejected", reason)


GOOD: dict[str, dict[str, Any]] = {
    "the seed's example": event(),
    "percentages at the bounds": with_(metrics={"dl_prb_util_pct": 0, "ul_prb_util_pct": 100}),
    "more metrics than the four": with_(metrics={"dl_prb_util_pct": 5, "rrc_conn_max": 300}),
    "64 metrics": with_(metrics={f"m{i}": i for i in range(64)}),
    "an offset time zone": with_(event_time=(T - timedelta(hours=1)).astimezone().isoformat()),
    "almost 7 days old": with_(event_time=iso(T - timedelta(days=7) + timedelta(seconds=1))),
    "4 minutes ahead": with_(event_time=iso(T + timedelta(minutes=4))),
    "uppercase uuid": with_(event_id=str(uuid.uuid4()).upper()),
}


@pytest.mark.parametrize("case", sorted(GOOD))
def test_good_event_is_kept(case: str) -> None:
    assert verdict(GOOD[case]) == ("ok", None)


def test_every_reason_is_reachable() -> None:
    assert {reason for _, reason in BAD.values()} | {"malformed_json"} == set(REASONS)


def test_a_repeat_in_the_same_batch_is_a_duplicate_of_the_first() -> None:
    first = event("CELL-1")
    again = dict(first, entity_id="CELL-2")
    rows, verdicts = validate([first, again], T, BOUNDS)
    assert rows.entity_id == ["CELL-1"]
    assert [(v.index, v.status) for v in verdicts] == [(1, "duplicate")]


def test_a_rejection_never_echoes_the_clients_values() -> None:
    secret = "s3cr3t value from the client"
    _, verdicts = validate([with_(source=secret, entity_id=secret)], T, BOUNDS)
    assert secret not in json.dumps(verdicts[0].as_json())


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"{}", "text/plain", 415),
        (b"{}", None, 415),
        (b"<xml/>", "application/xml", 415),
        (b"{not json", "application/json", 400),
        (b"\xff\xfe", "application/json", 400),
        (b'"a string"', "application/json", 400),
        (b"[" * 100_000 + b"]" * 100_000, "application/json", 400),
        (b'{"a": NaN}', "application/json", 400),
        (b"[" + b"{}," * 10 + b"{}]", "application/json", 413),
        (b"{}\n" * 11, "application/x-ndjson", 413),
    ],
)
def test_unusable_body_is_refused_whole(body: bytes, content_type: str | None, status: int) -> None:
    with pytest.raises(BodyError) as err:
        parse_body(body, content_type, BOUNDS.max_events)
    assert err.value.status == status


def test_ndjson_bad_line_is_one_rejected_event() -> None:
    lines = [json.dumps(event()), "{broken", "", json.dumps(event())]
    events = parse_body("\n".join(lines).encode(), "application/x-ndjson; charset=utf-8", 10)
    rows, verdicts = validate(events, T, BOUNDS)
    assert len(rows) == 2
    assert [(v.index, v.reason) for v in verdicts] == [(1, "malformed_json")]


def test_json_object_or_array() -> None:
    one = parse_body(json.dumps(event()).encode(), "application/json", 10)
    many = parse_body(json.dumps([event(), event()]).encode(), "Application/JSON", 10)
    assert (len(one), len(many)) == (1, 2)


def test_a_value_valid_in_one_field_is_not_taken_as_valid_in_another() -> None:
    # "PM-Gen.2" is a good source, and remembered as one; it is no metric name.
    assert verdict(with_(source="PM-Gen.2")) == ("ok", None)
    assert verdict(with_(metrics={"PM-Gen.2": 1})) == ("rejected", "bad_metrics")
