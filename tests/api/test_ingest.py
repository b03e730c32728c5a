"""POST /v1/events/pm over real HTTP into a real PostgreSQL, as the real ecm_api login: what a
client is answered, what is stored, and what /metrics says."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.api.conftest import Served, event, wait_for
from tests.fixtures.postgres import PgServer

pytestmark = pytest.mark.integration

URL = "/v1/events/pm"
PROBLEM = "application/problem+json"


def stored(s: Served) -> dict[str, dict[str, Any]]:
    """event_id -> row, read as the database owner."""
    with psycopg.connect(s.db.url) as conn:
        rows = conn.execute(
            "SELECT event_id::text, entity_id, source, schema_version, metrics FROM pm_events"
        ).fetchall()
    return {
        r[0]: {"entity_id": r[1], "source": r[2], "version": r[3], "metrics": r[4]} for r in rows
    }


def metric(s: Served, name: str, **labels: str) -> float:
    text = s.client.get("/metrics").text
    for fam in text_string_to_metric_families(text):
        for sample in fam.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    raise AssertionError(f"{name}{labels} not in /metrics")


def problem(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == PROBLEM
    body: dict[str, Any] = resp.json()
    assert body["status"] == status and body["detail"]
    return body


def test_one_event_is_stored_and_a_resend_is_a_duplicate(served: Served) -> None:
    e = event("CELL-000123")
    first = served.client.post(URL, json=e)
    again = served.client.post(URL, json=e)
    assert first.status_code == 200
    assert first.json() == {
        "accepted": 1,
        "duplicate": 0,
        "rejected": 0,
        "results": [{"index": 0, "event_id": e["event_id"], "status": "accepted"}],
    }
    assert again.status_code == 200
    assert again.json()["results"] == [
        {"index": 0, "event_id": e["event_id"], "status": "duplicate"}
    ]
    assert stored(served) == {
        e["event_id"]: {
            "entity_id": "CELL-000123",
            "source": "pmgen",
            "version": 1,
            "metrics": e["metrics"],
        }
    }
    assert metric(served, "ecm_pm_events_accepted_total") == 1
    assert metric(served, "ecm_pm_events_duplicate_total") == 1


def test_partly_bad_batch_stores_the_good_ones_with_207(served: Served) -> None:
    good = [event("CELL-1"), event("CELL-2")]
    bad = dict(event("CELL-3"), metrics={"dl_prb_util_pct": 140})
    resp = served.client.post(URL, json=[good[0], bad, good[1], "oops"])
    assert resp.status_code == 207
    body = resp.json()
    assert (body["accepted"], body["duplicate"], body["rejected"]) == (2, 0, 2)
    assert [(r["index"], r["status"], r.get("reason")) for r in body["results"]] == [
        (0, "accepted", None),
        (1, "rejected", "bad_metrics"),
        (2, "accepted", None),
        (3, "rejected", "not_an_object"),
    ]
    assert body["results"][1]["event_id"] == bad["event_id"]
    assert set(stored(served)) == {good[0]["event_id"], good[1]["event_id"]}
    assert metric(served, "ecm_pm_events_rejected_total", reason="bad_metrics") == 1
    assert metric(served, "ecm_pm_events_rejected_total", reason="not_an_object") == 1
    assert metric(served, "ecm_pm_events_rejected_total", reason="bad_event_id") == 0


def test_all_bad_batch_is_422_problem_with_the_results(served: Served) -> None:
    resp = served.client.post(URL, json=[dict(event(), schema_version=9)])
    body = problem(resp, 422)
    assert body["results"][0]["reason"] == "unknown_schema_version"
    assert stored(served) == {}


def test_ndjson_batch(served: Served) -> None:
    events = [event(f"CELL-{i}") for i in range(3)]
    text = "\n".join(json.dumps(e) for e in events) + "\n"
    resp = served.client.post(
        URL, content=text.encode(), headers={"content-type": "application/x-ndjson"}
    )
    assert resp.status_code == 200
    assert resp.json()["accepted"] == 3
    assert len(stored(served)) == 3


def test_concurrent_identical_batches_store_each_event_once(served: Served) -> None:
    batch = [event(f"CELL-{i}") for i in range(300)]
    answers: list[dict[str, Any]] = []
    lock = threading.Lock()
    start = threading.Barrier(6)

    def post() -> None:
        with httpx.Client(base_url=str(served.client.base_url), timeout=30) as c:
            start.wait()
            resp = c.post(URL, json=batch)
            assert resp.status_code == 200
            with lock:
                answers.append(resp.json())

    threads = [threading.Thread(target=post) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(answers) == 6
    # Each event accepted by exactly one of the posts, a duplicate for the other five.
    for i, e in enumerate(batch):
        statuses = sorted(a["results"][i]["status"] for a in answers)
        assert statuses == ["accepted"] + ["duplicate"] * 5, e["event_id"]
    assert sum(a["accepted"] for a in answers) == 300
    assert len(stored(served)) == 300
    assert metric(served, "ecm_pm_events_accepted_total") == 300
    assert metric(served, "ecm_pm_events_duplicate_total") == 1500


def test_limits_body_size_batch_length_and_content_type(serve_api: Callable[..., Served]) -> None:
    s = serve_api(max_body_bytes=4096, max_batch_events=3)
    big = dict(event(), source="x" * 5000)
    problem(s.client.post(URL, json=big), 413)
    # Without a declared length: counted while read.
    chunks = iter([json.dumps(big).encode()])
    problem(s.client.post(URL, content=chunks, headers={"content-type": "application/json"}), 413)
    body = problem(s.client.post(URL, json=[event() for _ in range(4)]), 413)
    assert "at most 3" in body["detail"]
    problem(s.client.post(URL, content=b"a,b", headers={"content-type": "text/csv"}), 415)
    problem(s.client.post(URL, content=b"{", headers={"content-type": "application/json"}), 400)
    assert stored(s) == {}


def test_token_is_required_when_set(serve_api: Callable[..., Served]) -> None:
    s = serve_api(token="pm-token-for-tests")
    e = event()
    problem(s.client.post(URL, json=e), 401)
    problem(s.client.post(URL, json=e, headers={"authorization": "Bearer wrong"}), 401)
    ok = s.client.post(URL, json=e, headers={"authorization": "Bearer pm-token-for-tests"})
    assert ok.status_code == 200
    assert s.client.get("/metrics").status_code == 200


def test_database_down_is_503_with_retry_after_then_back(
    served: Served, pg_server: PgServer
) -> None:
    assert served.client.post(URL, json=event()).status_code == 200
    with pg_server.admin() as admin:
        admin.execute(f"ALTER DATABASE {served.db.name} ALLOW_CONNECTIONS false")
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            (served.db.name,),
        )
        e = event()
        body = problem(served.client.post(URL, json=e), 503)
        assert "nothing was stored" in body["detail"]
        assert int(served.client.post(URL, json=e).headers["retry-after"]) > 0
        assert served.client.get("/readyz").status_code == 503
        assert metric(served, "ecm_pm_store_failures_total") >= 1
        admin.execute(f"ALTER DATABASE {served.db.name} ALLOW_CONNECTIONS true")
    wait_for(lambda: served.client.post(URL, json=e).status_code == 200, timeout_s=30)
    assert e["event_id"] in stored(served)


def test_metrics_exposition_passes_promtool(served: Served, tmp_path: Any) -> None:
    import subprocess

    from tests.fixtures.tools import require_binary

    served.client.post(URL, json=[event(), dict(event(), event_id="x")])
    text = served.client.get("/metrics").text
    assert "ecm_pm_batch_events_bucket" in text
    promtool = require_binary("promtool", "prometheus")
    out = subprocess.run(
        [promtool, "check", "metrics"], input=text, text=True, capture_output=True, check=False
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_unique_ids_survive_a_new_uuid_form(served: Served) -> None:
    eid = uuid.uuid4()
    a = event(event_id=eid)
    b = dict(event(), event_id=str(eid).upper())
    served.client.post(URL, json=a)
    assert served.client.post(URL, json=b).json()["results"][0]["status"] == "duplicate"


def test_openapi_documents_the_route_and_its_body_forms(served: Served) -> None:
    doc = served.client.get("/openapi.json").json()
    post = doc["paths"]["/v1/events/pm"]["post"]
    assert set(post["requestBody"]["content"]) == {"application/json", "application/x-ndjson"}
    assert {"200", "207", "413", "415", "422", "503"} <= set(post["responses"])
    assert metric(served, "ecm_http_requests_total", handler="/v1/events/pm", method="POST",
                  status="2xx") == 0  # fmt: skip
