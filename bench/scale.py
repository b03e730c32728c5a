"""Section 9: national scale, 5,000 to 100,000 towers with a million-row hour.

Per tower count, on the same data: the series the exporter publishes (and its budget), a steady
refresh and its self-metric, the start-up rebuild against the direct exact queries, the served
process's resident memory beside query-exporter's (which stops somewhere), gzip scrape p99; then
memory over two simulated hours at the most towers. `python -m bench.scale [--quick]` runs this
section alone and prints its rows.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import yaml

from bench import data, ecm, measure, memory, qexporter, refresh, served
from bench.plan import FULL, QUICK, Plan
from bench.report import Row, run_alone, verdict
from bench.results import mib, ms
from exporter.config import parse_window
from stack.pgcluster import free_port
from stack.promconfig import prometheus_command

log = logging.getLogger(__name__)

SECTION = "9"
STEADY_GOAL_S = 0.100
SCRAPE_GOAL_S = 0.010
SERIES_GOAL = 50_000
GOAL_TOWERS = 100_000  # steady refresh and series goals are judged here
RSS_GOAL_TOWERS = 5_000  # resident memory no more than query-exporter's here
MEMORY_FLAT = 1.10
# The rebuild is judged on a million-row hour: on small windows fixed costs (the first rendering
# of every label) outweigh the reads.
REBUILD_GOAL_ROWS = 1_000_000
# Series Prometheus adds per scraped target: up, scrape_duration_seconds, scrape_samples_scraped,
# scrape_samples_post_metric_relabeling, scrape_series_added.
SCRAPE_META_SERIES = 5
PROM_SCRAPE_INTERVAL = "5s"

NOTE = (
    f"{SECTION}: national scale. Per tower count, a fresh table holds the window rows over "
    "50 minutes (towers in 20 regions, skewed traffic). Series: ecm_exporter_series after the "
    "first refresh, beside the documented budget (docs/metrics.md). Steady refresh: as in 2 (new "
    "rows between refreshes, clock +15 s), with the exporter's own "
    "ecm_exporter_refresh_duration_seconds beside it. Rebuild: the first refresh of a new "
    "exporter against the direct exact queries of every window. RSS and scrape p99 (gzip): the "
    "exporter process as users run it, after its first refresh and the scrapes; query-exporter "
    "(same queries as 3) on the same data, given 180 s to run its queries three times. Memory: "
    "as 5, at the most towers, with the window's hourly rows. Prometheus: a real Prometheus "
    f"(no rules) scrapes the exporter every {PROM_SCRAPE_INTERVAL} at the most towers; its "
    "prometheus_tsdb_head_series at the end beside the exporter's series budget plus the "
    f"{SCRAPE_META_SERIES} series Prometheus adds per target."
)


@dataclass(frozen=True)
class ScalePlan:
    """Sizes of the section."""

    tower_counts: tuple[int, ...]
    rows: int  # in the 1h window
    regions: int
    base: Plan  # steady refreshes, repeats, scrapes, windows, memory minutes
    query_exporter: bool
    prometheus_minutes: float  # a real Prometheus scraping the exporter at the most towers


FULL_SCALE = ScalePlan(
    tower_counts=(5_000, 20_000, 100_000),
    rows=1_000_000,
    regions=20,
    base=dataclasses.replace(
        FULL,
        steady_refreshes=10,
        direct_repeats=3,
        scrapes=200,
        qe_scrapes=10,
        memory_minutes=120,
        memory_rows_per_minute=1_000_000 // 60,
    ),
    query_exporter=True,
    prometheus_minutes=10.0,
)
QUICK_SCALE = ScalePlan(
    tower_counts=(500, 2_000),
    rows=20_000,
    regions=4,
    base=dataclasses.replace(
        QUICK, steady_refreshes=3, direct_repeats=1, scrapes=20, memory_minutes=4
    ),
    query_exporter=False,
    prometheus_minutes=0.25,
)


@dataclass(frozen=True)
class ScalePoint:
    """What one tower count measured."""

    towers: int
    rows: int
    series: int
    budget: int
    steady_s: float
    self_metric_s: float
    rebuild_s: float
    direct_s: float
    served: served.Served
    qe: qexporter.QeResult | None


@dataclass(frozen=True)
class PromHead:
    """A real Prometheus's head series after scraping the exporter, or why it could not run."""

    available: bool
    reason: str = ""
    head_series: int = 0
    exporter_series: int = 0
    budget: int = 0


