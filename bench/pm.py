"""Section 8: RAN PM counters. Ingest through the ECM API (its own process, as users run it,
batches of 1,000 posted over one keep-alive connection) beside one raw COPY of the very same
rows into the emptied pm_events; the p99 of a batch; and the dashboard's 24-hour KPI series
from the rollups at two raw-event counts (goal: flat), beside the same KPI from raw events.
"""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg
import requests
from prometheus_client import CollectorRegistry

from api.app import build
from api.config import ApiSettings
from bench import measure
from bench.ecm import stop_process
from bench.report import Row, verdict
from ecm_common.db import URL_ENV, connect
from generator.pm_model import PmModel, make_cells
from stack.pgcluster import free_port

log = logging.getLogger(__name__)

INGEST_GOAL = 0.25
FLAT_GOAL = 1.5
READY_TIMEOUT_S = 60.0
CELLS = 1000
PERIOD_S = 900.0
COLUMNS = "event_id, event_time, source, entity_type, entity_id, metrics, schema_version"
# The dashboard's overall time series over 24 hours (stack/dashboards_pm.py, panel 1).
KPI_ROLLUP = """SELECT bucket, dl_prb_util_sum / NULLIF(dl_prb_util_n, 0) FROM pm_kpi_5m_total
 WHERE bucket BETWEEN %(since)s AND %(until)s ORDER BY 1"""
KPI_RAW = """SELECT date_bin('5 minutes', event_time, TIMESTAMPTZ '1970-01-01 00:00:00+00'),
       avg((metrics ->> 'dl_prb_util_pct')::float8)
  FROM pm_events WHERE event_time BETWEEN %(since)s AND %(until)s GROUP BY 1 ORDER BY 1"""
# Synthetic raw events spread over the last 24 hours, one per cell per 5-minute bucket.
FILL = f"""INSERT INTO pm_events ({COLUMNS})
SELECT gen_random_uuid(), %(now)s - (g %% 288) * interval '5 minutes', 'bench', 'cell',
       'CELL-' || (g / 288),
       jsonb_build_object('dl_prb_util_pct', round((random() * 90)::numeric, 2),
                          'ul_prb_util_pct', round((random() * 50)::numeric, 2),
                          'rrc_conn_avg', round((random() * 300)::numeric, 1),
                          'drop_rate_pct', round((random() * 2)::numeric, 3)), 1
  FROM generate_series(%(lo)s::bigint, %(hi)s::bigint - 1) AS g"""
FILL_CHUNK = 500_000
# The COPY baseline is the median of this many loads into the emptied table.
COPY_REPEATS = 3


NOTE = (
    "8: RAN PM counters. The ECM API as users run it (`python -m api`, its own process) takes "
    "events in batches of 1,000 posted one after another over one keep-alive connection by the "
    "benchmark process (bodies encoded before timing), into an empty pm_events; then the very "
    "same rows, pre-built as one COPY text stream, go into the emptied table with one COPY "
    "(median of 3): same table, same indexes. The 24-hour KPI series is the RAN PM "
    "dashboard's overall query on the 5-minute rollups, timed at two raw-event counts (events "
    "spread over 24 hours, one "
    "per cell per bucket, folded by the API's rollup job), beside the same KPI computed from "
    "raw pm_events; medians of the repeats on a warm cache."
)


@dataclass(frozen=True)
class PmPlan:
    """Sizes of section 8."""

    events: int
    batch: int
    kpi_sizes: tuple[int, ...]
    kpi_repeats: int


PM_FULL = PmPlan(events=100_000, batch=1000, kpi_sizes=(1_000_000, 10_000_000), kpi_repeats=5)
PM_QUICK = PmPlan(events=5_000, batch=1000, kpi_sizes=(20_000, 200_000), kpi_repeats=3)


@dataclass(frozen=True)
class KpiPoint:
    """The 24-hour KPI series at one raw-event count."""

    raw_events: int
    rollup_s: float
    raw_s: float


