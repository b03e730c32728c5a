"""Section 7: the pager under an alert storm, beside the raw insert rate of the same rows.

The pager runs as users run it (`python -m pager serve`, its own process, its worker idle so
only the webhook path is timed); client threads post Alertmanager payloads on kept-alive
connections. Measured: every alert stored, one incident per service, the handler's latency as
the client sees it (request sent to response read), and how long after the first webhook for a
service its first notification was committed to the outbox (the response of the post that
opened the incident has returned by then, so its end time bounds the commit from above).
Baseline: the same alert rows INSERTed into a copy of the table, one transaction per post's
worth, on one connection.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import requests
from psycopg.types.json import Jsonb

from bench.report import Row, verdict
from ecm_common.db import connect
from stack.pgcluster import free_port
from stack.yamlout import dump_yaml

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 60.0
HANDLER_P99_GOAL_S = 0.100
FIRST_PAGE_P99_GOAL_S = 1.0
STORM_GOAL_S = 60.0
CLIENTS = 8
PACED_SENDERS = 32
STARTS = "2027-01-15T08:00:00Z"

NOTE = (
    "7: the pager (`python -m pager serve`, its own process, worker idle) takes an alert storm "
    f"from {CLIENTS} client threads posting Alertmanager payloads on kept-alive connections: "
    "every alert must be stored and each service must get exactly one incident. Handler "
    "latency is measured by the client; the first page's delay is from the first post for a "
    "service to the end of the post that opened its incident (its notification is committed "
    "before that response). Baseline: the same alert rows INSERTed into a copy of the table, one "
    "transaction per post, on one connection."
)


@dataclass(frozen=True)
class StormPlan:
    """How big the storm is."""

    posts: int
    alerts_per_post: int
    services: int
    # The paced storm's posts arrive evenly over this many seconds (the issue: under a minute).
    paced_s: float

    @property
    def alerts(self) -> int:
        """Alerts in the whole storm."""
        return self.posts * self.alerts_per_post


FULL_STORM = StormPlan(posts=1_000, alerts_per_post=10, services=200, paced_s=30.0)
QUICK_STORM = StormPlan(posts=60, alerts_per_post=10, services=20, paced_s=3.0)


@dataclass
class Storm:
    """One storm's measurements."""

    elapsed_s: float
    stored_alerts: int
    incidents_per_service: dict[str, int]
    handler_s: list[float]
    first_page_s: list[float]
    failed_posts: int


@dataclass
class StormResult:
    """The paced storm (latency goals), the burst (throughput) and the raw insert baseline."""

    plan: StormPlan
    paced: Storm
    burst: Storm
    raw_insert_s: float


def _service(plan: StormPlan, post: int, j: int) -> str:
    return f"svc{(post * plan.alerts_per_post + j) % plan.services:04d}"


def payload(plan: StormPlan, post: int) -> dict[str, Any]:
    """Post number post: alerts_per_post alerts spread over the services."""
    alerts = []
    for j in range(plan.alerts_per_post):
        n = post * plan.alerts_per_post + j
        alerts.append(
            {
                "status": "firing",
                "labels": {
                    "alertname": "EcmTowerFailureRatioHigh",
                    "severity": "critical",
                    "service": _service(plan, post, j),
                    "tower": f"TOWER_{n}",
                },
                "annotations": {"summary": f"tower TOWER_{n} fails"},
                "startsAt": STARTS,
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus:9090/graph",
                "fingerprint": f"{n:016x}",
            }
        )
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="EcmTowerFailureRatioHigh", post="{post}"}}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "pager",
        "groupLabels": {},
        "commonLabels": {"severity": "critical"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": alerts,
    }


def _config(plan: StormPlan, port: int, directory: Path) -> Path:
    services = {f"svc{i:04d}": {"policy": "storm"} for i in range(plan.services)}
    services |= {"ecm": {"policy": "storm"}, "ecm-monitoring": {"policy": "storm"}}
    doc = {
        "port": port,
        # Only the webhook path is timed: the worker ticks at start, then a minute later.
        "tick": "60s",
        "watchdog_silence": "1d",
        "policies": {"storm": {"levels": [{"targets": [{"webhook": "http://127.0.0.1:9/"}]}]}},
        "services": services,
    }
    path = directory / "pager.yml"
    path.write_text(dump_yaml(doc), encoding="utf-8")
    return path


