"""The `pm` subcommand of ecm-generator: its flags and its run."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from types import FrameType
from typing import Any

from ecm_common.clock import SystemClock
from ecm_common.config import load_config
from ecm_common.logs import setup_logging
from ecm_common.service import load_token
from generator.pm_config import DEFAULT_API_URL, PmSettings

log = logging.getLogger(__name__)

TOKEN_ENV = "ECM_API_TOKEN"
PROG = "ecm-generator pm"

OPTIONS: dict[str, str] = {
    "--api-url": f"base URL of the ECM API (default {DEFAULT_API_URL})",
    "--towers": "towers TOWER_1..N the cells belong to (default 50, as the calls generator)",
    "--sectors": "cells per tower (default 3)",
    "--cells": "cells simulated (default towers x sectors)",
    "--period": "granularity period: one event per cell per period (default 15m; 10s for a demo)",
    "--rate": "send at most this many events per second (default: as fast as the API takes)",
    "--batch-size": "events per request (default 500, at most 5000)",
    "--count": "stop after this many events",
    "--duration": "stop after this long (90, 30s, 10m, 1h30m)",
    "--scenario": "calls scenario YAML: outages silence cells, surges load them",
    "--seed": "seed of the random stream: same seed, same values",
    "--request-timeout": "longest a request may take (default 10s)",
    "--max-retries": "retries of a batch before it waits for the next try (default 5)",
    "--retry-base-delay": "first retry delay, doubled each retry (default 0.2s)",
    "--retry-max-delay": "longest retry delay (default 5s)",
    "--pm-spool-dir": "where batches wait while the API is down (default: the state dir)",
    "--max-backlog": "events kept in memory when the spool fails; older are dropped (200000)",
    "--log-level": "DEBUG, INFO, WARNING or ERROR",
    "--log-format": "text or json",
}


def add_pm_parser(sub: Any) -> None:
    """Register `pm` on the subparsers of ecm-generator."""
    pm = sub.add_parser(
        "pm",
        help="post RAN PM counters (one event per cell per period) to the ECM API",
        epilog=f"Bearer token: ${TOKEN_ENV} or ${TOKEN_ENV}_FILE.",
    )
    pm.add_argument("--config", default=argparse.SUPPRESS, help="YAML file of options")
    pm.add_argument(
        "--check-only", action="store_true", default=argparse.SUPPRESS,
        help="validate the configuration and exit",
    )  # fmt: skip
    for flag, text in OPTIONS.items():
        pm.add_argument(flag, default=argparse.SUPPRESS, help=text)


def pm_main(ns: argparse.Namespace) -> int:
    """Run `ecm-generator pm`; the exit status says what could not be delivered."""
    from generator.pm import PmRun

    skip = {"command", "config", "check_only"}
    flags = {k: v for k, v in vars(ns).items() if k not in skip}
    s = load_config(PmSettings, file=getattr(ns, "config", None), flags=flags)
    token = load_token(TOKEN_ENV)
    stop = threading.Event()
    run = PmRun(s, SystemClock(), stop, token)
    if getattr(ns, "check_only", False):
        print("configuration OK")
        return 0
    setup_logging(s.log_level, s.log_format)

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    log.info("PM counters of %d cells every %g s to %s", s.n_cells, s.period, s.api_url)
    counts = run.run()
    print(f"{PROG}: {counts.summary()}", flush=True)
    return counts.exit_status()
