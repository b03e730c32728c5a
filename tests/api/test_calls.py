"""GET /v1/calls, /v1/calls/{id}, /v1/towers, /v1/towers/{id}/calls over real HTTP, read as the
real ecm_api login through the reader role, against rows checked with plain SQL."""

from __future__ import annotations

from typing import Any

import httpx
import psycopg
import pytest

from tests.api.calls_data import add_calls, add_towers
from tests.api.conftest import NOW, Served

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"


def problem(resp: httpx.Response, status: int) -> str:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == PROBLEM
    detail: str = resp.json()["detail"]
    return detail


def every_page(s: Served, path: str, **params: Any) -> list[dict[str, Any]]:
    """Follow next_cursor to the end; the items of every page in order."""
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(1000):
        q = dict(params, **({"cursor": cursor} if cursor else {}))
        body = s.client.get(path, params=q).json()
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("more than 1000 pages")


def sql_ids(s: Served, where: str = "true", params: tuple[Any, ...] = ()) -> list[int]:
    with psycopg.connect(s.db.url) as conn:
        rows = conn.execute(
            f"SELECT call_id FROM emergency_calls WHERE {where}"
            ' ORDER BY "timestamp" DESC, call_id DESC',
            params,
        ).fetchall()
    return [r[0] for r in rows]


def test_pages_cover_every_call_once_newest_first(served: Served) -> None:
    add_calls(served.db.url, 250)
    items = every_page(served, "/v1/calls", limit=40)
    assert [c["call_id"] for c in items] == sql_ids(served)
    first = items[0]
    assert first["tower_id"] == "TOWER_2" and first["latency_ms"] == 57
    assert first["status"] == "SUCCESS" and first["failure_reason"] is None


def test_filters_select_what_sql_selects(served: Served) -> None:
    add_calls(served.db.url, 300)
    frm, to = "2026-05-28T20:24:00Z", "2026-05-28T20:26:00Z"
    cases: list[tuple[dict[str, Any], str, tuple[Any, ...]]] = [
        ({"tower": "TOWER_3"}, "tower_id = %s", ("TOWER_3",)),
        ({"status": "FAILED"}, "status = %s", ("FAILED",)),
        ({"reason": "PSAP_BUSY"}, "failure_reason = %s", ("PSAP_BUSY",)),
        (
            {"from": frm, "to": to, "status": "SUCCESS"},
            '"timestamp" >= %s AND "timestamp" < %s AND status = \'SUCCESS\'',
            (frm, to),
        ),
        ({"reason": "CORE_TIMEOUT", "status": "FAILED"}, "failure_reason = 'CORE_TIMEOUT'", ()),
    ]
    for params, where, args in cases:
        got = [c["call_id"] for c in every_page(served, "/v1/calls", limit=7, **params)]
        expected = sql_ids(served, where, args)
        assert got == expected and expected, params


def test_one_call_and_unknown_ids(served: Served) -> None:
    add_calls(served.db.url, 3)
    call_id = sql_ids(served)[0]
    one = served.client.get(f"/v1/calls/{call_id}").json()
    assert one["call_id"] == call_id and one["caller_id"] == "+15551"
    assert "no call" in problem(served.client.get("/v1/calls/999999"), 404)
    problem(served.client.get("/v1/calls/abc"), 422)
    problem(served.client.get("/v1/calls/0"), 422)


def test_bad_input_is_a_problem_with_the_reason(served: Served) -> None:
    c = served.client
    assert "cursor" in problem(c.get("/v1/calls", params={"cursor": "not-a-cursor"}), 400)
    assert "cursor" in problem(c.get("/v1/calls", params={"cursor": "dDE6VE9XRVI"}), 400)
    assert "limit" in problem(c.get("/v1/calls", params={"limit": 0}), 422)
    assert "limit" in problem(c.get("/v1/calls", params={"limit": 1001}), 422)
    assert "from" in problem(c.get("/v1/calls", params={"from": "yesterday"}), 422)
    assert "time zone" in problem(c.get("/v1/calls", params={"from": "2026-05-28T10:00:00"}), 422)
    both = {"from": "2026-05-28T10:00:00Z", "to": "2026-05-28T09:00:00Z"}
    assert "earlier" in problem(c.get("/v1/calls", params=both), 422)
    assert "status" in problem(c.get("/v1/calls", params={"status": "MAYBE"}), 422)
    mixed = {"status": "SUCCESS", "reason": "PSAP_BUSY"}
    assert "FAILED" in problem(c.get("/v1/calls", params=mixed), 422)
    problem(c.get("/v1/calls", params={"cursor": "x" * 500}), 422)


def test_a_towers_calls_and_an_unknown_tower(served: Served) -> None:
    add_calls(served.db.url, 100)
    items = every_page(served, "/v1/towers/TOWER_5/calls", limit=2)
    assert [c["call_id"] for c in items] == sql_ids(served, "tower_id = 'TOWER_5'")
    assert "no such tower" in problem(served.client.get("/v1/towers/TOWER_99/calls"), 404)


def test_towers_with_region_and_last_hour_numbers(served: Served) -> None:
    add_towers(served.db.url)
    # One call every 30 s for two hours: 119 in the last 60 minutes, 6 per tower (5 for
    # TOWER_1, whose oldest is in the minute just before those 60).
    add_calls(served.db.url, 240, spacing_s=30.0)
    assert served.api.call_rollup.run()
    body = served.client.get("/v1/towers", params={"region": "north", "limit": 3}).json()
    assert [t["tower_id"] for t in body["items"]] == ["TOWER_1", "TOWER_11", "TOWER_13"]
    with psycopg.connect(served.db.url) as conn:
        row = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE status = 'FAILED'), avg(latency_ms)"
            " FROM emergency_calls WHERE tower_id = 'TOWER_1'"
            ' AND "timestamp" >= to_timestamp(%s)',
            ((NOW - 3600) // 60 * 60 + 60,),
        ).fetchone()
    assert row is not None
    t1 = body["items"][0]
    assert t1["region"] == "north"
    # TOWER_1 carries the calls i with i % 20 == 0: every one of them is a 10th call, failed.
    assert (t1["calls_last_hour"], t1["failed_last_hour"]) == (row[0], row[1]) == (5, 5)
    assert t1["failure_ratio_last_hour"] == 1.0
    assert t1["avg_latency_ms_last_hour"] == pytest.approx(float(row[2]))
    rest = every_page(served, "/v1/towers", region="north", limit=3)
    assert len(rest) == 10 and all(t["region"] == "north" for t in rest)
    thirteen = body["items"][2]
    assert (thirteen["calls_last_hour"], thirteen["failed_last_hour"]) == (6, 0)
    assert thirteen["failure_ratio_last_hour"] == 0.0


def test_pages_neither_skip_nor_repeat_under_concurrent_inserts(served: Served) -> None:
    add_calls(served.db.url, 200)
    before = sql_ids(served)
    seen: list[int] = []
    cursor = None
    batch = 0
    while True:
        params: dict[str, Any] = {"limit": 30, **({"cursor": cursor} if cursor else {})}
        body = served.client.get("/v1/calls", params=params).json()
        seen += [c["call_id"] for c in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
        # Newer calls arrive between pages (as the generator writes them).
        batch += 1
        add_calls(served.db.url, 10, first=10_000 * batch, now=NOW + 10_000 * batch + 5)
    assert batch > 3
    assert seen == before
