"""Swagger UI at /docs and the OpenAPI document list every route of the calls, analytics and
rules APIs, with their parameters."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.api.conftest import Served

pytestmark = pytest.mark.integration

ROUTES = {
    "/v1/calls": {"get"},
    "/v1/calls/{call_id}": {"get"},
    "/v1/towers": {"get"},
    "/v1/towers/{tower_id}/calls": {"get"},
    "/v1/analytics/summary": {"get"},
    "/v1/analytics/failure-reasons": {"get"},
    "/v1/analytics/timeseries": {"get"},
    "/v1/analytics/towers": {"get"},
    "/v1/analytics/rebuild": {"post"},
    "/v1/rules": {"get", "post"},
    "/v1/rules/{rule_id}": {"get", "put", "delete"},
    "/v1/rules/{rule_id}/versions": {"get"},
    "/v1/rules/{rule_id}/status": {"get"},
    "/v1/rules/preview": {"post"},
    "/v1/events/pm": {"post"},
}


def test_docs_list_every_route(served: Served) -> None:
    docs = served.client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    paths = served.client.get("/openapi.json").json()["paths"]
    for path, methods in ROUTES.items():
        assert path in paths, path
        assert set(paths[path]) == methods, path
    params = {p["name"] for p in paths["/v1/calls"]["get"]["parameters"]}
    assert params == {"from", "to", "tower", "status", "reason", "limit", "cursor"}
    rule = paths["/v1/rules"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert rule["$ref"].endswith("/RuleSpec")


def test_read_scope_takes_the_read_or_the_write_token(
    serve_api: Callable[..., Served],
) -> None:
    s = serve_api(token="write-t", read_token="read-t")
    c = s.client

    def bearer(t: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {t}"}

    for path in ("/v1/calls", "/v1/towers", "/v1/analytics/summary", "/v1/rules"):
        assert c.get(path).status_code == 401, path
        assert c.get(path, headers=bearer("nope")).status_code == 401, path
        assert c.get(path, headers=bearer("read-t")).status_code == 200, path
        assert c.get(path, headers=bearer("write-t")).status_code == 200, path
    assert c.post("/v1/analytics/rebuild", headers=bearer("read-t")).status_code == 401
    assert c.post("/v1/analytics/rebuild", headers=bearer("write-t")).status_code == 202
    assert c.get("/healthz").status_code == 200 and c.get("/metrics").status_code == 200
