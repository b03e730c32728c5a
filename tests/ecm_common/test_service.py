"""The HTTP app factory, seen from a client: a tiny service on a real uvicorn socket."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from ecm_common.errors import ConfigError
from ecm_common.service import (
    BackgroundServer,
    HttpSettings,
    ReadyCheck,
    database_check,
    listen_socket,
    load_token,
)
from stack.pgcluster import free_port
from stack.runner import Child, Supervisor
from tests.ecm_common.service_app import GATE_ENV, TOKEN_ENV, build
from tests.fixtures.postgres import EcmDb
from tests.fixtures.tools import require_binary

TOKEN = "t0ken-for-the-tests"
LIMIT = 1000
PROBLEM = "application/problem+json"
Serve = Callable[..., httpx.Client]


@pytest.fixture
def serve() -> Iterator[Serve]:
    """Start the tiny app on 127.0.0.1 (options as for build()); a client on its URL."""
    servers: list[BackgroundServer] = []
    clients: list[httpx.Client] = []

    def start(**kw: Any) -> httpx.Client:
        kw.setdefault("registry", CollectorRegistry())
        kw.setdefault("settings", HttpSettings(port=0, max_body_bytes=LIMIT))
        srv = BackgroundServer(build(**kw), kw["settings"]).start()
        servers.append(srv)
        clients.append(httpx.Client(base_url=srv.url, timeout=10))
        return clients[-1]

    yield start
    for client in clients:
        client.close()
    for srv in servers:
        srv.stop()


def problem(resp: httpx.Response, status: int) -> dict[str, Any]:
    """The problem+json body, after checking its media type and required members."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == PROBLEM
    body: dict[str, Any] = resp.json()
    assert body["status"] == status
    assert body["type"] == "about:blank"
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    return body


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of an exposition, keyed by name and labels."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def key(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    """A samples() key."""
    return name, frozenset(labels.items())


# --- health and readiness ------------------------------------------------------------------


@pytest.mark.integration
def test_ready_with_the_database_up(serve: Serve, test_db: EcmDb) -> None:
    """/healthz and /readyz answer 200 while PostgreSQL answers."""
    client = serve(ready_check=database_check(test_db.url))
    assert client.get("/healthz").json() == {"status": "ok"}
    resp = client.get("/readyz")
    assert resp.status_code == 200
    assert resp.json() == {"status": "ready"}


def test_not_ready_when_the_database_port_is_closed(serve: Serve) -> None:
    """503 problem+json with Retry-After; the detail gives the reason, never the password."""
    url = f"postgresql://ecm:s3cret-pw@127.0.0.1:{free_port()}/ecm"
    client = serve(ready_check=database_check(url))
    assert client.get("/healthz").status_code == 200
    resp = client.get("/readyz")
    body = problem(resp, 503)
    assert body["title"] == "Service Unavailable"
    assert body["detail"].startswith("database unavailable: ")
    assert "s3cret-pw" not in resp.text
    assert resp.headers["retry-after"] == "5"


def test_readiness_check_is_bounded_in_time(serve: Serve) -> None:
    """A check that hangs makes /readyz answer 503 after the configured timeout, not hang."""
    release = threading.Event()
    check: ReadyCheck = lambda: release.wait(30)  # noqa: E731
    settings = HttpSettings(port=0, readiness_timeout_s=0.2)
    client = serve(ready_check=check, settings=settings)
    try:
        body = problem(client.get("/readyz"), 503)
    finally:
        release.set()
    assert body["detail"] == "the readiness check did not finish within 0.2 s"


# --- metrics -------------------------------------------------------------------------------


def test_metrics_count_requests_by_route_template(serve: Serve, tmp_path: Path) -> None:
    """Counts and latency per route template, method and status class, from the given registry."""
    registry = CollectorRegistry()
    client = serve(registry=registry)
    for path in ("/items/1", "/items/2", "/items/x", "/no/such/page", "/other/page"):
        client.get(path)
    text = client.get("/metrics").text
    got = samples(text)
    item = "/items/{item_id}"
    assert got[key("ecm_http_requests_total", handler=item, method="GET", status="2xx")] == 2
    assert got[key("ecm_http_requests_total", handler=item, method="GET", status="4xx")] == 1
    assert got[key("ecm_http_requests_total", handler="unmatched", method="GET", status="4xx")] == 2
    # Routes not called yet start at zero, so rate() sees their first request.
    assert got[key("ecm_http_requests_total", handler="/items", method="POST", status="2xx")] == 0
    assert (
        got[
            key("ecm_http_request_duration_seconds_count", handler=item, method="GET", status="2xx")
        ]
        == 2
    )
    handlers = {dict(labels).get("handler") for _, labels in got}
    assert not any(h and h.startswith(("/items/1", "/items/2", "/no/")) for h in handlers)
    # The same registry the service was given, not the process-wide one.
    assert (
        registry.get_sample_value(
            "ecm_http_requests_total", {"handler": item, "method": "GET", "status": "2xx"}
        )
        == 2
    )
    exposition = tmp_path / "metrics.txt"
    exposition.write_text(text)
    promtool = require_binary("promtool", "prometheus")
    proc = subprocess.run(
        [promtool, "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --- bearer token --------------------------------------------------------------------------


def test_bearer_token_guards_the_routes_that_ask_for_it(serve: Serve) -> None:
    """No token or a wrong one: 401 with WWW-Authenticate; the right one passes."""
    client = serve(token=SecretStr(TOKEN))
    item = {"name": "radio", "quantity": 2}
    missing = client.post("/items", json=item)
    assert problem(missing, 401)["detail"] == "a bearer token is required"
    assert missing.headers["www-authenticate"] == "Bearer"
    wrong = client.post("/items", json=item, headers={"Authorization": "Bearer nope"})
    assert problem(wrong, 401)["detail"] == "the bearer token is not valid"
    assert wrong.headers["www-authenticate"].startswith("Bearer")
    basic = client.post("/items", json=item, headers={"Authorization": f"Basic {TOKEN}"})
    problem(basic, 401)
    ok = client.post("/items", json=item, headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 201 and ok.json() == {"added": "radio"}
    # Routes that do not ask for the token stay open.
    assert client.get("/items/7").json() == {"id": 7}


def test_a_second_token_guards_its_own_routes(serve: Serve) -> None:
    """bearer_token(other): the app's token does not open it, its own token does."""
    client = serve(token=SecretStr(TOKEN), admin_token=SecretStr("admin-" + TOKEN))
    as_user = client.delete("/items/4", headers={"Authorization": f"Bearer {TOKEN}"})
    problem(as_user, 401)
    as_admin = client.delete("/items/4", headers={"Authorization": f"Bearer admin-{TOKEN}"})
    assert as_admin.json() == {"deleted": 4}


