"""ecm-pager's command line as a user runs it: check-only, incidents, ack, resolve."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pager.engine import Engine
from tests.pager.helpers import alert, hook

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "pager" / "example.yml"


def pager(*args: str, url: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run python -m pager with a clean ECM_ environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECM_")}
    if url:
        env["ECM_DATABASE_URL"] = url
    return subprocess.run(
        [sys.executable, "-m", "pager", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )


def test_check_only_validates_the_example() -> None:
    for args in (("--check-only",), ("check-only",)):
        r = pager("--config", str(EXAMPLE), *args)
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith("configuration OK: listen 127.0.0.1:9744, 2 services")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("services: {ecm: {policy: nope}}\n", "names policy 'nope', not defined"),
        (
            "policies: {p: {levels: [{targets: [{email: not-an-address}]}]}}\n"
            "services: {ecm: {policy: p}, ecm-monitoring: {policy: p}}\n",
            "expected an address",
        ),
        (
            "policies: {p: {levels: [{targets: [{sms: '+15550100'}]}]}}\n"
            "services: {ecm: {policy: p}, ecm-monitoring: {policy: p}}\n",
            "set sms_gateway_url",
        ),
        ("policies: {p: {levels: []}}\n", "levels"),
        ("watchdog_silence: soon\n", "watchdog_silence"),
        ("colour: blue\n", "unknown key 'colour'"),
    ],
)
def test_a_bad_policy_file_is_one_line_and_exit_2(tmp_path: Path, text: str, reason: str) -> None:
    config = tmp_path / "pager.yml"
    config.write_text(text)
    r = pager("--config", str(config), "--check-only")
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and reason in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.integration
def test_incidents_ack_and_resolve_from_the_command_line(engine: Engine, pager_url: str) -> None:
    [incident] = engine.ingest(hook(alert("a1"))).opened
    listed = pager("incidents", url=pager_url)
    assert listed.returncode == 0 and f"{incident}  triggered" in listed.stdout
    r = pager("ack", str(incident), "--by", "alice", url=pager_url)
    assert (r.returncode, r.stdout) == (0, f"incident {incident} acknowledged by alice\n")
    assert pager("resolve", str(incident), url=pager_url).returncode == 0
    again = pager("resolve", str(incident), url=pager_url)
    assert again.returncode == 5 and "already resolved" in again.stderr
    missing = pager("ack", "99999", url=pager_url)
    assert missing.returncode == 4 and "no incident 99999" in missing.stderr
    assert pager("ack", "one", url=pager_url).returncode == 2


def test_without_a_database_the_cli_says_so() -> None:
    r = pager("incidents", url="postgresql://nobody@127.0.0.1:1/none")
    assert r.returncode == 3 and "database unavailable" in r.stderr
