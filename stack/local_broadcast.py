"""The SMS broadcast in the local run: one sender on its own login serving /metrics, and a
small demonstration campaign queued before it starts (`--broadcast-messages`, 0 for none).

The demo sender is rate-limited so that the campaign's progress is visible on the dashboard
for a minute or so instead of ending between two scrapes.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from ecm_common.db import URL_ENV
from ecm_common.errors import EcmError
from stack.runner import Child

if TYPE_CHECKING:
    from stack.config import StackConfig

DEMO_RATE_LIMIT = 20
PRODUCE_TIMEOUT_S = 120


class DemoCampaignFailed(EcmError):
    """The demonstration campaign could not be queued."""


def produce_demo(cfg: StackConfig, state: Path, db_url: str, python: str) -> None:
    """Queue the demo campaign (nothing when broadcast_messages is 0)."""
    if not cfg.broadcast_messages:
        return
    log_file = state / "broadcast-produce.log"
    with log_file.open("w") as log:
        proc = subprocess.run(
            [python, "-m", "broadcast", "produce", "--count", str(cfg.broadcast_messages),
             "--no-progress", "--log-format", cfg.log_format],
            env={**os.environ, URL_ENV: db_url},
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=PRODUCE_TIMEOUT_S,
            check=False,
        )  # fmt: skip
    if proc.returncode != 0:
        raise DemoCampaignFailed(f"the demo SMS campaign was not queued; see {log_file}")


def child(cfg: StackConfig, state: Path, db_url: str, python: str) -> Child:
    """The sender child, ready when its /metrics answers."""
    return Child(
        "broadcast-sender",
        [python, "-m", "broadcast", "sender", "--metrics-port", str(cfg.broadcast_port),
         "--metrics-listen-address", "127.0.0.1", "--rate-limit", str(DEMO_RATE_LIMIT),
         "--sender-id", "local-1", "--log-format", cfg.log_format, "--log-level", cfg.log_level],
        state / "broadcast-sender.log",
        env={URL_ENV: db_url},
        url=f"http://127.0.0.1:{cfg.broadcast_port}",
        ready_path="/metrics",
    )  # fmt: skip
