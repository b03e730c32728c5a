"""ecm-generator: synthetic emergency calls into PostgreSQL (run, backfill, init-db)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any

from db.migrate import migrate
from db.roles import (
    API_LOGIN,
    BROADCAST_LOGIN,
    EXPORTER_LOGIN,
    GENERATOR_LOGIN,
    GRAFANA_LOGIN,
    LOGINS,
    PAGER_LOGIN,
    ensure_login,
)
from ecm_common.cli import Parser, run
from ecm_common.config import check_listen, load_config, read_text
from ecm_common.db import database_url, redact
from ecm_common.errors import ConfigError
from ecm_common.logs import setup_logging
from generator.config import GeneratorSettings, backfill_times, check_paths, paths
from generator.pm_cli import add_pm_parser, pm_main

log = logging.getLogger(__name__)

PROG = "ecm-generator"
COMMANDS = ("run", "backfill", "init-db", "pm")
MAX_PASSWORD_FILE = 4096

# flag -> help; the settings field is the flag name with dashes turned into underscores.
OPTIONS: dict[str, str] = {
    "--database-url": "libpq URL of the database (env ECM_DATABASE_URL)",
    "--rate": "mean calls per second, Poisson arrivals (default 5, at most 100000)",
    "--failure-prob": "share of calls that fail, 0..1 (default 0.005)",
    "--count": "stop after this many calls",
    "--duration": "stop after this long (90, 30s, 10m, 1h30m)",
    "--towers": "number of towers TOWER_1..N (default 50)",
    "--tower-skew": "Zipf exponent of tower traffic weights, 0 = equal (default 0.8)",
    "--tower-weights": "explicit weights, e.g. TOWER_1=5,TOWER_2=3",
    "--regions": "split the towers into R regions REGION_1..R, contiguous blocks (default 1)",
    "--reason-weights": "failure reason weights, e.g. IMS_UNREACHABLE=2,CORE_TIMEOUT=3",
    "--latency-median-ms": "median setup latency of connected phones (default 1800)",
    "--latency-sigma": "log-normal sigma of setup latency (default 0.35)",
    "--idle-share": "share of calls from idle phones, 0..1 (default 0.25)",
    "--idle-median-ms": "median setup latency of idle phones (default 2800)",
    "--idle-sigma": "log-normal sigma of idle phones' setup latency (default 0.25)",
    "--failed-latency-ms": "median time to fail per reason, e.g. PSAP_BUSY=2500",
    "--core-timeout-ms": "timer at which CORE_TIMEOUT calls end (default 10000)",
    "--seed": "seed of the random stream: same seed (and --start), same rows",
    "--start": "timestamp of the stream's origin (ISO 8601; default now)",
    "--scenario": "scenario YAML file (see docs/scenarios.md)",
    "--speed": "time compression: K model seconds per wall second (default 1, max 10000)",
    "--batch-size": "rows per COPY (default 5000)",
    "--flush-interval": "longest wait before a partial batch is written (default 1s, max 60s)",
    "--queue-size": "calls held in memory before the producer blocks (default 100000)",
    "--spool-dir": "where batches wait while the database is down",
    "--dead-letter-file": "JSON lines file for invalid calls",
    "--max-retries": "retries of a failed batch before it is spooled (default 5)",
    "--retry-base-delay": "first retry delay, doubled each retry (default 0.2s, max 10m)",
    "--retry-max-delay": "longest retry or probe delay (default 5s, max 10m)",
    "--write-timeout": "longest a batch write or lock wait may take (default 30s, max 1h)",
    "--metrics-port": "serve the generator's own metrics on this port (e.g. 9743)",
    "--metrics-listen-address": "address the metrics port listens on (default 0.0.0.0)",
    "--log-level": "DEBUG, INFO, WARNING or ERROR",
    "--log-format": "text or json",
}


# The logins init-db creates when given a password (--<role>-password-file, ECM_<ROLE>_PASSWORD).
INIT_DB_LOGINS = (
    ("exporter", EXPORTER_LOGIN),
    ("generator", GENERATOR_LOGIN),
    ("pager", PAGER_LOGIN),
    ("api", API_LOGIN),
    ("grafana", GRAFANA_LOGIN),
    ("broadcast", BROADCAST_LOGIN),
)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=argparse.SUPPRESS, help="YAML file of options")
    parser.add_argument(
        "--check-only",
        action="store_true",
        default=argparse.SUPPRESS,
        help="validate the configuration (and scenario) and exit",
    )
    for flag, text in OPTIONS.items():
        parser.add_argument(flag, default=argparse.SUPPRESS, help=text)


def build_parser() -> argparse.ArgumentParser:
    """The command line: subcommands run (default), backfill and init-db."""
    parser = Parser(
        prog=PROG,
        description=__doc__,
        epilog="Without a subcommand, run is assumed. Options: ecm-generator run --help.",
    )
    sub = parser.add_subparsers(dest="command", parser_class=Parser)
    _common(sub.add_parser("run", help="generate live traffic (the default)"))
    bf = sub.add_parser("backfill", help="write history as fast as the database takes it")
    _common(bf)
    bf.add_argument(
        "--from", dest="from_", required=True, help="start: a duration ago (7d) or an ISO timestamp"
    )
    bf.add_argument("--to", default="now", help="end: 'now', a duration ago or a timestamp")
    add_pm_parser(sub)
    init = sub.add_parser("init-db", help="apply the schema migrations (idempotent)")
    _common(init)
    # Passwords never come as flags (they would show in `ps`): a file, or the environment.
    for role, login in INIT_DB_LOGINS:
        init.add_argument(
            f"--{role}-password-file",
            default=argparse.SUPPRESS,
            help=f"also create/update login {login} with the password on this file's first "
            f"line (or set ECM_{role.upper()}_PASSWORD)",
        )
    return parser


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse argv; no subcommand means run (the seed's command line)."""
    if not any(a in COMMANDS for a in argv if not a.startswith("-")) and not (
        argv and argv[0] in ("-h", "--help")
    ):
        argv = ["run", *argv]
    return build_parser().parse_args(argv)


