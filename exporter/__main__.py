"""Command line: serve /metrics (default), --once report, --check-only."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from types import FrameType

from ecm_common.cli import Parser, run
from ecm_common.config import check_listen, option_names
from ecm_common.db import database_url, redact
from ecm_common.errors import ConfigError
from ecm_common.logs import setup_logging
from exporter.assess import Thresholds
from exporter.budget import FORMULA, Budget
from exporter.config import (
    DEFAULT_PORT,
    DEFAULT_WINDOWS,
    MAX_WINDOW_MINUTES,
    ExporterSettings,
    Window,
    load_settings,
    parse_window,
)
from exporter.refresh import RefreshJob, compute_once
from exporter.report import as_json, exit_status, text
from exporter.scheduler import start_scheduler, stop_scheduler
from exporter.server import MetricsServer, make_app

log = logging.getLogger(__name__)

PROG = "ecm-exporter"
CONFIG_ENV = "ECM_CONFIG"


def _once_window(text: str) -> int:
    """Minutes for --once: a whole number (the seed's form) or a duration like 1h."""
    try:
        minutes = int(text) if text.strip().isdigit() else parse_window(text).minutes
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not 0 < minutes <= MAX_WINDOW_MINUTES:
        raise argparse.ArgumentTypeError(
            f"expected 1 to {MAX_WINDOW_MINUTES} minutes, got {text[:20]!r}"
        )
    return minutes


def build_parser() -> argparse.ArgumentParser:
    """Flags; option flags default to None so lower layers (YAML, ECM_*) show through."""
    p = Parser(
        prog=PROG,
        description="Export emergency-call metrics from PostgreSQL to Prometheus.",
        allow_abbrev=False,  # --window and --windows must never be confused
    )
    o = p.add_argument_group("options (also YAML keys and ECM_<NAME> variables)")
    o.add_argument("--database-url", help="libpq URL (default: ECM_DATABASE_URL)")
    o.add_argument("--port", help=f"port for /metrics (default {DEFAULT_PORT})")
    o.add_argument("--listen-address", help="address to bind (default 0.0.0.0)")
    o.add_argument("--interval", help="time between refreshes, e.g. 15s (default 15, max 1h)")
    o.add_argument(
        "--windows",
        help=f"trailing windows in whole minutes, e.g. 5m,10m,1h30m "
        f"(default {','.join(DEFAULT_WINDOWS)}, at most 7d each)",
    )
    th = Thresholds()
    o.add_argument("--top-n", help=f"worst towers published per window (default {th.top_n})")
    o.add_argument(
        "--min-calls", help=f"calls a window needs to be classified (default {th.min_calls})"
    )
    o.add_argument(
        "--min-tower-calls",
        help=f"calls a tower needs to rank as worst (default {th.min_tower_calls})",
    )
    o.add_argument(
        "--warn-tower-failure-ratio",
        help=f"failure ratio above which a tower with min_tower_calls calls is failing and "
        f"always published (default {th.warn_tower_failure_ratio:g})",
    )
    b = Budget()
    o.add_argument(
        "--tower-detail-max",
        help=f"per-tower counters and gauges for every tower while there are at most this many "
        f"(default {b.tower_detail_max})",
    )
    o.add_argument(
        "--detail-towers", help="comma-separated towers that always get per-tower series"
    )
    o.add_argument(
        "--failing-towers-max",
        help=f"failing towers published per window, worst first (default {b.failing_towers_max})",
    )
    o.add_argument(
        "--warn-failure-ratio",
        help=f"failure ratio for WARN, 0..1 (default {th.warn_failure_ratio:g})",
    )
    o.add_argument(
        "--alert-failure-ratio",
        help=f"failure ratio for ALERT, above WARN's (default {th.alert_failure_ratio:g})",
    )
    o.add_argument(
        "--warn-p95-seconds", help=f"p95 latency for WARN (default {th.warn_p95_seconds:g})"
    )
    o.add_argument(
        "--alert-p95-seconds",
        help=f"p95 latency for ALERT, above WARN's (default {th.alert_p95_seconds:g})",
    )
    o.add_argument("--log-level", help="DEBUG, INFO, WARNING or ERROR (default INFO)")
    o.add_argument("--log-format", help="text or json (default text)")
    m = p.add_argument_group("modes")
    m.add_argument("--config", help=f"YAML configuration file (default: ${CONFIG_ENV})")
    m.add_argument("--check-only", action="store_true", help="validate the configuration and exit")
    m.add_argument("--once", action="store_true", help="print one report and exit (0/10/20)")
    m.add_argument(
        "--window", type=_once_window, default=10, help="minutes (or 1h...), for --once (10)"
    )
    m.add_argument("--json", action="store_true", help="with --once: print JSON")
    return p


def _settings(args: argparse.Namespace) -> ExporterSettings:
    flags = {name: getattr(args, name, None) for name in option_names(ExporterSettings)}
    config = args.config or os.environ.get(CONFIG_ENV) or None
    return load_settings(file=config, flags=flags)


def _summary(s: ExporterSettings) -> str:
    db = redact(s.database_url) if s.database_url else "not set (need ECM_DATABASE_URL)"
    th = s.thresholds
    return (
        f"configuration OK: listen {s.listen_address}:{s.port}, interval {s.interval:g}s, "
        f"windows {','.join(s.windows)}, thresholds failure {th.warn_failure_ratio:g}/"
        f"{th.alert_failure_ratio:g}, p95 {th.warn_p95_seconds:g}s/{th.alert_p95_seconds:g}s, "
        f"min_calls {th.min_calls}, top_n {th.top_n} (min_tower_calls {th.min_tower_calls}), "
        f"tower_detail_max {s.budget.tower_detail_max}, detail_towers "
        f"{len(s.budget.detail_towers)}, failing_towers_max {s.budget.failing_towers_max}, "
        f"database {db}"
    )


def _once(s: ExporterSettings, args: argparse.Namespace) -> int:
    th = s.thresholds
    v = compute_once(database_url(s.database_url), Window(f"{args.window}m", args.window), th)
    out = as_json(v, args.window, th) if args.json else text(v, args.window, th)
    sys.stdout.write(out)
    return exit_status(v)


def _serve(s: ExporterSettings) -> int:
    url = database_url(s.database_url)
    check_listen(s.listen_address, s.port, "port")
    log.info(
        "exporter starting: database %s, windows %s, refresh every %g s",
        redact(url), ",".join(s.windows), s.interval,
    )  # fmt: skip
    log.info(
        "series budget: %s (T towers, D with detail, G regions, R reasons, W windows, N top_n, "
        "F failing_towers_max); the first refresh logs its value",
        FORMULA,
    )
    job = RefreshJob(url, s.window_specs, s.thresholds, s.interval, budget=s.budget)

    def status() -> str:
        last = job.last_success
        when = datetime.fromtimestamp(last, UTC).isoformat(timespec="seconds") if last else "never"
        return f"database {'up' if job.database_up else 'down'}, last successful refresh {when}"

    try:
        server = MetricsServer(
            make_app(job.exposition, status, job.exposition_gzip), s.listen_address, s.port
        )
    except OSError as exc:
        raise ConfigError(
            f"port: cannot listen on {s.listen_address}:{s.port}: {exc.strerror or exc}"
        ) from None
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("received %s, shutting down", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server.start()
    sched = start_scheduler(job.refresh, s.interval)
    try:
        stop.wait()
    finally:
        stop_scheduler(sched)
        server.stop()
        job.close()
    log.info("stopped")
    return 0


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    if args.json and not args.once:
        raise ConfigError("--json only applies to --once")
    s = _settings(args)
    if args.check_only:
        print(_summary(s))
        return 0
    setup_logging(s.log_level, s.log_format)
    if args.once:
        return _once(s, args)
    return _serve(s)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ecm-exporter and python -m exporter."""
    return run(lambda: _main(argv), PROG)


if __name__ == "__main__":
    sys.exit(main())
