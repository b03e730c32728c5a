"""Rendering the committed Prometheus and Alertmanager configs with local addresses."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from ecm_common.errors import ConfigError
from stack import promconfig
from tests.fixtures.tools import require_binary

ROOT = Path(__file__).resolve().parents[2]
# The scrape jobs docs/CONTRACT.md names.
CONTRACT_JOBS = {
    "ecm-exporter",
    "ecm-generator",
    "prometheus",
    "alertmanager",
    "ecm-pager",
    "ecm-api",
    "ecm-broadcast",
}
LOCAL = {
    "ecm-exporter": "127.0.0.1:19742",
    "ecm-generator": "127.0.0.1:19743",
    "prometheus": "127.0.0.1:19090",
    "alertmanager": "127.0.0.1:19093",
    "ecm-pager": "127.0.0.1:19744",
    "ecm-api": "127.0.0.1:19745",
    "ecm-broadcast": "127.0.0.1:19746",
}


def promtool_check(path: Path) -> subprocess.CompletedProcess[str]:
    """promtool check config, which also checks the rule files it names."""
    promtool = require_binary("promtool", "prometheus")
    return subprocess.run(
        [promtool, "check", "config", str(path)], capture_output=True, text=True, check=False
    )


def test_committed_prometheus_config_is_valid_and_has_the_contract_jobs() -> None:
    """The compose config checks out as is, with the contract's jobs and the committed rules."""
    path = ROOT / "prometheus" / "prometheus.yml"
    proc = promtool_check(path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rule_files = len(list((ROOT / "prometheus" / "rules").glob("*.yml")))
    assert f"{rule_files} rule files found" in proc.stdout
    cfg = yaml.safe_load(path.read_text())
    assert {j["job_name"] for j in cfg["scrape_configs"]} == CONTRACT_JOBS
    exporter = next(j for j in cfg["scrape_configs"] if j["job_name"] == "ecm-exporter")
    assert exporter["static_configs"][0]["targets"] == ["exporter:9742"]


def test_rendered_prometheus_config_uses_local_addresses(tmp_path: Path) -> None:
    """Same jobs and rules, local targets, faster intervals when asked."""
    out = promconfig.render_prometheus_config(
        tmp_path, LOCAL, "127.0.0.1:19093", scrape_interval="1s", evaluation_interval="2s"
    )
    proc = promtool_check(out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cfg = yaml.safe_load(out.read_text())
    assert {j["job_name"]: j["static_configs"][0]["targets"] for j in cfg["scrape_configs"]} == {
        k: [v] for k, v in LOCAL.items()
    }
    assert cfg["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [
        "127.0.0.1:19093"
    ]
    assert cfg["global"]["scrape_interval"] == "1s"
    assert cfg["global"]["evaluation_interval"] == "2s"
    assert sorted(cfg["rule_files"]) == sorted(
        str(p) for p in (ROOT / "prometheus" / "rules").glob("*.yml")
    )


def test_a_job_can_be_left_out_and_rules_replaced(tmp_path: Path) -> None:
    """None drops a job (no generator running); rule_files point wherever the caller says."""
    rule = tmp_path / "r.yml"
    rule.write_text("groups: []\n")
    out = promconfig.render_prometheus_config(
        tmp_path, {**LOCAL, "ecm-generator": None}, None, rule_files=[rule]
    )
    cfg = yaml.safe_load(out.read_text())
    assert "ecm-generator" not in {j["job_name"] for j in cfg["scrape_configs"]}
    assert "alerting" not in cfg
    assert cfg["rule_files"] == [str(rule)]


def test_every_job_needs_an_address(tmp_path: Path) -> None:
    """A forgotten or unknown job is a clear error, not a silently missing scrape."""
    partial = {k: v for k, v in LOCAL.items() if k != "alertmanager"}
    with pytest.raises(ConfigError, match="no address given for scrape job 'alertmanager'"):
        promconfig.render_prometheus_config(tmp_path, partial, None)
    with pytest.raises(ConfigError, match="no scrape job named ecm-unknown"):
        promconfig.render_prometheus_config(tmp_path, {**LOCAL, "ecm-unknown": "x:1"}, None)


def test_alertmanager_urls_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without explicit URLs the variables are read; a missing one is named in the error."""
    monkeypatch.setenv("ECM_PAGER_WEBHOOK_URL", "http://127.0.0.1:1/p")
    monkeypatch.setenv("ECM_TICKETS_WEBHOOK_URL", "http://127.0.0.1:1/t")
    monkeypatch.delenv("ECM_HEARTBEAT_WEBHOOK_URL", raising=False)
    with pytest.raises(ConfigError, match="set ECM_HEARTBEAT_WEBHOOK_URL"):
        promconfig.render_alertmanager_config(tmp_path)
    monkeypatch.setenv("ECM_HEARTBEAT_WEBHOOK_URL", "http://127.0.0.1:1/h")
    out = promconfig.render_alertmanager_config(tmp_path)
    cfg = yaml.safe_load(out.read_text())
    assert [r["webhook_configs"][0]["url"] for r in cfg["receivers"]] == [
        "http://127.0.0.1:1/p",
        "http://127.0.0.1:1/t",
        "http://127.0.0.1:1/h",
    ]
    assert cfg["templates"] == [str(ROOT / "alertmanager" / "templates" / "*.tmpl")]


def test_alertmanager_timers_replace_every_committed_value(
    tmp_path: Path, example_urls: dict[str, str]
) -> None:
    """Short timers for tests reach the root route and every route that sets its own."""
    committed = yaml.safe_load((ROOT / "alertmanager" / "alertmanager.yml").read_text())
    out = promconfig.render_alertmanager_config(
        tmp_path, example_urls, timers={"group_wait": "1s", "group_interval": "2s"}
    )
    cfg = yaml.safe_load(out.read_text())
    routes = [cfg["route"], *cfg["route"]["routes"]]
    old = [committed["route"], *committed["route"]["routes"]]
    for new, before in zip(routes, old, strict=True):
        for key, value in (("group_wait", "1s"), ("group_interval", "2s")):
            if new is cfg["route"] or key in before:
                assert new[key] == value
            else:
                assert key not in new
        assert new.get("repeat_interval") == before.get("repeat_interval")
    with pytest.raises(ConfigError, match="unknown Alertmanager timer"):
        promconfig.render_alertmanager_config(tmp_path, example_urls, timers={"group_by": "x"})


def test_command_lines_listen_where_asked(tmp_path: Path) -> None:
    """The commands the local run uses bind the given address and keep state in the given dir."""
    prom = promconfig.prometheus_command(tmp_path / "p.yml", tmp_path / "data", "127.0.0.1:19090")
    assert "--web.listen-address=127.0.0.1:19090" in prom
    assert f"--storage.tsdb.path={tmp_path / 'data'}" in prom
    am = promconfig.alertmanager_command(tmp_path / "a.yml", tmp_path / "am", "127.0.0.1:19093")
    assert am[0] == "prometheus-alertmanager"
    assert "--web.listen-address=127.0.0.1:19093" in am
    assert "--cluster.listen-address=" in am
