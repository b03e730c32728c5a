"""ecm-api: the ECM HTTP API (PM ingest, calls, analytics, alert rules; /metrics, /docs)."""

from __future__ import annotations

import argparse
import logging
import sys

from prometheus_client import CollectorRegistry

from api import cli_rules
from api.config import DEFAULT_PORT, READ_TOKEN_ENV, TOKEN_ENV, ApiSettings
from ecm_common.cli import Parser, run
from ecm_common.config import check_listen, load_config, option_names
from ecm_common.db import database_url
from ecm_common.logs import setup_logging
from ecm_common.service import listen_socket, load_token, serve

log = logging.getLogger(__name__)

PROG = "ecm-api"

# flag -> help; the settings field is the flag name with dashes turned into underscores.
OPTIONS: dict[str, str] = {
    "--database-url": "libpq URL of the database (env ECM_DATABASE_URL)",
    "--listen-address": "address to bind (default 0.0.0.0)",
    "--port": f"HTTP port (default {DEFAULT_PORT})",
    "--max-body-bytes": "largest request body; 413 above (default 4194304)",
    "--max-concurrent-requests": "requests handled at once; 503 above (default 64)",
    "--max-batch-events": "events per request; 413 above (default 5000)",
    "--max-event-age": "oldest event_time accepted, e.g. 7d (default 7d)",
    "--max-future-skew": "newest event_time accepted ahead of now (default 5m)",
    "--db-timeout": "wait for a connection and per statement, then 503 (default 5s)",
    "--pool-size": "database connections for requests (default 4)",
    "--rollup-interval": "how often new events are folded into the KPI rollups (default 10s)",
    "--max-fold-rows": "raw events one fold transaction takes at most (default 200000)",
    "--pm-period": "the senders' granularity period: silence is two of them (default 15m)",
    "--kpi-window": "trailing window of the KPI gauges (default 15m, at least 5m)",
    "--top-n": "busiest and worst-drop cells published (default 10)",
    "--raw-retention": "raw events older than this are deleted (default 14d)",
    "--rollup-retention": "5-minute rollups older than this are deleted (default 400d)",
    "--retention-interval": "how often retention runs (default 5m)",
    "--retention-batch-rows": "rows per retention DELETE (default 10000)",
    "--rules-dir": "directory of the user rules file ecm_user_rules.yml (none: rules read-only)",
    "--prometheus-url": "Prometheus to reload after a rule change (POST /-/reload)",
    "--promtool": "promtool that checks rules before they are installed (default: on PATH)",
    "--runbook-base-url": "where docs/runbooks/ is served, for the rules' runbook links",
    "--log-level": "DEBUG, INFO, WARNING or ERROR",
    "--log-format": "text or json",
}


def build_parser() -> argparse.ArgumentParser:
    """Flags; unset flags stay None so lower layers (YAML, ECM_*) show through."""
    p = Parser(
        prog=PROG,
        description=__doc__,
        allow_abbrev=False,
        epilog=f"Bearer tokens: writes ${TOKEN_ENV}[_FILE]; reads ${READ_TOKEN_ENV}[_FILE] or the"
        " write token (unset: open).",
    )
    o = p.add_argument_group("options (also YAML keys and ECM_<NAME> variables)")
    for flag, text in OPTIONS.items():
        o.add_argument(flag, help=text)
    m = p.add_argument_group("modes")
    m.add_argument("--config", help="YAML configuration file")
    m.add_argument("--check-only", action="store_true", help="validate the configuration and exit")
    return p


def _main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    flags = {name: getattr(args, name, None) for name in option_names(ApiSettings)}
    settings = load_config(ApiSettings, file=args.config, flags=flags)
    token = load_token(TOKEN_ENV)
    read_token = load_token(READ_TOKEN_ENV)
    url = database_url(settings.database_url)
    if args.check_only:
        print("configuration OK")
        return 0
    setup_logging(settings.log_level, settings.log_format)
    check_listen(settings.http.listen_address, settings.http.port, "port")
    from api.app import build

    sock = listen_socket(settings.http.listen_address, settings.http.port)
    api = build(settings, url, CollectorRegistry(), token=token, read_token=read_token)
    if token is None:
        log.warning("no %s set: POST /v1/events/pm is open to anyone who can reach it", TOKEN_ENV)
    serve(api.app, settings.http, sock=sock)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point; `rules` and `rebuild-rollups` are api/cli_rules.py."""
    args = sys.argv[1:] if argv is None else argv
    if cli_rules.is_command(args):
        return run(lambda: cli_rules.main(args, PROG), PROG)
    return run(lambda: _main(args), PROG)


if __name__ == "__main__":
    sys.exit(main())