def _wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read()[-400:] if proc.stderr else b""
            raise RuntimeError(f"pager exited: {err.decode(errors='replace')}")
        try:
            if requests.get(url + "/readyz", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError("pager not ready in time")


Posted = tuple[int, float, float, Any]


def _storm(url: str, plan: StormPlan, *, paced: bool) -> tuple[float, list[Posted], int]:
    """Post every payload; (elapsed, [(post, start, end, answer)], failed posts).

    Paced: post i is due at i * paced_s / posts after the start (open loop, whatever the
    answers), and its latency counts from when it was due. Burst: CLIENTS threads post back to
    back as fast as the pager answers.
    """
    bodies = [payload(plan, i) for i in range(plan.posts)]
    results: list[Posted] = []
    failed = 0
    lock = threading.Lock()
    t_start = time.time() + 0.2
    due = {i: t_start + i * plan.paced_s / plan.posts if paced else 0.0 for i in range(plan.posts)}
    next_post = iter(range(plan.posts))

    def client() -> None:
        nonlocal failed
        with requests.Session() as s:
            while True:
                with lock:
                    i = next(next_post, None)
                if i is None:
                    return
                if paced:
                    time.sleep(max(due[i] - time.time(), 0.0))
                t0 = due[i] if paced else time.time()
                try:
                    r = s.post(url + "/v1/alertmanager", json=bodies[i], timeout=30)
                    body = r.json() if r.status_code == 200 else None
                except requests.RequestException:
                    body = None
                t1 = time.time()
                with lock:
                    results.append((i, t0, t1, body))
                    failed += body is None

    # Paced: enough senders that none is still busy when its next post is due.
    threads = [threading.Thread(target=client) for _ in range(PACED_SENDERS if paced else CLIENTS)]
    t = time.monotonic()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return time.monotonic() - t, results, failed


def _raw_insert_s(url: str, plan: StormPlan) -> float:
    """Seconds to INSERT the storm's alert rows into a copy of the table, a post per commit."""
    with connect(url, autocommit=True, app="ecm-bench-pager") as conn:
        conn.execute(
            "CREATE TABLE bench_pager_alerts (LIKE pager_incident_alerts INCLUDING DEFAULTS"
            " INCLUDING CONSTRAINTS INCLUDING INDEXES)"
        )
        try:
            t = time.monotonic()
            for i in range(plan.posts):
                rows = [
                    (a["fingerprint"], a["startsAt"], 1, a["labels"]["alertname"],
                     Jsonb(a["labels"]), "firing")
                    for a in payload(plan, i)["alerts"]
                ]  # fmt: skip
                with conn.transaction(), conn.cursor() as cur:
                    cur.executemany(
                        "INSERT INTO bench_pager_alerts (fingerprint, starts_at, incident_id,"
                        " alertname, labels, status, received_at)"
                        " VALUES (%s, %s, %s, %s, %s, %s, now())",
                        rows,
                    )
            return time.monotonic() - t
        finally:
            conn.execute("DROP TABLE bench_pager_alerts")


def run(url: str, plan: StormPlan) -> StormResult:
    """Start the pager on url's database, storm it twice (paced, then burst), read it back."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="ecm-bench-pager-") as tmp:
        config = _config(plan, port, Path(tmp))
        env = {**os.environ, "ECM_DATABASE_URL": url, "ECM_LOG_LEVEL": "WARNING"}
        env.pop("ECM_PAGER_ALERTMANAGER_TOKEN", None)
        proc = subprocess.Popen(
            [sys.executable, "-m", "pager", "--config", str(config), "serve"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            _wait_ready(base, proc)
            paced = _read(url, plan, *_storm(base, plan, paced=True))
            with connect(url, autocommit=True, app="ecm-bench-pager") as conn:
                conn.execute(
                    "TRUNCATE pager_events, pager_outbox, pager_incident_alerts, pager_incidents,"
                    " pager_services RESTART IDENTITY"
                )
            burst = _read(url, plan, *_storm(base, plan, paced=False))
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
    return StormResult(plan, paced, burst, _raw_insert_s(url, plan))


def _read(url: str, plan: StormPlan, elapsed: float, posts: list[Posted], failed: int) -> Storm:
    """What the pager stored, and when each incident's first page was queued."""
    with connect(url, autocommit=True, app="ecm-bench-pager") as conn:
        stored = _one(conn, "SELECT count(*) FROM pager_incident_alerts")
        per_service: dict[str, int] = dict(
            conn.execute("SELECT service_id, count(*) FROM pager_incidents GROUP BY 1").fetchall()
        )
        opened_by: dict[int, str] = dict(
            conn.execute("SELECT incident_id, service_id FROM pager_incidents").fetchall()
        )
        queued = {
            r[0] for r in conn.execute("SELECT DISTINCT incident_id FROM pager_outbox").fetchall()
        }
    first_post: dict[str, float] = {}
    for i, start, _end, _body in posts:
        for j in range(plan.alerts_per_post):
            svc = _service(plan, i, j)
            first_post[svc] = min(first_post.get(svc, start), start)
    first_page = [
        end - first_post[opened_by[incident]]
        for _i, _start, end, body in posts
        for incident in (body or {}).get("opened", [])
        if incident in queued
    ]
    return Storm(
        elapsed_s=elapsed,
        stored_alerts=stored,
        incidents_per_service=per_service,
        handler_s=[end - start for _i, start, end, _b in posts],
        first_page_s=first_page,
        failed_posts=failed,
    )


def _one(conn: psycopg.Connection, sql: str) -> int:
    row = conn.execute(sql).fetchone()
    return int(row[0]) if row else 0


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.1f} ms"


