"""Alert rules at run time over real HTTP: stored and versioned in PostgreSQL, rendered into the
user rules file checked by the real promtool, loaded by a real Prometheus on loopback; a rule
promtool refuses is a 422 with the reason and leaves the previous file and rules in place."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from stack.promconfig import prometheus_command
from tests.api.conftest import Served
from tests.fixtures.tools import require_binary

pytestmark = pytest.mark.integration

TOKEN = "rules-write-token"
AUTH = {"Authorization": f"Bearer {TOKEN}", "X-ECM-Actor": "alice"}
RULE: dict[str, Any] = {
    "name": "NorthFailures",
    "what": "failure_ratio",
    "scope": "region",
    "target": "north",
    "comparison": ">",
    "threshold": 0.2,
    "window": "5m",
    "for": "2m",
    "severity": "critical",
    "summary": "More than 20% of calls fail in the north",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real Prometheus reading rules from a directory (the rules/*.yml glob); (url, dir)."""
    binary = require_binary("prometheus", "prometheus")
    rules = tmp_path / "rules"
    rules.mkdir()
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text(yaml.safe_dump({"rule_files": [str(rules / "*.yml")]}))
    listen = f"127.0.0.1:{free_port()}"
    log = (tmp_path / "prometheus.log").open("w")
    proc = subprocess.Popen(
        prometheus_command(cfg, tmp_path / "data", listen, binary=binary),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://{listen}"
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError((tmp_path / "prometheus.log").read_text())
            time.sleep(0.1)
        yield url, rules
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


@pytest.fixture
def rules_api(
    serve_api: Callable[..., Served], prometheus: tuple[str, Path]
) -> tuple[Served, Path, str]:
    url, rules_dir = prometheus
    promtool = require_binary("promtool", "prometheus")
    s = serve_api(token=TOKEN, rules_dir=str(rules_dir), prometheus_url=url, promtool=promtool)
    return s, rules_dir / "ecm_user_rules.yml", url


def loaded(prom_url: str) -> dict[str, dict[str, Any]]:
    """Alerting rules Prometheus has loaded, by name."""
    groups = httpx.get(f"{prom_url}/api/v1/rules").json()["data"]["groups"]
    return {r["name"]: r for g in groups for r in g["rules"]}


def test_a_rule_is_stored_rendered_checked_and_loaded_then_updated_and_deleted(
    rules_api: tuple[Served, Path, str],
) -> None:
    s, path, prom = rules_api
    resp = s.client.post("/v1/rules", json=RULE, headers=AUTH)
    assert resp.status_code == 201, resp.text
    rule = resp.json()
    assert rule["prometheus"] == "reloaded" and rule["version"] == 1
    assert rule["alert"] == "EcmRuleNorthFailures" and rule["updated_by"] == "alice"
    (group,) = yaml.safe_load(path.read_text())["groups"]
    (alert,) = group["rules"]
    assert alert["alert"] == "EcmRuleNorthFailures" and alert["for"] == "120s"
    assert alert["labels"]["severity"] == "critical" and alert["labels"]["region"] == "north"
    assert alert["annotations"]["runbook_url"].endswith(".md")
    assert 'region="north"' in alert["expr"] and "[300s]" in alert["expr"]
    check = subprocess.run(
        [require_binary("promtool", "prometheus"), "check", "rules", str(path)],
        capture_output=True,
        check=False,
    )
    assert check.returncode == 0, check.stderr
    on_prom = loaded(prom)["EcmRuleNorthFailures"]
    assert on_prom["duration"] == 120 and on_prom["labels"]["severity"] == "critical"
    status = s.client.get(f"/v1/rules/{rule['rule_id']}/status").json()
    assert status["loaded"] is True and status["state"] == "inactive"
    assert status["active_alerts"] == []

    rid = rule["rule_id"]
    changed = {**RULE, "threshold": 0.3, "severity": "warning"}
    resp = s.client.put(f"/v1/rules/{rid}", json=changed, headers=AUTH)
    assert resp.status_code == 200, resp.text
    assert resp.json()["version"] == 2
    assert loaded(prom)["EcmRuleNorthFailures"]["labels"]["severity"] == "warning"
    assert s.client.get(f"/v1/rules/{rid}").json()["threshold"] == 0.3
    assert [r["rule_id"] for r in s.client.get("/v1/rules").json()] == [rid]

    resp = s.client.delete(f"/v1/rules/{rid}", headers=AUTH)
    assert resp.status_code == 200 and resp.json()["deleted"] is True
    assert "EcmRuleNorthFailures" not in loaded(prom)
    assert s.client.get(f"/v1/rules/{rid}/status").status_code == 404
    assert yaml.safe_load(path.read_text())["groups"][0]["rules"] == []
    assert s.client.get(f"/v1/rules/{rid}").status_code == 404
    versions = s.client.get(f"/v1/rules/{rid}/versions").json()
    assert [(v["version"], v["action"]) for v in versions] == [
        (1, "create"),
        (2, "update"),
        (3, "delete"),
    ]
    assert {v["changed_by"] for v in versions} == {"alice"}


def test_preview_evaluates_the_rule_in_prometheus(rules_api: tuple[Served, Path, str]) -> None:
    s, path, _ = rules_api
    before = path.read_text()  # written at start-up from the (empty) table
    resp = s.client.post("/v1/rules/preview", json=RULE, params={"hours": 2})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    # This Prometheus scrapes nothing: the condition never held.
    assert body["alert"] == "EcmRuleNorthFailures" and body["would_fire"] is False
    assert body["intervals"] == [] and body["step_seconds"] >= 15
    assert path.read_text() == before  # a preview changes nothing
    assert s.client.post("/v1/rules/preview", json=RULE, params={"hours": 48}).status_code == 422


def test_firing_intervals_honour_for() -> None:
    from api.rules_preview import _firing

    # Held at 0..60 (step 15), a gap, then 300..315: with for=30s only the first run fires.
    times = [0.0, 15.0, 30.0, 45.0, 60.0, 300.0, 315.0]
    assert _firing(times, 15, 30) == [(30.0, 60.0)]
    assert _firing(times, 15, 0) == [(0.0, 60.0), (300.0, 315.0)]
    assert _firing([], 15, 0) == []


def test_a_rule_promtool_refuses_is_a_422_and_the_previous_file_stays(
    rules_api: tuple[Served, Path, str],
) -> None:
    s, path, prom = rules_api
    assert s.client.post("/v1/rules", json=RULE, headers=AUTH).status_code == 201
    before = path.read_text()
    broken = {**RULE, "name": "Broken", "summary": "value is {{ $value"}
    resp = s.client.post("/v1/rules", json=broken, headers=AUTH)
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    assert "promtool refused" in resp.json()["detail"]
    assert path.read_text() == before
    assert [r["name"] for r in s.client.get("/v1/rules").json()] == ["NorthFailures"]
    assert set(loaded(prom)) == {"EcmRuleNorthFailures"}
    assert not list(path.parent.glob(".*tmp"))


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"threshold": 2}, "ratio"),
        ({"scope": "tower", "target": None}, "target"),
        ({"target": 'north"} or vector(1) #'}, "target"),
        ({"what": "pm_kpi"}, "kpi"),
        ({"what": "pm_kpi", "kpi": "drop"}, "network-wide"),
        ({"window": "5s"}, "window"),
        ({"for": "forever"}, "for"),
        ({"name": "lower case"}, "name"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_malformed_rules_are_a_422_with_the_reason(
    serve_api: Callable[..., Served], tmp_path: Path, change: dict[str, Any], words: str
) -> None:
    s = serve_api(token=TOKEN, rules_dir=str(tmp_path))
    before = (tmp_path / "ecm_user_rules.yml").read_text()
    resp = s.client.post("/v1/rules", json={**RULE, **change}, headers=AUTH)
    assert resp.status_code == 422, resp.text
    assert words in resp.json()["detail"]
    assert (tmp_path / "ecm_user_rules.yml").read_text() == before


def test_rule_changes_need_the_token_a_directory_and_a_free_name(
    serve_api: Callable[..., Served], tmp_path: Path
) -> None:
    read_only = serve_api(token=TOKEN)
    assert read_only.client.post("/v1/rules", json=RULE).status_code == 401
    resp = read_only.client.post("/v1/rules", json=RULE, headers=AUTH)
    assert resp.status_code == 503 and "rules_dir" in resp.json()["detail"]
    assert read_only.client.get("/v1/rules").json() == []
    assert read_only.client.get("/v1/rules/1/status").status_code == 404
    s = serve_api(token=TOKEN, rules_dir=str(tmp_path), promtool="/nonexistent/promtool")
    resp = s.client.post("/v1/rules", json=RULE, headers=AUTH)
    assert resp.status_code == 422 and "promtool could not check" in resp.json()["detail"]
    s = serve_api(token=TOKEN, rules_dir=str(tmp_path))
    created = s.client.post("/v1/rules", json=RULE, headers=AUTH)
    assert created.status_code == 201
    status = s.client.get(f"/v1/rules/{created.json()['rule_id']}/status")
    assert status.status_code == 503 and "prometheus_url" in status.json()["detail"]
    again = s.client.post("/v1/rules", json=RULE, headers=AUTH)
    assert again.status_code == 409 and "name" in again.json()["detail"]
    assert s.client.put("/v1/rules/999", json=RULE, headers=AUTH).status_code == 404
    assert s.client.delete("/v1/rules/999", headers=AUTH).status_code == 404


def test_cli_adds_lists_and_removes_rules_over_the_api(
    serve_api: Callable[..., Served],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from api.__main__ import main

    s = serve_api(token=TOKEN, rules_dir=str(tmp_path))
    base = ["--api-url", str(s.client.base_url)]
    rule_file = tmp_path / "rule.yaml"
    rule_file.write_text(yaml.safe_dump(RULE))
    assert main([*base, "rules", "add", str(rule_file)]) == 1  # no token: 401
    assert "401" in capsys.readouterr().err
    monkeypatch.setenv("ECM_API_TOKEN", TOKEN)
    assert main([*base, "rules", "add", str(rule_file)]) == 0
    rid = capsys.readouterr().out.split("\t")[0]
    assert main([*base, "rules", "list"]) == 0
    listed = capsys.readouterr().out
    assert listed.startswith(f"{rid}\tEcmRuleNorthFailures\tcritical\tenabled\t")
    rule_file.write_text(yaml.safe_dump({**RULE, "name": "Other", "threshold": 7}))
    assert main([*base, "rules", "add", str(rule_file)]) == 2
    err = capsys.readouterr().err
    assert "422" in err and "ratio" in err and len(err.strip().splitlines()) == 1
    assert main([*base, "rules", "rm", rid]) == 0
    assert f"deleted {rid}" in capsys.readouterr().out
    assert main([*base, "rules", "rm", rid]) == 2
    assert "404" in capsys.readouterr().err
    assert main([*base, "rebuild-rollups"]) == 0
    assert capsys.readouterr().out.strip() == "rebuilding"
    assert main(["--api-url", "http://127.0.0.1:9", "rules", "list"]) == 1
    assert "cannot reach the API" in capsys.readouterr().err


def test_a_lost_rules_file_is_written_again_at_start_up(
    serve_api: Callable[..., Served], tmp_path: Path
) -> None:
    first = serve_api(token=TOKEN, rules_dir=str(tmp_path))
    assert first.client.post("/v1/rules", json=RULE, headers=AUTH).status_code == 201
    written = (tmp_path / "ecm_user_rules.yml").read_text()
    (tmp_path / "ecm_user_rules.yml").unlink()
    serve_api(token=TOKEN, rules_dir=str(tmp_path))
    assert (tmp_path / "ecm_user_rules.yml").read_text() == written