@dataclass(frozen=True)
class PmResult:
    """What section 8 measured."""

    events: int
    batch: int
    api_events_s: float
    copy_events_s: float
    p50_batch_s: float
    p99_batch_s: float
    kpi: tuple[KpiPoint, ...]

    @property
    def ratio(self) -> float:
        """API throughput as a share of the raw COPY's."""
        return self.api_events_s / self.copy_events_s if self.copy_events_s else 0.0


def _events(n: int) -> list[dict[str, object]]:
    """n events of CELLS cells over consecutive periods ending before now."""
    model = PmModel(make_cells(CELLS, 3), PERIOD_S, seed=8)
    periods = -(-n // CELLS)
    last = (time.time() // PERIOD_S) * PERIOD_S
    out: list[dict[str, object]] = []
    for k in range(periods):
        out += model.period(last - (periods - 1 - k) * PERIOD_S)
    return out[:n]


def _copy_text(events: list[dict[str, object]]) -> bytes:
    """The rows as one COPY text stream (built before timing)."""
    buf = io.StringIO()
    for e in events:
        metrics = json.dumps(e["metrics"], separators=(",", ":")).replace("\\", "\\\\")
        buf.write(
            f"{e['event_id']}\t{e['event_time']}\t{e['source']}\t{e['entity_type']}\t"
            f"{e['entity_id']}\t{metrics}\t{e['schema_version']}\n"
        )
    return buf.getvalue().encode()


def _serve(url: str, port: int) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "api", "--port", str(port), "--listen-address", "127.0.0.1"]
    args += ["--log-level", "WARNING", "--rollup-interval", "1h"]
    env = {**os.environ, URL_ENV: url, "ECM_API_TOKEN": "", "ECM_API_TOKEN_FILE": ""}
    return subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _wait_ready(base: str, proc: subprocess.Popen[bytes]) -> None:
    end = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < end:
        if proc.poll() is not None:
            err = proc.stderr.read()[-400:] if proc.stderr else b""
            raise RuntimeError(f"the API exited: {err.decode(errors='replace')}")
        try:
            if requests.get(base + "/readyz", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the API at {base} was not ready after {READY_TIMEOUT_S:.0f} s")


def ingest(url: str, plan: PmPlan) -> tuple[float, float, float, float]:
    """(API events/s, raw COPY events/s, p50 and p99 seconds of one batch)."""
    events = _events(plan.events)
    bodies = [
        json.dumps(events[i : i + plan.batch], separators=(",", ":")).encode()
        for i in range(0, len(events), plan.batch)
    ]
    stream = _copy_text(events)
    with connect(url, autocommit=True, app="ecm-bench") as conn:
        conn.execute("TRUNCATE pm_events")
    port = free_port()
    proc = _serve(url, port)
    base = f"http://127.0.0.1:{port}"
    times: list[float] = []
    try:
        _wait_ready(base, proc)
        with requests.Session() as session:
            session.headers["Content-Type"] = "application/json"
            start = time.perf_counter()
            for body in bodies:
                t0 = time.perf_counter()
                resp = session.post(base + "/v1/events/pm", data=body, timeout=60)
                times.append(time.perf_counter() - t0)
                if resp.status_code != 200 or resp.json()["accepted"] != body.count(b"event_id"):
                    raise RuntimeError(f"the API answered {resp.status_code}: {resp.text[:200]}")
            api_s = time.perf_counter() - start
    finally:
        stop_process(proc)
    with connect(url, autocommit=True, app="ecm-bench") as conn:
        stored = conn.execute("SELECT count(*) FROM pm_events").fetchone()
        if stored != (len(events),):
            raise RuntimeError(f"the API stored {stored} of {len(events)} events")
        conn.execute("TRUNCATE pm_events")

        def copy_once() -> None:
            with conn.cursor() as cur, cur.copy(f"COPY pm_events ({COLUMNS}) FROM STDIN") as cp:
                cp.write(stream)

        copy_times = []
        for _ in range(COPY_REPEATS):
            start = time.perf_counter()
            copy_once()
            copy_times.append(time.perf_counter() - start)
            conn.execute("TRUNCATE pm_events")
        copy_s = float(np.median(copy_times))
    arr = np.array(times)
    return (
        len(events) / api_s,
        len(events) / copy_s,
        float(np.percentile(arr, 50)),
        float(np.percentile(arr, 99)),
    )


def kpi_points(url: str, plan: PmPlan) -> tuple[KpiPoint, ...]:
    """Fill pm_events up to each size, fold with the API's rollup, time the 24h series."""
    api = build(ApiSettings.model_validate({}), url, CollectorRegistry(), jobs=False)
    points = []
    filled = 0
    now = datetime.now(UTC)
    params = {"since": now - timedelta(hours=24), "until": now + timedelta(minutes=5)}
    try:
        with connect(url, autocommit=True, app="ecm-bench") as conn:
            for size in plan.kpi_sizes:
                for lo in range(filled, size, FILL_CHUNK):
                    hi = min(size, lo + FILL_CHUNK)
                    conn.execute(FILL, {"now": now, "lo": lo, "hi": hi})
                filled = size
                # A run folds a bounded share (--max-fold-rows x 20): run until all are in.
                while _folded(conn) < size:
                    if not api.rollup.run():
                        raise RuntimeError("the PM rollup failed; see the log")
                conn.execute("VACUUM ANALYZE pm_events")
                conn.execute("VACUUM ANALYZE pm_kpi_5m_total")
                rollup_s = measure.median_time(
                    lambda: conn.execute(KPI_ROLLUP, params).fetchall(), plan.kpi_repeats
                )
                raw_s = measure.median_time(
                    lambda: conn.execute(KPI_RAW, params).fetchall(), plan.kpi_repeats
                )
                points.append(KpiPoint(size, rollup_s, raw_s))
                log.info("24h KPI at %d raw events: %.4f s (raw %.3f s)", size, rollup_s, raw_s)
    finally:
        api.rollup.close()
    return tuple(points)


def _folded(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT rows_folded FROM pm_rollup_state").fetchone()
    return int(row[0]) if row else 0


def run(url: str, plan: PmPlan) -> PmResult:
    """Section 8 on the benchmark's database."""
    api_s, copy_s, p50, p99 = ingest(url, plan)
    return PmResult(plan.events, plan.batch, api_s, copy_s, p50, p99, kpi_points(url, plan))


def _ms(seconds: float) -> str:
    v = seconds * 1e3
    return f"{v:,.2f} ms" if v < 10 else f"{v:,.1f} ms"


def pm_rows(r: PmResult) -> list[Row]:
    """The table rows of section 8."""
    rows = [
        Row(
            "8",
            f"PM events/s through the API, {r.events:,} events in batches of {r.batch:,}",
            f"{r.api_events_s:,.0f} events/s",
            f"one raw COPY of the same rows: {r.copy_events_s:,.0f} events/s",
            f"{r.ratio:.2f}",
            f">= {INGEST_GOAL:.2f} of COPY",
            verdict(r.ratio >= INGEST_GOAL),
        ),
        Row(
            "8",
            f"latency of one {r.batch:,}-event batch, p99",
            _ms(r.p99_batch_s),
            f"median: {_ms(r.p50_batch_s)}",
        ),
    ]
    for p in r.kpi:
        rows.append(
            Row(
                "8",
                f"24h KPI series (5-minute rollups) at {p.raw_events:,} raw events",
                _ms(p.rollup_s),
                f"the same KPI from raw pm_events: {_ms(p.raw_s)}",
                f"raw/rollup {p.raw_s / p.rollup_s:,.0f}" if p.rollup_s else "-",
            )
        )
    if len(r.kpi) >= 2:
        lo, hi = r.kpi[0], r.kpi[-1]
        growth = hi.rollup_s / lo.rollup_s if lo.rollup_s else float("inf")
        rows.append(
            Row(
                "8",
                f"24h KPI series growth, {lo.raw_events:,} -> {hi.raw_events:,} raw events",
                f"{growth:.2f}x",
                f"raw pm_events: {hi.raw_s / lo.raw_s:.1f}x" if lo.raw_s else "-",
                f"{growth:.2f}",
                f"flat (<= {FLAT_GOAL:g}x)",
                verdict(growth <= FLAT_GOAL),
            )
        )
    return rows
