"""The whole stack for the end-to-end tests: PostgreSQL, traffic, the real exporter, Prometheus,
Alertmanager and a webhook sink, with the committed configs rendered for short intervals."""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import requests

from ecm_common.slo import SLO, BurnRateWindow
from stack import promconfig, rules
from stack.pgcluster import free_port
from stack.rules import RuleParams
from stack.runner import Child, Supervisor
from stack.sink import WebhookSink
from tests.fixtures.postgres import TEMPLATE, PgServer
from tests.stack.services import get_json, poll, start_service

log = logging.getLogger(__name__)

TOWERS = ("TOWER_1", "TOWER_2", "TOWER_3", "TOWER_4")
TICK_S = 0.25
LATENCIES_MS = (800, 1000, 1200, 1500)

# The production rules with windows of seconds: same expressions, other parameters.
E2E_RULES = replace(
    RuleParams(),
    detect_windows=("10s", "20s"),
    confirm_window="10s",
    usual_rate_window="1m",
    slo=replace(
        SLO,
        min_calls=5,
        min_tower_calls=5,
        page_min_calls=5,
        ticket_min_calls=5,
        tower_page_min_calls=5,
        tower_ticket_min_calls=5,
        latency_page_min_calls=5,
        latency_ticket_min_calls=5,
        burn_min_calls=5,
        burn_ticket_min_calls=5,
        burn_page=(BurnRateWindow("1m", "10s", 14.4),),
        burn_ticket=(BurnRateWindow("5m", "30s", 3.0),),
    ),
    page_for="2s",
    ticket_for="2s",
    silence_for="5s",
    # Longer than exporter_down_for plus the trip to Alertmanager, as in production.
    keep_firing_for="20s",
    exporter_down_for="2s",
    # Prometheus applies discovered targets after about 5 s: absent that long is normal.
    exporter_absent_for="30s",
    stale_after_seconds=10,
    stale_for="2s",
    database_down_for="2s",
    pipeline_keep_firing_for="30s",
    watchdog_for="1s",
)
AM_TIMERS = {"group_wait": "1s", "group_interval": "2s", "repeat_interval": "10m"}


