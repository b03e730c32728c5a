"""The command line of ecm-broadcast: subcommands, their flags, and settings from them."""

from __future__ import annotations

import argparse
from typing import Any

from broadcast.config import (
    CancelSettings,
    Common,
    MonitorSettings,
    ProduceSettings,
    SenderSettings,
    settings,
)
from ecm_common.cli import Parser

PROG = "ecm-broadcast"

COMMON: dict[str, str] = {
    "--database-url": "libpq URL of the database (env ECM_DATABASE_URL)",
    "--log-level": "DEBUG, INFO, WARNING or ERROR",
    "--log-format": "text or json",
}
PRODUCE: dict[str, str] = {
    "--count": "messages in the campaign, 1..10000000 (env MESSAGE_COUNT; default 1000)",
    "--campaign": "campaign name (default campaign-<UTC time>)",
    "--text": "the alert text: at most 10 GSM-7 or UCS-2 segments",
    "--recipients": "file of E.164 numbers, one a line (default: --count random numbers)",
    "--priority": "0..9, higher is sent first (default 5)",
    "--max-attempts": "attempts per message when failures are retryable (default 3)",
    "--seed": "seed of the random recipients",
}
SENDER: dict[str, str] = {
    "--mean-time": "mean simulated send time in seconds, exponential (env SENDER_MEAN_TIME)",
    "--failure-rate": "share of sends that fail, 0..1 (env SENDER_FAILURE_RATE)",
    "--window": "messages in flight at once, as an SMSC window (default 20)",
    "--batch-size": "messages claimed per transaction at most (default 50)",
    "--rate-limit": "most sends per second (default: no limit)",
    "--lease": "how long a claim is held before others may take it back (default 30s)",
    "--poll-interval": "wait between claims when the queue is empty (default 1s)",
    "--retry-base-delay": "first retry delay of a retryable failure, doubled each time (1s)",
    "--retry-max-delay": "longest retry delay (default 60s)",
    "--senders": "start this many sender processes (env SENDER_COUNT; default 1)",
    "--sender-id": "this sender's name (default host-pid)",
    "--seed": "seed of the simulated sends (sender i of a pool uses seed+i)",
    "--metrics-port": "serve /metrics here; sender i of a pool uses port+i; 0 = off (9746)",
    "--metrics-listen-address": "address the metrics port listens on (default 0.0.0.0)",
}
MONITOR: dict[str, str] = {
    "--interval": "refresh every this long (env MONITOR_INTERVAL; default 5s)",
    "--campaign": "show only this campaign",
}


def _add(parser: argparse.ArgumentParser, options: dict[str, str]) -> None:
    parser.add_argument("--config", default=None, help="YAML file of options")
    for flag, text in {**options, **COMMON}.items():
        parser.add_argument(flag, default=None, help=text)


def build_parser() -> argparse.ArgumentParser:
    """produce, sender, monitor and cancel."""
    parser = Parser(prog=PROG, description="SMS emergency-alert broadcast simulation.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    p = sub.add_parser("produce", help="create a campaign of messages")
    _add(p, PRODUCE)
    p.add_argument("--progress", action="store_true", default=None, help="always show progress")
    p.add_argument(
        "--no-progress", dest="progress", action="store_false", help="never show progress"
    )
    s = sub.add_parser("sender", help="deliver messages (simulated)")
    _add(s, SENDER)
    s.add_argument(
        "--until-empty",
        action="store_true",
        default=None,
        help="exit when no message is pending or in flight",
    )
    m = sub.add_parser("monitor", help="show progress")
    _add(m, MONITOR)
    m.add_argument("--once", action="store_true", default=None, help="print once and exit")
    m.add_argument(
        "--json", dest="json_output", action="store_true", default=None, help="JSON lines"
    )
    c = sub.add_parser("cancel", help="cancel a campaign: its pending messages are not sent")
    c.add_argument("campaign", help="campaign name")
    _add(c, {})
    return parser


MODELS: dict[str, type[Common]] = {
    "produce": ProduceSettings,
    "sender": SenderSettings,
    "monitor": MonitorSettings,
    "cancel": CancelSettings,
}


def parse(argv: list[str]) -> tuple[str, Any]:
    """The subcommand and its validated settings."""
    ns = build_parser().parse_args(argv)
    flags = {k: v for k, v in vars(ns).items() if k not in ("command", "config")}
    return ns.command, settings(MODELS[ns.command], flags, file=ns.config)
