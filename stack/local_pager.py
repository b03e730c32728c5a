"""The pager in the local run: its configuration (one level that posts each page to the webhook
sink's /pages, so a page shows up in notifications.jsonl), its secrets in files of the state
directory, and the child process. Alertmanager's critical and heartbeat routes point at it."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from stack.runner import Child
from stack.yamlout import dump_yaml

if TYPE_CHECKING:
    from stack.config import StackConfig

ALERTMANAGER_TOKEN_ENV = "ECM_PAGER_ALERTMANAGER_TOKEN"
WRITE_TOKEN_ENV = "ECM_PAGER_TOKEN"
ACK_SECRET_ENV = "ECM_PAGER_ACK_SECRET"
PAGES_RECEIVER = "pages"


@dataclass(frozen=True)
class LocalPager:
    """Where the local pager answers and the files that hold its secrets."""

    url: str
    alertmanager_token_file: Path
    write_token_file: Path

    @property
    def webhook(self) -> str:
        """The URL Alertmanager posts to."""
        return f"{self.url}/v1/alertmanager"


def _secret_file(path: Path) -> Path:
    """A new random secret in a file only this user can read."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_urlsafe(24) + "\n")
    return path


def config(cfg: StackConfig, state: Path) -> Path:
    """state/pager.yml: the local pager's services and its one-level policy."""
    url = f"http://127.0.0.1:{cfg.pager_port}"
    doc = {
        "port": cfg.pager_port,
        "listen_address": "127.0.0.1",
        "public_url": url,
        "policies": {
            "local": {
                "levels": [
                    {"targets": [{"webhook": f"http://127.0.0.1:{cfg.sink_port}/{PAGES_RECEIVER}"}]}
                ]
            }
        },
        "services": {"ecm": {"policy": "local"}, "ecm-monitoring": {"policy": "local"}},
    }
    path = state / "pager.yml"
    path.write_text(dump_yaml(doc), encoding="utf-8")
    return path


def child(cfg: StackConfig, state: Path, db_url: str, python: str) -> tuple[Child, LocalPager]:
    """The pager's child process (not started) and what Alertmanager needs to reach it."""
    secrets_dir = state / "secrets"
    secrets_dir.mkdir(mode=0o700, exist_ok=True)
    pager = LocalPager(
        url=f"http://127.0.0.1:{cfg.pager_port}",
        alertmanager_token_file=_secret_file(secrets_dir / "pager-alertmanager-token"),
        write_token_file=_secret_file(secrets_dir / "pager-token"),
    )
    ack_secret = _secret_file(secrets_dir / "pager-ack-secret")
    proc = Child(
        "pager",
        # The port as a flag too: an ECM_PORT meant for another part must not move the pager.
        [
            python,
            "-m",
            "pager",
            "--config",
            str(config(cfg, state)),
            "--port",
            str(cfg.pager_port),
            "serve",
        ],
        state / "pager.log",
        # File names, never the secrets, in the child's environment.
        env={
            "ECM_DATABASE_URL": db_url,
            f"{ALERTMANAGER_TOKEN_ENV}_FILE": str(pager.alertmanager_token_file),
            f"{WRITE_TOKEN_ENV}_FILE": str(pager.write_token_file),
            f"{ACK_SECRET_ENV}_FILE": str(ack_secret),
        },
        url=pager.url,
        ready_path="/healthz",
    )
    return proc, pager
