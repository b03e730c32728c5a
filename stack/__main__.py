"""`python -m stack`: database, schema, generator, exporter, Prometheus, Alertmanager, locally."""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import signal
import sys
import tempfile
from pathlib import Path
from types import FrameType
from typing import get_args

from db.migrate import migrate
from db.roles import (
    API_LOGIN,
    BROADCAST_LOGIN,
    EXPORTER_LOGIN,
    GENERATOR_LOGIN,
    LOGINS,
    PAGER_LOGIN,
    ensure_login,
    url_for,
)
from ecm_common import cli
from ecm_common.config import load_config
from ecm_common.db import URL_ENV, redact
from ecm_common.logs import setup_logging
from stack import local_api, local_broadcast, local_pager, pgbinaries
from stack.config import StackConfig
from stack.pgcluster import LocalCluster
from stack.runner import Child, Supervisor, check_port_free, wait_http

log = logging.getLogger("stack")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line flags; unset flags stay None so lower layers show through."""
    p = cli.Parser(prog="ecm-stack", description=__doc__)
    p.add_argument("--config", help="YAML file with any of the options below")
    p.add_argument("--database-url", help=f"use this database instead of a local one ({URL_ENV})")
    p.add_argument(
        "--postgres",
        # Not argparse choices: the settings model refuses a bad value in one line.
        metavar="{" + ",".join(get_args(pgbinaries.PostgresChoice)) + "}",
        help="the local server: system binaries, embedded pgserver, or auto (default: system "
        "binaries when found, else embedded)",
    )
    p.add_argument("--rate", type=float, help="generated calls per second (default 5)")
    p.add_argument(
        "--failure-prob",
        type=float,
        help="baseline failure probability (default 0.005: below the 1%% warning)",
    )
    p.add_argument("--towers", type=int, help="number of towers (default 50)")
    p.add_argument("--scenario", help="scenario file for the generator instead of baseline traffic")
    p.add_argument("--exporter-port", type=int, help="exporter /metrics port (default 9742)")
    p.add_argument("--generator-metrics-port", type=int, help="generator self-metrics port (9743)")
    p.add_argument("--prometheus-port", type=int, help="Prometheus port (default 9090)")
    p.add_argument("--alertmanager-port", type=int, help="Alertmanager port (default 9093)")
    p.add_argument(
        "--sink-port", type=int, help="local webhook sink port when no webhook URLs are set (9099)"
    )
    p.add_argument("--pager-port", type=int, help="pager API port (default 9744)")
    p.add_argument("--api-port", type=int, help="ECM API port (default 9745)")
    p.add_argument(
        "--broadcast-port", type=int, help="SMS sender /metrics port (default 9746; 0: no sender)"
    )
    p.add_argument(
        "--broadcast-messages", type=int, help="demo SMS campaign queued at start (1000; 0: none)"
    )
    p.add_argument("--pm-period", help="PM generator granularity period (default 10s)")
    p.add_argument(
        "--without-prometheus",
        dest="with_prometheus",
        action="store_const",
        const=False,
        help="do not start Prometheus and Alertmanager even if installed",
    )
    p.add_argument("--state-dir", help="where the logs go (default: a new temp dir)")
    p.add_argument("--log-level", help="DEBUG, INFO, WARNING (default INFO)")
    p.add_argument("--log-format", choices=["text", "json"], help="log line format")
    return p.parse_args(argv)


def python_child(name: str, module: str, args: list[str], state: Path, url: str) -> Child:
    """A child running one of our packages with this interpreter."""
    return Child(
        name, [sys.executable, "-m", module, *args], state / f"{name}.log", env={URL_ENV: url}
    )


def main(argv: list[str] | None = None) -> int:
    """Run the stack until Ctrl-C or until a part dies."""
    ns = parse_args(argv)
    flags = {k: v for k, v in vars(ns).items() if k != "config"}
    cfg = load_config(StackConfig, file=ns.config, flags=flags)
    setup_logging(cfg.log_level, cfg.log_format)
    state = Path(cfg.state_dir) if cfg.state_dir else Path(tempfile.mkdtemp(prefix="ecm-stack-"))
    state.mkdir(parents=True, exist_ok=True)
    check_port_free(cfg.exporter_port, "the exporter")
    check_port_free(cfg.generator_metrics_port, "the generator's metrics")
    check_port_free(cfg.pager_port, "the pager")
    check_port_free(cfg.api_port, "the ECM API")
    if cfg.broadcast_port:
        check_port_free(cfg.broadcast_port, "the SMS broadcast sender")

    # SIGINT too: a shell that starts us in the background hands us SIGINT ignored.
    signal.signal(signal.SIGINT, _raise_interrupt)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    sup = Supervisor()
    cluster: LocalCluster | None = None
    try:
        url = cfg.database_url or os.environ.get(URL_ENV, "")
        postgres = f"the database in {url_origin(ns)}"
        if not url:
            server = pgbinaries.find(cfg.postgres)
            postgres = server.why
            log.info("PostgreSQL: %s", postgres)
            cluster = LocalCluster(Path(tempfile.mkdtemp(prefix="ecm-pg-")), bindir=server.bindir)
            cluster.start()
            url = cluster.ensure_database()
        migrate(url)
        reader_url = writer_url = pager_db_url = api_db_url = broadcast_db_url = url
        if cluster is not None:
            # Our own database: the parts get least-privilege accounts, as in docker-compose.
            reader_url = login(url, EXPORTER_LOGIN)
            writer_url = login(url, GENERATOR_LOGIN)
            pager_db_url = login(url, PAGER_LOGIN)
            api_db_url = login(url, API_LOGIN)
            broadcast_db_url = login(url, BROADCAST_LOGIN)
        log.info("database ready: %s", redact(url))

        sup.start(python_child("generator", "generator", generator_args(cfg), state, writer_url))
        exporter = sup.start(
            python_child(
                "exporter", "exporter", ["--port", str(cfg.exporter_port)], state, reader_url
            )
        )
        wait_http(f"http://127.0.0.1:{cfg.exporter_port}/metrics", exporter)
        pager_child, pager = local_pager.child(cfg, state, pager_db_url, sys.executable)
        sup.start(pager_child).wait_ready()
        api_child, pm_child, api = local_api.children(cfg, state, api_db_url, sys.executable)
        sup.start(api_child).wait_ready()
        sup.start(pm_child)
        if cfg.broadcast_port:
            local_broadcast.produce_demo(cfg, state, broadcast_db_url, sys.executable)
            sup.start(
                local_broadcast.child(cfg, state, broadcast_db_url, sys.executable)
            ).wait_ready()

        urls = {
            "exporter metrics": f"http://127.0.0.1:{cfg.exporter_port}/metrics",
            "generator metrics": f"http://127.0.0.1:{cfg.generator_metrics_port}/metrics",
            "pager API": f"{pager.url}/docs (write token: {pager.write_token_file})",
            "ECM API": f"{api.url}/docs (token: {api.token_file})",
            "API metrics": f"{api.url}/metrics",
        }
        if cfg.broadcast_port:
            urls["SMS sender metrics"] = f"http://127.0.0.1:{cfg.broadcast_port}/metrics"
        urls.update(start_prometheus_stack(cfg, sup, state, pager))
        print_banner(urls, state, url, postgres)
        dead = sup.watch()
        if dead is not None:
            log.error(
                "%s exited with status %s; stopping the stack. Its log:\n%s",
                dead.name,
                dead.exited(),
                dead.tail(),
            )
            return 1
        return 0
    except KeyboardInterrupt:
        log.info("stopping")
        return 0
    finally:
        sup.stop_all()
        if cluster is not None:
            cluster.destroy()


def generator_args(cfg: StackConfig) -> list[str]:
    """The generator's flags; with a scenario, only what the user set, so its baseline holds."""
    args = ["--metrics-port", str(cfg.generator_metrics_port)]
    for name in ("rate", "failure_prob", "towers"):
        if not cfg.scenario or name in cfg.model_fields_set:
            args += ["--" + name.replace("_", "-"), str(getattr(cfg, name))]
    if cfg.scenario:
        args += ["--scenario", cfg.scenario]
    return args


