"""The pager's place in the stack: Alertmanager's pager and heartbeat routes carry its token,
compose's renderer writes the token file, the local run's pager configuration is valid."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import yaml

from pager.config import load_settings
from stack import local_pager, promconfig
from stack.config import StackConfig
from tests.fixtures.tools import require_binary

URLS = {name: f"http://127.0.0.1:9744/{name.lower()}" for name in promconfig.WEBHOOK_ENV}


def _hooks(path: Path) -> dict[str, dict[str, object]]:
    cfg = yaml.safe_load(path.read_text())
    return {r["name"]: r["webhook_configs"][0] for r in cfg["receivers"]}


def test_the_pager_routes_send_its_token_from_a_file(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("am-token\n")
    out = promconfig.render_alertmanager_config(
        tmp_path / "am",
        URLS,
        credentials_files={"pager": str(token), "heartbeat": str(token)},
    )
    hooks = _hooks(out)
    auth = {"authorization": {"credentials_file": str(token)}}
    assert hooks["pager"]["http_config"] == auth
    assert hooks["heartbeat"]["http_config"] == auth
    assert "http_config" not in hooks["tickets"]
    assert "am-token" not in out.read_text()
    amtool = require_binary("amtool", "prometheus-alertmanager")
    check = subprocess.run(
        [amtool, "check-config", str(out)], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_compose_renderer_writes_the_token_where_alertmanager_reads_it(tmp_path: Path) -> None:
    env = {"PATH": os.environ["PATH"], **URLS, promconfig.PAGER_TOKEN_ENV: "am-token"}
    proc = subprocess.run(
        [
            sys.executable, "-m", "stack.promconfig", "alertmanager",
            f"--out-dir={tmp_path}", "--credentials-dir", "/etc/ecm-alertmanager",
        ],
        capture_output=True, text=True, env=env, check=False, timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    written = tmp_path / promconfig.PAGER_TOKEN_FILE
    assert written.read_text() == "am-token\n"
    assert stat.S_IMODE(written.stat().st_mode) == 0o644
    path = f"/etc/ecm-alertmanager/{promconfig.PAGER_TOKEN_FILE}"
    hooks = _hooks(tmp_path / "alertmanager.yml")
    assert hooks["pager"]["http_config"] == {"authorization": {"credentials_file": path}}
    assert "am-token" not in (tmp_path / "alertmanager.yml").read_text()


def test_the_local_runs_pager_configuration_is_valid(tmp_path: Path) -> None:
    cfg = StackConfig.model_validate({"pager_port": 19744, "sink_port": 19099})
    settings = load_settings(file=local_pager.config(cfg, tmp_path), environ={})
    assert settings.http.port == 19744
    assert settings.public_url == "http://127.0.0.1:19744"
    [level] = settings.policy_of("ecm").levels
    assert [t.address for t in level.targets] == ["http://127.0.0.1:19099/pages"]


def test_the_local_runs_pager_secrets_are_files_only_its_user_reads(tmp_path: Path) -> None:
    child, pager = local_pager.child(
        StackConfig.model_validate({}), tmp_path, "postgresql://x@h/db", "python"
    )
    for name in ("ECM_PAGER_ALERTMANAGER_TOKEN", "ECM_PAGER_TOKEN", "ECM_PAGER_ACK_SECRET"):
        assert name not in child.env
        secret = Path(child.env[f"{name}_FILE"])
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
        assert secret.read_text().strip() not in " ".join(child.argv)
    assert pager.webhook == "http://127.0.0.1:9744/v1/alertmanager"
