"""The HTTP API served by uvicorn on loopback: webhook, incidents, ack links, tokens, problems."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from ecm_common.service import BackgroundServer
from pager.acklink import AckSigner
from pager.app import Pager, build
from pager.config import PagerSettings, Secrets
from tests.fixtures.clock import FakeClock
from tests.pager.conftest import SECRET
from tests.pager.helpers import alert, payload

pytestmark = pytest.mark.integration

WRITE = "write-token-for-people"
AM = "alertmanager-token"


@dataclass
class Api:
    """A served pager and clients with each token."""

    pager: Pager
    url: str
    people: httpx.Client
    am: httpx.Client
    anonymous: httpx.Client

    def post_hook(self, body: Any) -> httpx.Response:
        """Post a webhook as Alertmanager does."""
        return self.am.post("/v1/alertmanager", json=body)


@pytest.fixture
def api(pager_url: str, settings: PagerSettings, clock: FakeClock) -> Iterator[Api]:
    """The pager app (worker not started: the tests drive time) on a free port."""
    secrets = Secrets(SecretStr(WRITE), SecretStr(AM), SecretStr(SECRET.decode()), None, None)
    pager = build(settings, secrets, pager_url, clock=clock, run_worker=False)
    with BackgroundServer(pager.app) as server:
        clients = [
            httpx.Client(base_url=server.url, headers=h, timeout=10)
            for h in (
                {"Authorization": f"Bearer {WRITE}"},
                {"Authorization": f"Bearer {AM}"},
                {},
            )
        ]
        pager.pool.wait(timeout=10)
        yield Api(pager, server.url, *clients)
        for c in clients:
            c.close()


def _problem(r: httpx.Response, status: int) -> str:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    return str(r.json()["detail"])


def test_webhook_opens_and_resolves_an_incident(api: Api) -> None:
    r = api.post_hook(payload(alert("a1"), alert("a2")))
    assert r.status_code == 200
    [incident] = r.json()["opened"]
    assert api.post_hook(payload(alert("a1"), alert("a2"))).json()["unchanged"] == 2
    detail = api.anonymous.get(f"/v1/incidents/{incident}").json()
    assert detail["state"] == "triggered" and detail["service"] == "ecm"
    assert [a["fingerprint"] for a in detail["alerts"]] == ["a1", "a2"]
    assert [e["kind"] for e in detail["timeline"]][:2] == ["triggered", "escalated"]
    services = api.anonymous.get("/v1/services").json()["services"]
    assert {s["service"]: s["healthy"] for s in services}["ecm"] is False
    r = api.post_hook(payload(alert("a1", "resolved"), alert("a2", "resolved")))
    assert r.json()["resolved_incidents"] == [incident]
    assert api.anonymous.get(f"/v1/incidents/{incident}").json()["state"] == "resolved"


def test_ack_and_resolve_need_the_write_token(api: Api) -> None:
    [incident] = api.post_hook(payload(alert("a1"))).json()["opened"]
    assert "bearer token" in _problem(api.anonymous.post(f"/v1/incidents/{incident}/ack"), 401)
    # The Alertmanager token is not a person's.
    _problem(api.am.post(f"/v1/incidents/{incident}/ack"), 401)
    r = api.people.post(f"/v1/incidents/{incident}/ack", json={"by": "alice"})
    assert r.status_code == 200 and r.json()["acknowledged_by"] == "alice"
    r = api.people.post(f"/v1/incidents/{incident}/resolve")
    assert r.json()["state"] == "resolved" and r.json()["resolved_by"] == "api"
    assert "resolved" in _problem(api.people.post(f"/v1/incidents/{incident}/ack"), 409)
    assert "already resolved" in _problem(api.people.post(f"/v1/incidents/{incident}/resolve"), 409)


def test_the_webhook_needs_the_alertmanager_token(api: Api) -> None:
    _problem(api.anonymous.post("/v1/alertmanager", json=payload(alert("a1"))), 401)
    _problem(api.people.post("/v1/alertmanager", json=payload(alert("a1"))), 401)


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (b"{not json", 400, "not valid JSON"),
        (json.dumps({"hello": "world"}).encode(), 422, "version"),
        (json.dumps({**payload(alert("a1")), "version": "3"}).encode(), 422, "version"),
        (json.dumps(payload({**alert("a1"), "fingerprint": "zz!"})).encode(), 422, "fingerprint"),
        (json.dumps(payload({**alert("a1"), "startsAt": "yesterday"})).encode(), 422, "startsAt"),
    ],
)
def test_a_payload_that_is_not_alertmanagers_is_refused(
    api: Api, body: bytes, status: int, reason: str
) -> None:
    r = api.am.post("/v1/alertmanager", content=body, headers={"Content-Type": "application/json"})
    assert reason in _problem(r, status)


def test_unknown_incidents_and_bad_ids(api: Api) -> None:
    assert "no incident 999" in _problem(api.anonymous.get("/v1/incidents/999"), 404)
    assert "no incident 999" in _problem(api.people.post("/v1/incidents/999/ack"), 404)
    _problem(api.anonymous.get("/v1/incidents/abc"), 422)
    _problem(api.people.post("/v1/incidents/1/ack", json={"by": "x" * 500}), 422)
    _problem(api.anonymous.get("/v1/incidents?state=sleeping"), 422)
    _problem(api.anonymous.get("/v1/incidents?limit=100000"), 422)


def test_incidents_are_listed_with_filters_and_keyset_pages(api: Api) -> None:
    for i, service in enumerate(["ecm", "billing", "ecm-monitoring"]):
        api.post_hook(payload(alert(f"{i}a", service=service)))
    first = api.anonymous.get("/v1/incidents?limit=2").json()
    assert [i["service"] for i in first["incidents"]] == ["ecm-monitoring", "billing"]
    rest = api.anonymous.get(f"/v1/incidents?limit=2&before={first['next']}").json()
    assert [i["service"] for i in rest["incidents"]] == ["ecm"]
    assert rest["next"] is None
    only = api.anonymous.get("/v1/incidents?service=billing&state=triggered").json()
    assert [i["service"] for i in only["incidents"]] == ["billing"]
    assert api.anonymous.get("/v1/incidents?state=resolved").json()["incidents"] == []


def test_ack_link_shows_a_page_and_acknowledges_on_post(api: Api, clock: FakeClock) -> None:
    [incident] = api.post_hook(payload(alert("a1"))).json()["opened"]
    token = AckSigner(SECRET).sign(incident, clock.time() + 3600)
    page = api.anonymous.get(f"/v1/ack/{token}")
    assert page.status_code == 200 and '<form method="post">' in page.text
    # A preview fetching the link acknowledged nothing.
    assert api.anonymous.get(f"/v1/incidents/{incident}").json()["state"] == "triggered"
    done = api.anonymous.post(f"/v1/ack/{token}")
    assert done.status_code == 200 and "Acknowledged" in done.text
    detail = api.anonymous.get(f"/v1/incidents/{incident}").json()
    assert detail["state"] == "acknowledged" and detail["acknowledged_by"] == "ack link"


def test_bad_and_expired_ack_links_are_refused(api: Api, clock: FakeClock) -> None:
    [incident] = api.post_hook(payload(alert("a1"))).json()["opened"]
    expired = AckSigner(SECRET).sign(incident, clock.time() - 1)
    forged = AckSigner(b"another secret").sign(incident, clock.time() + 3600)
    assert "expired" in _problem(api.anonymous.post(f"/v1/ack/{expired}"), 410)
    assert "signature" in _problem(api.anonymous.post(f"/v1/ack/{forged}"), 403)
    assert "malformed" in _problem(api.anonymous.get("/v1/ack/hello"), 400)
    api.people.post(f"/v1/incidents/{incident}/resolve")
    valid = AckSigner(SECRET).sign(incident, clock.time() + 3600)
    assert "resolved" in _problem(api.anonymous.post(f"/v1/ack/{valid}"), 409)


def test_metrics_show_incidents_and_outbox_after_a_tick(api: Api) -> None:
    api.post_hook(payload(alert("a1")))
    api.pager.worker.tick()
    text = api.anonymous.get("/metrics").text
    assert 'ecm_pager_open_incidents{service="ecm",state="triggered"} 1.0' in text
    assert "ecm_pager_escalations_total 1.0" in text
    assert "ecm_pager_database_up 1.0" in text
