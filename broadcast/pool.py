"""`sender --senders K`: K sender processes, each with its own id, seed and metrics port.

The database URL reaches the children through the environment, never their arguments (it may
hold a password, and arguments show in `ps`). Stopping the pool stops every child.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from types import FrameType

from broadcast.config import SenderSettings

log = logging.getLogger(__name__)

# Options passed to every child as they are; the others are set per child.
_SHARED = (
    "mean_time",
    "failure_rate",
    "window",
    "batch_size",
    "rate_limit",
    "lease",
    "poll_interval",
    "retry_base_delay",
    "retry_max_delay",
    "metrics_listen_address",
    "log_level",
    "log_format",
)


def child_args(s: SenderSettings, index: int, base_id: str) -> list[str]:
    """The command line of child index (0-based)."""
    args = [sys.executable, "-m", "broadcast", "sender", "--senders", "1"]
    for name in _SHARED:
        value = getattr(s, name)
        if value is not None:
            args += ["--" + name.replace("_", "-"), str(value)]
    args += ["--sender-id", f"{base_id}-{index + 1}"]
    if s.seed is not None:
        args += ["--seed", str(s.seed + index)]
    args += ["--metrics-port", str(s.metrics_port + index if s.metrics_port else 0)]
    if s.until_empty:
        args.append("--until-empty")
    return args


def run_pool(s: SenderSettings, url: str, base_id: str) -> int:
    """Run s.senders children until they end; the worst exit status among them."""
    env = {**os.environ, "ECM_DATABASE_URL": url}
    children = [subprocess.Popen(child_args(s, i, base_id), env=env) for i in range(s.senders)]
    log.info("started %d senders (%s-1..%d)", len(children), base_id, len(children))
    stopping = threading.Event()

    def forward(signum: int, _frame: FrameType | None) -> None:
        stopping.set()
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    codes = [child.wait() for child in children]
    return max((c for c in codes if c != 0), default=0, key=abs)