class Traffic:
    """A thread writing one call per tower every tick; towers in `failing` fail every call."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.failing: set[str] = set()
        self.written = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="traffic", daemon=True)
        self.error: BaseException | None = None

    def start(self) -> None:
        """Start writing."""
        self._thread.start()

    def stop(self) -> None:
        """Stop writing and wait for the thread."""
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        try:
            with psycopg.connect(self.url, autocommit=True) as conn:
                i = 0
                while not self._stop.wait(TICK_S):
                    rows = []
                    now = datetime.now(UTC)
                    for tower in TOWERS:
                        failed = tower in self.failing
                        rows.append(
                            (
                                uuid.uuid4(),
                                now,
                                f"+1555{i:07d}",
                                tower,
                                LATENCIES_MS[i % len(LATENCIES_MS)],
                                "FAILED" if failed else "SUCCESS",
                                "RADIO_LINK_FAILURE" if failed else None,
                            )
                        )
                        i += 1
                    with conn.cursor() as cur:
                        cur.executemany(
                            'INSERT INTO emergency_calls (call_uuid, "timestamp", caller_id,'
                            " tower_id, latency_ms, status, failure_reason)"
                            " VALUES (%s, %s, %s, %s, %s, %s, %s)",
                            rows,
                        )
                    self.written += len(rows)
        except BaseException as exc:  # reported by the tests through .error
            self.error = exc


class LiveStack:
    """Handles on every running part, and the queries the tests ask."""

    def __init__(self, workdir: Path, db_url: str, reader_url: str) -> None:
        self.workdir = workdir
        self.db_url = db_url
        self.reader_url = reader_url
        self.sink = WebhookSink()
        self.traffic = Traffic(db_url)
        self.sup = Supervisor()
        self.exporter: Child | None = None
        self.prometheus: Child | None = None
        self.alertmanager: Child | None = None
        self.pager: Child | None = None
        self.exporter_port = free_port()
        self.alertmanager_port = free_port()

    # --- lifecycle -------------------------------------------------------------------------

    def start(self, prometheus: str, alertmanager: str) -> None:
        """Start everything in dependency order; each start waits for readiness."""
        self.sink.start()
        self.traffic.start()
        self.start_exporter()
        self.start_pager()
        urls = {
            "ECM_PAGER_WEBHOOK_URL": self.sink.url("pager"),
            "ECM_TICKETS_WEBHOOK_URL": self.sink.url("tickets"),
            "ECM_HEARTBEAT_WEBHOOK_URL": self.sink.url("heartbeat"),
        }
        am_cfg = promconfig.render_alertmanager_config(self.workdir / "am", urls, timers=AM_TIMERS)
        am_address = f"127.0.0.1:{self.alertmanager_port}"
        self.alertmanager = start_service(
            self.sup,
            "alertmanager",
            lambda port: promconfig.alertmanager_command(
                am_cfg, self.workdir / "am-data", f"127.0.0.1:{port}", binary=alertmanager
            ),
            self.workdir,
            "/-/ready",
            port=self.alertmanager_port,
        )
        rule_files = rules.write(E2E_RULES, self.workdir / "rules")
        assert self.pager is not None
        pager_address = self.pager.url.removeprefix("http://")

        def prom_argv(port: int) -> list[str]:
            cfg = promconfig.render_prometheus_config(
                self.workdir / "prom",
                {
                    "ecm-exporter": f"127.0.0.1:{self.exporter_port}",
                    "ecm-generator": None,
                    "prometheus": f"127.0.0.1:{port}",
                    "alertmanager": am_address,
                    "ecm-pager": pager_address,
                    "ecm-api": None,
                    "ecm-broadcast": None,
                },
                am_address,
                rule_files=rule_files,
                scrape_interval="1s",
                evaluation_interval="1s",
            )
            return promconfig.prometheus_command(
                cfg,
                self.workdir / "prom-data",
                f"127.0.0.1:{port}",
                binary=prometheus,
                # Alertmanager is discovered ~5 s after start; an alert that fired before is
                # otherwise only sent again after the default 1m resend delay.
                extra_args=["--rules.alert.resend-delay=1s"],
            )

        self.prometheus = start_service(self.sup, "prometheus", prom_argv, self.workdir, "/-/ready")
        poll(
            "Prometheus to scrape the exporter",
            lambda: self.query('up{job="ecm-exporter"} == 1') or None,
            30,
            diagnostics=self.diagnostics,
        )

    def start_exporter(self) -> None:
        """Start the real exporter (again, on the same port) and wait for its first refresh."""

        def argv(port: int) -> list[str]:
            return [
                sys.executable,
                "-m",
                "exporter",
                "--interval",
                "1",
                "--port",
                str(port),
                "--listen-address",
                "127.0.0.1",
            ]

        self.exporter = start_service(
            self.sup,
            "exporter",
            argv,
            self.workdir,
            "/metrics",
            port=self.exporter_port,
            env={"ECM_DATABASE_URL": self.reader_url},
        )
        poll("the exporter's first refresh", self._refreshed, 30, diagnostics=self.exporter.tail)

    def start_pager(self) -> None:
        """Start the real pager, scraped for its dashboard row; it pages the sink's /pages."""
        config = self.workdir / "pager.yml"
        policy = {"levels": [{"targets": [{"webhook": self.sink.url("pages")}]}]}
        doc = {
            "policies": {"sink": policy},
            "services": {"ecm": {"policy": "sink"}, "ecm-monitoring": {"policy": "sink"}},
            # Alertmanager sends the Watchdog to the sink here, not to this pager.
            "watchdog_silence": "1d",
        }
        config.write_text(json.dumps(doc))
        self.pager = start_service(
            self.sup,
            "pager",
            lambda port: [
                sys.executable,
                "-m",
                "pager",
                "--config",
                str(config),
                "--port",
                str(port),
                "serve",
            ],
            self.workdir,
            "/readyz",
            env={"ECM_DATABASE_URL": self.db_url},
        )

    def _refreshed(self) -> bool | None:
        assert self.exporter is not None
        with contextlib.suppress(requests.RequestException):
            text = requests.get(self.exporter.url + "/metrics", timeout=2).text
            for line in text.splitlines():
                if line.startswith("ecm_exporter_last_refresh_success_timestamp_seconds "):
                    return True if float(line.split()[1]) > 0 else None
        return None

    def stop(self) -> None:
        """Stop everything, whatever state it is in."""
        self.sup.stop_all()
        self.traffic.stop()
        self.sink.stop()

    # --- queries ---------------------------------------------------------------------------

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant PromQL query; raises on an error answer."""
        assert self.prometheus is not None
        doc = get_json(self.prometheus.url + "/api/v1/query", query=expr)
        assert doc["status"] == "success", doc
        result: list[dict[str, Any]] = doc["data"]["result"]
        return result

    def prom_alerts(self) -> list[dict[str, Any]]:
        """Alerts Prometheus holds right now (pending and firing)."""
        assert self.prometheus is not None
        alerts: list[dict[str, Any]] = get_json(self.prometheus.url + "/api/v1/alerts")["data"][
            "alerts"
        ]
        return alerts

    def am_alerts(self) -> list[dict[str, Any]]:
        """Alerts Alertmanager holds right now, with their state and inhibitors."""
        assert self.alertmanager is not None
        alerts: list[dict[str, Any]] = get_json(self.alertmanager.url + "/api/v2/alerts")
        return alerts

    def diagnostics(self) -> str:
        """Everything useful when a wait times out."""
        parts = [self.sink.summary()]
        with contextlib.suppress(Exception):
            parts.append(
                "prometheus alerts: "
                + ", ".join(
                    f"{a['labels']['alertname']}{{{a['labels'].get('tower', '')}}}={a['state']}"
                    for a in self.prom_alerts()
                )
            )
        for svc in (self.exporter, self.prometheus, self.alertmanager):
            if svc is not None:
                parts.append(f"--- {svc.name} log ---\n{svc.tail(20)}")
        if self.traffic.error:
            parts.append(f"traffic thread failed: {self.traffic.error!r}")
        return "\n".join(parts)


def create_database(pg: PgServer, name: str) -> tuple[str, str]:
    """A migrated database with the test towers; returns (owner URL, reader URL)."""
    with pg.admin() as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
    url = pg.url(name)
    with psycopg.connect(url, autocommit=True) as conn:
        for tower in TOWERS:
            conn.execute("INSERT INTO towers (tower_id) VALUES (%s)", (tower,))
    return url, pg.url(name, "ecm_test_reader")


@contextlib.contextmanager
def live_stack(
    pg: PgServer, workdir: Path, prometheus: str, alertmanager: str
) -> Iterator[LiveStack]:
    """Start the stack on a fresh database; stop it and drop the database afterwards."""
    name = "ecm_e2e_stack"
    url, reader = create_database(pg, name)
    stack = LiveStack(workdir, url, reader)
    try:
        stack.start(prometheus, alertmanager)
        yield stack
    finally:
        stack.stop()
        with pg.admin() as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
