"""The analytics routes over real HTTP against the raw calls checked with plain SQL: counts,
ratios, p95 within 1% of percentile_cont; the rollups are folded exactly once, survive a restart
and are rebuilt from raw rows on demand."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from tests.api.calls_data import add_calls, add_towers
from tests.api.conftest import NOW, Served

pytestmark = pytest.mark.integration

DAY = "2026-05-27T20:00:00Z", "2026-05-28T21:00:00Z"


def fold(s: Served) -> None:
    for _ in range(100):
        if s.api.call_rollup.run():
            return
    raise AssertionError("the call rollup did not catch up")


def raw(s: Served, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(s.db.url) as conn:
        return conn.execute(query, params).fetchall()


RAW_SUMMARY = """
SELECT count(*), count(*) FILTER (WHERE status = 'FAILED'), avg(latency_ms),
       percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms)
  FROM emergency_calls WHERE "timestamp" >= %s AND "timestamp" < %s {extra}
"""


def summary(s: Served, **params: str) -> dict[str, Any]:
    frm, to = DAY
    resp = s.client.get("/v1/analytics/summary", params={"from": frm, "to": to, **params})
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def assert_matches_raw(s: Served, body: dict[str, Any], extra: str = "") -> None:
    ((calls, failed, avg, p95),) = raw(s, RAW_SUMMARY.format(extra=extra), DAY)
    assert (body["calls"], body["failed"]) == (calls, failed) and calls > 0
    assert body["failure_ratio"] == pytest.approx(failed / calls)
    assert body["avg_latency_ms"] == pytest.approx(float(avg))
    assert body["p95_latency_ms"] == pytest.approx(p95, rel=0.01)


def test_summary_matches_the_raw_calls(served: Served) -> None:
    add_calls(served.db.url, 5000, spacing_s=7.0)
    fold(served)
    body = summary(served)
    assert body["from"] == "2026-05-27T20:00:00Z" and body["tower"] is None
    assert_matches_raw(served, body)
    assert_matches_raw(served, summary(served, tower="TOWER_4"), "AND tower_id = 'TOWER_4'")


def test_summary_over_days_hours_and_minutes_matches_the_raw_calls(served: Served) -> None:
    # A call a minute for about 3.5 days; the range has ragged minute edges around whole hours
    # and whole days, so every level of the network-wide summary is read.
    add_calls(served.db.url, 5000, spacing_s=61.0)
    fold(served)
    frm, to = "2026-05-25T23:17:00Z", "2026-05-28T20:03:30Z"
    body = served.client.get("/v1/analytics/summary", params={"from": frm, "to": to}).json()
    ((calls, failed, avg, p95),) = raw(served, RAW_SUMMARY.format(extra=""), (frm, to))
    assert (body["calls"], body["failed"]) == (calls, failed) and calls > 4000
    assert body["avg_latency_ms"] == pytest.approx(float(avg))
    assert body["p95_latency_ms"] == pytest.approx(p95, rel=0.01)


def test_p95_within_one_percent_of_percentile_cont_on_skewed_latencies(served: Served) -> None:
    with psycopg.connect(served.db.url) as conn:
        conn.execute(
            'INSERT INTO emergency_calls (call_uuid, "timestamp", caller_id, tower_id,'
            " latency_ms, status) SELECT gen_random_uuid(), to_timestamp(%s - i), 'c', 'T',"
            " (exp(5 + 1.5 * sin(i * 12.9898) * cos(i * 78.233)) * (1 + (i %% 7)))::int,"
            " 'SUCCESS' FROM generate_series(1, 20000) i",
            (NOW,),
        )
    fold(served)
    body = summary(served)
    assert body["calls"] == 20000 and body["p95_latency_ms"] > 1000
    assert_matches_raw(served, body)


def test_folds_count_each_call_once_whatever_the_commit_order(served: Served) -> None:
    url = served.db.url
    with psycopg.connect(url) as slow:
        slow.execute(
            'INSERT INTO emergency_calls (call_uuid, "timestamp", caller_id, tower_id,'
            " latency_ms, status) VALUES (gen_random_uuid(), to_timestamp(%s), 'slow', 'T', 5,"
            " 'SUCCESS')",
            (NOW - 60,),
        )
        # A later transaction commits first; the fold runs while the first is still open.
        add_calls(url, 30)
        fold(served)
        assert summary(served)["calls"] == 30
    fold(served)
    fold(served)
    assert summary(served)["calls"] == 31


def test_rollups_survive_a_restart_and_are_rebuilt_on_demand(
    serve_api: Callable[..., Served],
) -> None:
    first = serve_api(token="w-token")
    add_towers(first.db.url)
    add_calls(first.db.url, 500, spacing_s=30.0)
    fold(first)
    # A new process goes on from the stored snapshot: nothing is counted twice.
    second = serve_api(token="w-token")
    add_calls(second.db.url, 100, first=1000, spacing_s=30.0)
    fold(second)
    assert_matches_raw(second, summary(second))
    # Rollups gone wrong (a bad restore, a bug) are rebuilt from the raw calls.
    with psycopg.connect(second.db.url) as conn:
        conn.execute("UPDATE call_rollup_1m_total SET calls = calls + 1000")
        conn.execute("UPDATE call_rollup_coarse_total SET calls = calls + 1000")
    assert summary(second)["calls"] != 600
    assert second.client.post("/v1/analytics/rebuild").status_code == 401
    resp = second.client.post("/v1/analytics/rebuild", headers={"Authorization": "Bearer w-token"})
    assert resp.status_code == 202, resp.text
    fold(second)
    assert_matches_raw(second, summary(second))


def test_failure_reasons_match_the_raw_calls(served: Served) -> None:
    add_calls(served.db.url, 3000, spacing_s=10.0)
    fold(served)
    frm, to = DAY
    body = served.client.get("/v1/analytics/failure-reasons", params={"from": frm, "to": to}).json()
    expected = raw(
        served,
        "SELECT failure_reason, count(*) FROM emergency_calls WHERE status = 'FAILED'"
        ' AND "timestamp" >= %s AND "timestamp" < %s GROUP BY 1 ORDER BY 2 DESC, 1',
        DAY,
    )
    assert [(r["reason"], r["calls"]) for r in body["reasons"]] == expected
    assert body["failed"] == sum(n for _, n in expected)
    assert sum(r["share"] for r in body["reasons"]) == pytest.approx(1.0)


def test_timeseries_per_step_match_the_raw_calls(served: Served) -> None:
    add_calls(served.db.url, 4000, spacing_s=2.0)
    fold(served)
    params = {"from": "2026-05-28T18:00:00Z", "to": "2026-05-28T20:30:00Z", "step": "15m"}
    calls = served.client.get("/v1/analytics/timeseries", params=params).json()
    assert calls["step_seconds"] == 900 and len(calls["points"]) == 10
    expected = dict(
        raw(
            served,
            "SELECT date_bin('15 minutes', \"timestamp\", TIMESTAMPTZ '1970-01-01Z'), count(*)"
            ' FROM emergency_calls WHERE "timestamp" >= %s AND "timestamp" < %s GROUP BY 1',
            (params["from"], params["to"]),
        )
    )
    got = {p["t"]: p["value"] for p in calls["points"]}
    assert sum(got.values()) == sum(expected.values()) > 0
    for t, n in expected.items():
        assert got[t.isoformat().replace("+00:00", "Z")] == n
    p95 = served.client.get(
        "/v1/analytics/timeseries", params={**params, "metric": "p95_latency_ms"}
    ).json()
    expected_p95 = dict(
        raw(
            served,
            "SELECT date_bin('15 minutes', \"timestamp\", TIMESTAMPTZ '1970-01-01Z'),"
            " percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) FROM emergency_calls"
            ' WHERE "timestamp" >= %s AND "timestamp" < %s GROUP BY 1',
            (params["from"], params["to"]),
        )
    )
    got_p95 = {p["t"]: p["value"] for p in p95["points"]}
    for t, v in expected_p95.items():
        assert got_p95[t.isoformat().replace("+00:00", "Z")] == pytest.approx(v, rel=0.01)
    assert [p["value"] for p in p95["points"]].count(None) == 10 - len(expected_p95)


def test_towers_ranked_worst_first(served: Served) -> None:
    add_towers(served.db.url)
    add_calls(served.db.url, 2000, spacing_s=10.0)
    fold(served)
    frm, to = DAY
    body = served.client.get(
        "/v1/analytics/towers", params={"order": "failure_ratio", "limit": 3, "from": frm, "to": to}
    ).json()
    # Towers 1 and 11 carry only 10th calls (all failed); the rest none.
    assert [t["tower_id"] for t in body["items"]] == ["TOWER_1", "TOWER_11", "TOWER_10"]
    assert [t["failure_ratio"] for t in body["items"]] == [1.0, 1.0, 0.0]
    assert body["items"][0]["region"] == "north"
    (n,) = raw(served, "SELECT count(*) FROM emergency_calls WHERE tower_id = 'TOWER_1'")[0]
    assert body["items"][0]["calls"] == n


@pytest.mark.parametrize(
    ("path", "params", "words"),
    [
        ("summary", {"from": "2026-05-28T10:00:00Z", "to": "2026-05-28T09:00:00Z"}, "earlier"),
        ("summary", {"from": "2024-01-01T00:00:00Z"}, "400 days"),
        ("summary", {"from": "soon"}, "from"),
        ("timeseries", {"step": "90s"}, "whole number of minutes"),
        ("timeseries", {"step": "fortnight"}, "step"),
        ("timeseries", {"step": "1m", "from": "2026-04-01T00:00:00Z"}, "points"),
        ("timeseries", {"metric": "joy"}, "metric"),
        ("towers", {"order": "name"}, "order"),
        ("towers", {"limit": "0"}, "limit"),
    ],
)
def test_bad_analytics_input_is_a_422_with_the_reason(
    served: Served, path: str, params: dict[str, str], words: str
) -> None:
    resp = served.client.get(f"/v1/analytics/{path}", params=params)
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    assert words in resp.json()["detail"]