@dataclass(frozen=True)
class ScaleResult:
    """The section's measurements."""

    points: list[ScalePoint]
    memory: list[memory.MemorySample]
    memory_towers: int
    plan: ScalePlan
    prometheus: PromHead


def _value(exposition: bytes, name: str) -> float:
    got = ecm.samples(exposition, name).get(())
    if got is None:
        raise RuntimeError(f"the exporter published no {name}")
    return got


def measure_point(url: str, sp: ScalePlan, towers: int, qe_cmd: Path | None) -> ScalePoint:
    """Fill a fresh table for this tower count and measure everything on it."""
    plan = sp.base
    span_s = plan.data_span_minutes * 60.0
    with psycopg.connect(url, autocommit=True) as conn:
        data.reset(conn)
        data.add_calls(
            conn, sp.rows, towers=towers, end=data.db_now(conn), span_s=span_s,
            regions=sp.regions,
        )  # fmt: skip
        data.vacuum(conn)
        direct = refresh.direct_time(conn, plan.windows, plan.direct_repeats)
        clock = ecm.FakeClock(data.db_now(conn).timestamp())
        with ecm.job(url, plan.windows, clock) as job:
            t0 = time.perf_counter()
            if not job.refresh():
                raise RuntimeError("the exporter's start-up rebuild failed")
            rebuild = time.perf_counter() - t0
            first = job.exposition()
            steady: list[float] = []
            reported: list[float] = []
            for _ in range(plan.steady_refreshes):
                now = clock.advance(plan.refresh_interval_s)
                data.add_calls(
                    conn, plan.new_rows_per_refresh, towers=towers,
                    end=datetime.fromtimestamp(now, UTC), span_s=plan.refresh_interval_s,
                    regions=sp.regions,
                )  # fmt: skip
                t0 = time.perf_counter()
                if not job.refresh():
                    raise RuntimeError("an exporter refresh failed")
                steady.append(time.perf_counter() - t0)
                reported.append(job.refresh_duration_s)
    log.info("scale %d towers: serving the exporter process", towers)
    srv = served.serve_and_scrape(url, plan, towers, sp.rows)
    qe = None
    if qe_cmd is not None:
        log.info("scale %d towers: query-exporter", towers)
        windows = {w: parse_window(w).minutes * 60 for w in plan.windows}
        try:
            qe = qexporter.run(qe_cmd, url, windows, plan.qe_scrapes)
        except (OSError, RuntimeError) as exc:
            qe = qexporter.QeResult(False, reason=f"failed to run: {exc}")
    point = ScalePoint(
        towers=towers,
        rows=sp.rows,
        series=int(_value(first, "ecm_exporter_series")),
        budget=int(_value(first, "ecm_exporter_series_budget")),
        steady_s=statistics.median(steady),
        self_metric_s=statistics.median(reported),
        rebuild_s=rebuild,
        direct_s=direct,
        served=srv,
        qe=qe,
    )
    log.warning(
        "9 %d towers: %d series, steady %.1f ms, rebuild %.0f ms (direct %.0f ms), RSS %s",
        towers, point.series, point.steady_s * 1e3, rebuild * 1e3, direct * 1e3,
        mib(srv.rss_bytes),
    )  # fmt: skip
    return point


def _gauge(body: bytes, name: str) -> int:
    got = ecm.samples(body, name).get(())
    if got is None:
        raise RuntimeError(f"no {name} in the scrape")
    return int(got)