def login(url: str, user: str) -> str:
    """Create a login role for one part on our own cluster; returns its URL."""
    password = secrets.token_urlsafe(18)
    ensure_login(url, user, password, LOGINS[user])
    return url_for(url, user, password)


def start_prometheus_stack(
    cfg: StackConfig, sup: Supervisor, state: Path, pager: local_pager.LocalPager | None = None
) -> dict[str, str]:
    """Prometheus and Alertmanager with the committed configs, when installed."""
    if not cfg.with_prometheus:
        return {}
    from stack import local_tools

    return local_tools.start(cfg, sup, state, pager)


def url_origin(ns: argparse.Namespace) -> str:
    """Where the database URL came from, for the banner."""
    if ns.database_url:
        return "--database-url"
    if os.environ.get(URL_ENV):
        return URL_ENV
    return f"database_url in {ns.config}"


def print_banner(urls: dict[str, str], state: Path, db_url: str, postgres: str) -> None:
    """Tell the user where to look."""
    width = max(len(k) for k in urls)
    lines = ["", "ECM is running. Press Ctrl-C to stop everything.", ""]
    lines += [f"  {k.ljust(width)}  {v}" for k, v in urls.items()]
    lines += [
        f"  {'database'.ljust(width)}  {redact(db_url)}",
        f"  {'postgres'.ljust(width)}  {postgres}",
        f"  {'logs'.ljust(width)}  {state}",
        "",
        f"  one-shot report: ECM_DATABASE_URL='{redact(db_url)}' \\\n"
        "      python -m exporter --once --window 10",
        "",
    ]
    print("\n".join(lines), flush=True)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def entry() -> int:
    """Console-script entry point."""
    return cli.run(main, "ecm-stack")


if __name__ == "__main__":
    sys.exit(entry())
