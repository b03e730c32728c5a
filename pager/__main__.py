"""ecm-pager: serve the pager (default), check the configuration, list, acknowledge or resolve
incidents from the command line.

Exit statuses: 0 done; 1 unexpected failure; 2 bad configuration or flag; 3 database
unavailable; 4 no such incident; 5 the incident's state does not allow it (e.g. resolved).
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import secrets
import sys
from collections.abc import Sequence
from typing import Any

from psycopg_pool import ConnectionPool, PoolTimeout

from db.migrate import pending
from ecm_common.cli import Parser, run
from ecm_common.clock import SystemClock
from ecm_common.config import check_listen, option_names
from ecm_common.db import CONNECT_TIMEOUT_S, database_url, redact
from ecm_common.errors import ConfigError, DatabaseUnavailable, EcmError
from ecm_common.logs import setup_logging
from ecm_common.service import serve
from pager.acklink import AckSigner
from pager.app import build
from pager.config import DEFAULT_PORT, PagerSettings, Secrets, load_settings
from pager.engine import Conflict, Engine, NotFound
from pager.views import MAX_PAGE, list_incidents

log = logging.getLogger(__name__)

PROG = "ecm-pager"
CONFIG_ENV = "ECM_CONFIG"
COMMANDS = ("serve", "check-only", "incidents", "ack", "resolve")
# Scalar options that are also flags (policies and services live in the YAML file).
FLAGS = {
    "database_url": "libpq URL (default: ECM_DATABASE_URL)",
    "port": f"HTTP port (default {DEFAULT_PORT})",
    "listen_address": "address to bind (default 127.0.0.1)",
    "public_url": "base URL of this pager in acknowledge links",
    "service_label": "alert label that names the service (default service)",
    "default_service": "service of alerts without a known service label (default ecm)",
    "watchdog_silence": "open the 'pipeline silent' incident after this long (default 5m)",
    "ack_timeout": "an acknowledged incident re-triggers after this long (default 30m)",
    "smtp_host": "SMTP server for email targets",
    "smtp_port": "SMTP port (default 25)",
    "sms_gateway_url": "HTTP gateway for sms targets",
    "log_level": "DEBUG, INFO, WARNING or ERROR",
    "log_format": "text or json",
}


class NoSuchIncident(EcmError):
    """The incident id is unknown."""

    exit_code = 4


class NotAllowed(EcmError):
    """The incident's state does not allow the action."""

    exit_code = 5


def build_parser() -> argparse.ArgumentParser:
    """The command line; options default to None so YAML and ECM_* show through."""
    p = Parser(prog=PROG, description=__doc__)
    p.add_argument("--config", help=f"YAML file: options, policies, services (${CONFIG_ENV})")
    p.add_argument("--check-only", action="store_true", help="validate the configuration, exit")
    for name, text in FLAGS.items():
        p.add_argument("--" + name.replace("_", "-"), dest=name, help=text)
    sub = p.add_subparsers(dest="command", parser_class=Parser)
    sub.add_parser("serve", help="run the HTTP API and the escalation worker (the default)")
    sub.add_parser("check-only", help="validate the configuration and exit")
    ls = sub.add_parser("incidents", help="list incidents, newest first")
    ls.add_argument("--state", choices=["triggered", "acknowledged", "resolved"])
    ls.add_argument("--service")
    ls.add_argument("--limit", type=int, default=50, help=f"at most {MAX_PAGE}")
    ls.add_argument("--json", action="store_true", help="print JSON")
    for name, text in (("ack", "acknowledge an incident"), ("resolve", "resolve an incident")):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("incident_id", type=int, metavar="ID")
        cmd.add_argument("--by", help="who (default: your user name)")
    return p


def settings_from(args: argparse.Namespace) -> PagerSettings:
    """Defaults < YAML < ECM_* < flags."""
    flags = {name: getattr(args, name, None) for name in option_names(PagerSettings)}
    config = args.config or os.environ.get(CONFIG_ENV) or None
    return load_settings(file=config, flags=flags)


def summary(s: PagerSettings) -> str:
    """The check-only line."""
    db = redact(s.database_url) if s.database_url else "from ECM_DATABASE_URL"
    levels = sum(len(p.levels) for p in s.policies.values())
    return (
        f"configuration OK: listen {s.http.listen_address}:{s.http.port}, "
        f"{len(s.services)} services, {len(s.policies)} policies ({levels} levels), "
        f"service label {s.service_label!r}, default service {s.default_service}, "
        f"watchdog {s.watchdog_alertname} silent after {s.watchdog_silence:g}s, "
        f"database {db}"
    )


def _serve(s: PagerSettings, keys: Secrets) -> int:
    url = database_url(s.database_url)
    check_listen(s.http.listen_address, s.http.port, "port")
    if pending(url):
        raise ConfigError("the database schema is not up to date: run 'ecm-generator init-db'")
    for name, token in (
        ("ECM_PAGER_TOKEN", keys.write_token),
        ("ECM_PAGER_ALERTMANAGER_TOKEN", keys.alertmanager_token),
    ):
        if token is None:
            log.warning("%s is not set: its endpoints accept requests without a token", name)
    pager = build(s, keys, url)
    log.info("pager starting: database %s, %d services", redact(url), len(s.services))
    serve(pager.app, s.http)
    return 0


def _engine(s: PagerSettings) -> tuple[Engine, ConnectionPool]:
    url = database_url(s.database_url)
    pool = ConnectionPool(
        url,
        min_size=1,
        max_size=1,
        kwargs={"autocommit": True, "application_name": "ecm-pager-cli"},
        timeout=CONNECT_TIMEOUT_S,
        open=False,
    )
    try:
        pool.open(wait=True, timeout=CONNECT_TIMEOUT_S)
    except PoolTimeout:
        pool.close()
        raise DatabaseUnavailable("database unavailable: no connection within 5 s") from None
    # The CLI sends no notification and signs no link: a throwaway signer is enough.
    return Engine(pool, s, AckSigner(secrets.token_bytes(32)), SystemClock()), pool


def _act(s: PagerSettings, args: argparse.Namespace) -> int:
    engine, pool = _engine(s)
    try:
        if args.command == "incidents":
            limit = max(1, min(args.limit, MAX_PAGE))
            page = list_incidents(pool, state=args.state, service=args.service, limit=limit)
            _print_incidents(page, args.json)
            return 0
        by = args.by or f"cli:{getpass.getuser()}"
        try:
            act = engine.acknowledge if args.command == "ack" else engine.resolve
            incident = act(args.incident_id, by[:100])
        except NotFound as exc:
            raise NoSuchIncident(str(exc)) from None
        except Conflict as exc:
            raise NotAllowed(str(exc)) from None
        print(f"incident {incident.incident_id} {incident.state} by {by}")
        return 0
    finally:
        pool.close()


def _print_incidents(page: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(page, indent=2))
        return
    for i in page["incidents"]:
        print(f"{i['id']:>8}  {i['state']:<12}  {i['service']:<20}  {i['opened_at']}  {i['title']}")
    if not page["incidents"]:
        print("no incidents")


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    s = settings_from(args)
    keys = Secrets.from_env()
    if args.check_only or args.command == "check-only":
        print(summary(s))
        return 0
    setup_logging(s.log_level, s.log_format)
    if args.command in (None, "serve"):
        return _serve(s, keys)
    return _act(s, args)


def main(argv: Sequence[str] | None = None) -> int:
    """python -m pager."""
    return run(lambda: _main(argv), PROG)


def entry() -> int:
    """Console script ecm-pager."""
    return main()


if __name__ == "__main__":
    sys.exit(main())