def rows(r: StormResult) -> list[Row]:
    """Section 7's table rows: the paced storm judged on the issue's goals, then the burst."""
    p, a, b = r.plan, r.paced, r.burst
    storm = f"{p.posts:,} posts, {p.alerts:,} alerts, {p.services} services"
    raw = p.alerts / r.raw_insert_s if r.raw_insert_s > 0 else 0.0
    rate = p.alerts / b.elapsed_s if b.elapsed_s > 0 else 0.0
    a99, f99 = _quantile(a.handler_s, 0.99), _quantile(a.first_page_s, 0.99)
    return [
        Row(
            "7",
            f"pager alert storm ({storm} over {p.paced_s:g} s): alerts stored, incidents",
            _stored(p, a),
            "-",
            "-",
            "none lost, one incident per service",
            verdict(_complete(p, a)),
        ),
        Row(
            "7",
            "pager storm: webhook handler latency p50 / p99 (from when each post was due)",
            f"{_ms(_quantile(a.handler_s, 0.5))} / {_ms(a99)}",
            "-",
            "-",
            f"p99 under {_ms(HANDLER_P99_GOAL_S)}",
            verdict(a99 < HANDLER_P99_GOAL_S),
        ),
        Row(
            "7",
            "pager storm: first notification queued after the service's first webhook, p99",
            f"{_ms(f99)} ({len(a.first_page_s)} incidents)",
            "-",
            "-",
            f"p99 under {_ms(FIRST_PAGE_P99_GOAL_S)}",
            verdict(f99 < FIRST_PAGE_P99_GOAL_S and len(a.first_page_s) == p.services),
        ),
        Row(
            "7",
            f"pager burst ({storm}, {CLIENTS} clients back to back): alerts per second",
            f"{rate:,.0f} alerts/s in {b.elapsed_s:.1f} s ({_stored(p, b)}; handler p50 / p99 "
            f"{_ms(_quantile(b.handler_s, 0.5))} / {_ms(_quantile(b.handler_s, 0.99))})",
            f"raw INSERT of the same rows: {raw:,.0f} alerts/s",
            f"{rate / raw:.2f}" if raw else "-",
            f"all stored, under {STORM_GOAL_S:.0f} s",
            verdict(_complete(p, b) and b.elapsed_s < STORM_GOAL_S),
        ),
    ]


def _stored(p: StormPlan, s: Storm) -> str:
    return (
        f"{s.stored_alerts:,} of {p.alerts:,} stored, {sum(s.incidents_per_service.values())} "
        f"incidents for {len(s.incidents_per_service)} services, {s.failed_posts} failed posts"
    )


def _complete(p: StormPlan, s: Storm) -> bool:
    one_each = len(s.incidents_per_service) == p.services
    return (
        s.stored_alerts == p.alerts
        and one_each
        and set(s.incidents_per_service.values()) == {1}
        and s.failed_posts == 0
    )