def settings_from(ns: argparse.Namespace) -> GeneratorSettings:
    """Merge defaults, the YAML file, ECM_* variables and flags into validated settings."""
    skip = {
        "command",
        "config",
        "check_only",
        "from_",
        "to",
        "exporter_password_file",
        "generator_password_file",
        *(f"{role}_password_file" for role, _ in INIT_DB_LOGINS),
    }
    flags: dict[str, Any] = {k: v for k, v in vars(ns).items() if k not in skip}
    return load_config(GeneratorSettings, file=getattr(ns, "config", None), flags=flags)


def read_password(path: str, option: str) -> str:
    """The first line of a password file; ConfigError naming the option, never the content."""
    lines = read_text(path, f"{option} file", limit=MAX_PASSWORD_FILE).splitlines()
    password = lines[0].strip() if lines else ""
    if not password:
        raise ConfigError(f"{path}: {option} file holds no password on its first line")
    return password


def login_passwords(ns: argparse.Namespace) -> dict[str, str]:
    """Login role -> password, from --<role>-password-file or ECM_<ROLE>_PASSWORD."""
    out: dict[str, str] = {}
    for role, login in INIT_DB_LOGINS:
        path = getattr(ns, f"{role}_password_file", None)
        if path is not None:
            out[login] = read_password(path, f"--{role}-password-file")
        elif os.environ.get(f"ECM_{role.upper()}_PASSWORD"):
            out[login] = os.environ[f"ECM_{role.upper()}_PASSWORD"]
    return out


def _init_db(s: GeneratorSettings, passwords: dict[str, str]) -> int:
    url = database_url(s.database_url)
    applied = migrate(url)
    print(f"schema up to date on {redact(url)} ({len(applied)} migration(s) applied)")
    for user, password in passwords.items():
        ensure_login(url, user, password, LOGINS[user])
        print(f"login role {user} ready (member of {LOGINS[user]})")
    return 0


def _check(s: GeneratorSettings) -> int:
    from generator.app import effective_settings, load_model_inputs

    check_paths(paths(s))
    s = effective_settings(s)
    params, scenario = load_model_inputs(s)
    if scenario is not None:
        scenario.timeline(params)
        for i, ph in enumerate(scenario.phases):
            towers = scenario.target_names(i)
            shown = ", ".join(towers[:10]) + (" ..." if len(towers) > 10 else "")
            print(
                f"phase {ph.name}: {ph.start:g}s +{ph.duration:g}s on {len(towers)} tower(s): "
                f"{shown}"
            )
    print("configuration OK")
    return 0


def _main(argv: list[str]) -> int:
    ns = parse_args(argv)
    if ns.command == "pm":
        return pm_main(ns)
    s = settings_from(ns)
    check_only = getattr(ns, "check_only", False)
    if ns.command == "init-db":
        passwords = login_passwords(ns)
        if check_only:
            print("configuration OK")
            return 0
        setup_logging(s.log_level, s.log_format)
        return _init_db(s, passwords)
    backfill_range = None
    if ns.command == "backfill":
        from generator.backfill import check_range

        now = datetime.now(UTC)
        backfill_range = backfill_times(ns.from_, ns.to, now)
        check_range(*backfill_range, now)
    if check_only:
        return _check(s)
    setup_logging(s.log_level, s.log_format)
    check_paths(paths(s))
    if s.metrics_port is not None:
        check_listen(s.metrics_listen_address, s.metrics_port, "metrics_port")
    if backfill_range is not None:
        from generator.backfill import backfill_command

        counts = backfill_command(s, *backfill_range)
        print(f"{PROG}: backfilled {counts.written} calls ({counts.summary()})")
        return 0
    from generator.app import run_live

    counts = run_live(s)
    print(f"{PROG}: wrote {counts.written} calls ({counts.summary()})", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point."""
    args = sys.argv[1:] if argv is None else argv
    return run(lambda: _main(args), PROG)


if __name__ == "__main__":
    sys.exit(main())