def test_without_a_token_the_guarded_routes_are_open(serve: Serve) -> None:
    """The token is optional: none configured, no header needed."""
    client = serve(token=None)
    assert client.post("/items", json={"name": "radio", "quantity": 1}).status_code == 201


def test_token_from_the_environment_or_a_file(tmp_path: Path) -> None:
    """$NAME or the file in $NAME_FILE; both, an empty or a missing file are one clear error."""
    assert load_token("ECM_X_TOKEN", {}) is None
    token = load_token("ECM_X_TOKEN", {"ECM_X_TOKEN": TOKEN})
    assert token is not None and token.get_secret_value() == TOKEN
    assert TOKEN not in repr(token) and TOKEN not in str(token)
    secret = tmp_path / "token"
    secret.write_text(TOKEN + "\n")
    from_file = load_token("ECM_X_TOKEN", {"ECM_X_TOKEN_FILE": str(secret)})
    assert from_file is not None and from_file.get_secret_value() == TOKEN
    with pytest.raises(ConfigError, match="set ECM_X_TOKEN or ECM_X_TOKEN_FILE, not both") as exc:
        load_token("ECM_X_TOKEN", {"ECM_X_TOKEN": TOKEN, "ECM_X_TOKEN_FILE": str(secret)})
    assert TOKEN not in str(exc.value)
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(ConfigError) as exc:
        load_token("ECM_X_TOKEN", {"ECM_X_TOKEN_FILE": str(empty)})
    assert str(exc.value) == f"{empty}: the token file in ECM_X_TOKEN_FILE is empty"
    missing = tmp_path / "missing"
    with pytest.raises(ConfigError) as exc:
        load_token("ECM_X_TOKEN", {"ECM_X_TOKEN_FILE": str(missing)})
    assert str(exc.value).startswith(f"{missing}: cannot read the token file in ECM_X_TOKEN_FILE")


# --- problem+json --------------------------------------------------------------------------


def test_unknown_route_and_wrong_method(serve: Serve) -> None:
    """404 for a path no route has, 405 with Allow for a method a route does not take."""
    client = serve()
    body = problem(client.get("/v1/nothing-here"), 404)
    assert body["title"] == "Not Found"
    resp = client.post("/items/3")
    assert problem(resp, 405)["title"] == "Method Not Allowed"
    assert "GET" in resp.headers["allow"].split(", ")


def test_validation_error_names_the_fields_without_echoing_the_input(serve: Serve) -> None:
    """422 lists each bad field and why; a large bad value does not come back."""
    client = serve(settings=HttpSettings(port=0))
    huge = "y" * 100_000
    resp = client.post("/items", json={"name": huge, "quantity": -1, "extra": huge})
    body = problem(resp, 422)
    fields = {e["field"]: e["message"] for e in body["errors"]}
    assert set(fields) == {"body.name", "body.quantity"}
    assert "50 characters" in fields["body.name"]
    assert "greater than or equal to 0" in fields["body.quantity"]
    assert body["detail"].startswith("invalid request: body.")
    assert huge[:100] not in resp.text
    assert len(resp.content) < 2000
    missing = problem(client.post("/items", json={}), 422)
    assert {e["field"] for e in missing["errors"]} == {"body.name", "body.quantity"}