def prometheus_head(url: str, sp: ScalePlan) -> PromHead:
    """The exporter served on the data in the table, scraped by Prometheus for a while."""
    binary = shutil.which("prometheus")
    if binary is None:
        return PromHead(False, reason="prometheus not installed")
    port, prom_port = free_port(), free_port()
    work = Path(tempfile.mkdtemp(prefix="ecm-bench-prom-"))
    exporter = ecm.serve_process(url, port, sp.base.windows)
    prom: subprocess.Popen[bytes] | None = None
    try:
        measure.wait_http(
            "127.0.0.1", port, served.READY_TIMEOUT_S, lambda b: b"ecm_window_calls{" in b
        )
        cfg = work / "prometheus.yml"
        scrape = {
            "job_name": "ecm-exporter",
            "static_configs": [{"targets": [f"127.0.0.1:{port}"]}],
        }
        cfg.write_text(
            yaml.safe_dump({"global": {"scrape_interval": PROM_SCRAPE_INTERVAL},
                            "scrape_configs": [scrape]}),
            encoding="utf-8",
        )  # fmt: skip
        listen = f"127.0.0.1:{prom_port}"
        with open(work / "prometheus.log", "wb") as log_fh:
            cmd = prometheus_command(cfg, work / "data", listen, binary=binary)
            prom = subprocess.Popen(cmd, stdout=log_fh, stderr=subprocess.STDOUT)
        measure.wait_http("127.0.0.1", prom_port, 60.0, lambda b: b"tsdb_head_series" in b)
        time.sleep(sp.prometheus_minutes * 60.0)
        body = measure.scrape("127.0.0.1", prom_port)
        mine = measure.scrape("127.0.0.1", port)
        return PromHead(
            True,
            head_series=_gauge(body, "prometheus_tsdb_head_series"),
            exporter_series=_gauge(mine, "ecm_exporter_series"),
            budget=_gauge(mine, "ecm_exporter_series_budget"),
        )
    except (OSError, RuntimeError, TimeoutError) as exc:
        return PromHead(False, reason=f"failed: {exc}"[:160])
    finally:
        if prom is not None:
            ecm.stop_process(prom)
        ecm.stop_process(exporter)
        shutil.rmtree(work, ignore_errors=True)


def run(url: str, sp: ScalePlan) -> ScaleResult:
    """Every tower count, then memory over time at the most towers."""
    qe_cmd = None
    if sp.query_exporter:
        qe_cmd, reason = qexporter.ensure_installed(allow_install=True)
        if qe_cmd is None:
            log.warning("query-exporter not available: %s", reason)
    points = [measure_point(url, sp, towers, qe_cmd) for towers in sp.tower_counts]
    most = max(sp.tower_counts)
    log.warning("9 a real Prometheus scraping the exporter for %g min", sp.prometheus_minutes)
    head = prometheus_head(url, sp)  # on the table as the most towers left it
    samples = memory.run(url, sp.base, most, regions=sp.regions)
    return ScaleResult(points, samples, most, sp, head)


def rows(result: ScaleResult) -> list[Row]:
    """The section's table rows."""
    out: list[Row] = []
    for p in result.points:
        at = f"{p.towers:,} towers, {p.rows:,} rows in 1h"
        goal_at = p.towers == GOAL_TOWERS
        big = p.rows >= REBUILD_GOAL_ROWS
        out.append(
            Row(
                SECTION,
                f"series published, {at}",
                f"{p.series:,}",
                f"documented budget: {p.budget:,}",
                f"{p.series / p.budget:.2f} of the budget",
                f"< {SERIES_GOAL:,} at {GOAL_TOWERS:,}" if goal_at else "-",
                verdict(p.series < SERIES_GOAL) if goal_at else "-",
            )
        )
        out.append(
            Row(
                SECTION,
                f"steady refresh, {at} (+{result.plan.base.new_rows_per_refresh} new rows; "
                f"self-metric {ms(p.self_metric_s)})",
                ms(p.steady_s),
                f"direct exact queries: {ms(p.direct_s)}",
                f"direct/ECM {p.direct_s / p.steady_s:,.1f}" if p.steady_s else "-",
                f"< {STEADY_GOAL_S * 1e3:.0f} ms at {GOAL_TOWERS:,}" if goal_at else "-",
                verdict(p.steady_s < STEADY_GOAL_S) if goal_at else "-",
            )
        )
        out.append(
            Row(
                SECTION,
                f"start-up rebuild, {at}",
                ms(p.rebuild_s),
                f"direct exact queries: {ms(p.direct_s)}",
                f"rebuild/direct {p.rebuild_s / p.direct_s:.2f}" if p.direct_s else "-",
                f"<= 1 at {REBUILD_GOAL_ROWS:,} rows" if big else "-",
                verdict(p.rebuild_s <= p.direct_s) if big else "-",
            )
        )
        rss = p.served.rss_bytes
        if p.qe is not None and p.qe.available:
            qe_rss, ratio = (
                f"query-exporter: {mib(p.qe.rss_bytes)}",
                f"ECM/qe {rss / p.qe.rss_bytes:.2f}",
            )
        elif p.qe is not None:
            qe_rss, ratio = f"query-exporter stopped: {p.qe.reason[:120]}", "-"
        else:
            qe_rss, ratio = "query-exporter not run (quick run)", "-"
        rss_goal = p.towers == RSS_GOAL_TOWERS and p.qe is not None and p.qe.available
        out.append(
            Row(
                SECTION,
                f"resident memory after the first refresh and the scrapes, {at}",
                mib(rss),
                qe_rss,
                ratio,
                "<= query-exporter's" if rss_goal else "-",
                verdict(p.qe is not None and rss <= p.qe.rss_bytes) if rss_goal else "-",
            )
        )
        gz = p.served.scrape_gzip
        out.append(
            Row(
                SECTION,
                f"scrape median / p99, gzip, {at} ({gz.series:,} series, "
                f"{gz.body_bytes / 1024:,.0f} KiB sent)",
                f"{ms(gz.median_s)} / {ms(gz.p99_s)}",
                f"query-exporter p99: {ms(p.qe.scrape.p99_s)}"
                if p.qe is not None and p.qe.scrape is not None
                else "-",
                "-",
                f"p99 < {SCRAPE_GOAL_S * 1e3:.0f} ms",
                verdict(gz.p99_s < SCRAPE_GOAL_S),
            )
        )
    h, most = result.prometheus, f"{result.memory_towers:,} towers"
    minutes = f"{result.plan.prometheus_minutes:g} min"
    what = f"Prometheus head series after {minutes} scraping every {PROM_SCRAPE_INTERVAL}, {most}"
    if h.available:
        bound = h.budget + SCRAPE_META_SERIES
        out.append(
            Row(
                SECTION,
                f"{what} (exporter publishes {h.exporter_series:,})",
                f"{h.head_series:,}",
                f"budget + {SCRAPE_META_SERIES} scrape series: {bound:,}",
                f"{h.head_series / bound:.2f} of it",
                "<= budget",
                verdict(h.head_series <= bound),
            )
        )
    else:
        out.append(Row(SECTION, what, f"not measured: {h.reason}"))
    m = result.memory
    start, middle, end = m[0], m[len(m) // 2], m[-1]
    growth = end.rss_bytes / middle.rss_bytes if middle.rss_bytes else 0.0
    base = result.plan.base
    out.append(
        Row(
            SECTION,
            f"exporter RSS start / middle / end, {result.memory_towers:,} towers, "
            f"{base.memory_rows_per_minute:,} rows/min for {base.memory_minutes} simulated minutes",
            f"{mib(start.rss_bytes)} / {mib(middle.rss_bytes)} / {mib(end.rss_bytes)}",
            f"middle: {mib(middle.rss_bytes)}",
            f"{growth:.3f} end/middle",
            f"flat (<= {MEMORY_FLAT})",
            verdict(growth <= MEMORY_FLAT),
        )
    )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Run this section alone on a throwaway cluster and print its rows."""
    return run_alone(
        "python -m bench.scale",
        __doc__,
        argv,
        lambda url, quick: rows(run(url, QUICK_SCALE if quick else FULL_SCALE)),
    )


if __name__ == "__main__":
    sys.exit(main())