def test_malformed_json_is_400(serve: Serve) -> None:
    """A body that is not JSON is a bad request with the parser's reason."""
    client = serve()
    resp = client.post("/items", content=b'{"name": ', headers={"Content-Type": "application/json"})
    assert problem(resp, 400)["detail"].startswith("request body is not valid JSON")


def test_a_crash_is_500_without_internals(serve: Serve) -> None:
    """An exception in a route answers 500 problem+json; the message stays in the log."""
    resp = serve().get("/boom")
    assert problem(resp, 500)["detail"] == "internal error; the service log has the details"
    assert "internal state" not in resp.text


def test_body_over_the_limit_is_413_while_reading(serve: Serve) -> None:
    """Over the limit: 413, whether announced by Content-Length or streamed in chunks."""
    client = serve(token=None)
    padding = "z" * (LIMIT + 10)
    declared = client.post(
        "/items",
        content=json.dumps({"name": padding, "quantity": 1}).encode(),
        headers={"Content-Type": "application/json"},
    )
    detail = f"the request body is over the limit of {LIMIT} bytes"
    assert problem(declared, 413)["detail"] == detail

    def chunks() -> Iterator[bytes]:
        yield b'{"name": "'
        for _ in range(5):
            yield b"z" * (LIMIT // 4)
        yield b'", "quantity": 1}'

    streamed = client.post("/items", content=chunks(), headers={"Content-Type": "application/json"})
    assert "content-length" not in streamed.request.headers
    assert problem(streamed, 413)["detail"] == detail
    under = client.post("/items", json={"name": "radio", "quantity": 1})
    assert under.status_code == 201


def test_requests_over_the_concurrency_limit_get_503(serve: Serve, tmp_path: Path) -> None:
    """With the limit busy, another request is refused at once; /healthz and /metrics answer."""
    monkey_env = {GATE_ENV: str(tmp_path)}
    client = serve(settings=HttpSettings(port=0, max_concurrent_requests=1))
    results: list[httpx.Response] = []
    with pytest.MonkeyPatch.context() as mp:
        for k, v in monkey_env.items():
            mp.setenv(k, v)
        held = threading.Thread(target=lambda: results.append(client.get("/wait")))
        held.start()
        try:
            _await_file(tmp_path / "started")
            refused = client.get("/items/1")
            body = problem(refused, 503)
            assert "1 requests already" in body["detail"]
            assert refused.headers["retry-after"] == "1"
            assert client.get("/healthz").status_code == 200
            assert client.get("/metrics").status_code == 200
        finally:
            (tmp_path / "release").touch()
            held.join(30)
    assert results[0].json() == {"released": True}
    assert client.get("/items/1").status_code == 200


# --- as a process --------------------------------------------------------------------------


@pytest.mark.slow
def test_a_service_process_logs_json_and_stops_gracefully_on_sigterm(tmp_path: Path) -> None:
    """JSON log lines without the token; SIGTERM lets the request in flight finish, then exit 0."""
    port = free_port()
    child = Child(
        "tiny",
        [sys.executable, "-m", "tests.ecm_common.service_app", str(port)],
        tmp_path / "tiny.log",
        env={TOKEN_ENV: TOKEN, GATE_ENV: str(tmp_path)},
        url=f"http://127.0.0.1:{port}",
        ready_path="/healthz",
    )
    results: list[httpx.Response] = []
    with Supervisor() as sup:
        sup.start(child, wait=True)
        with httpx.Client(base_url=child.url, timeout=30) as client:
            assert client.post("/items", json={"name": "a", "quantity": 1}).status_code == 401
            held = threading.Thread(target=lambda: results.append(client.get("/wait")))
            held.start()
            _await_file(tmp_path / "started")
            assert child.proc is not None
            child.proc.send_signal(signal.SIGTERM)
            (tmp_path / "release").touch()
            held.join(30)
            status = child.proc.wait(30)
    assert results and results[0].status_code == 200, child.tail()
    assert results[0].json() == {"released": True}
    assert status == 0, child.tail()
    lines = [ln for ln in child.logfile.read_text().splitlines() if ln.strip()]
    docs = [json.loads(ln) for ln in lines]
    assert all({"time", "level", "logger", "message"} <= set(d) for d in docs)
    messages = [d["message"] for d in docs]
    assert f"tiny listening on http://127.0.0.1:{port}" in messages
    assert "tiny stopped" in messages
    assert TOKEN not in child.logfile.read_text()


def test_a_taken_port_is_one_config_error() -> None:
    """Listening on a port in use is a ConfigError naming the address, not a traceback."""
    with listen_socket("127.0.0.1", 0) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{port}"):
            listen_socket("127.0.0.1", port)


def _await_file(path: Path, timeout_s: float = 20.0) -> None:
    """Wait until the app under test created path (readiness, not a timing assertion)."""
    import time

    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if time.monotonic() > deadline:
            pytest.fail(f"{path.name} never appeared", pytrace=False)
        time.sleep(0.01)
