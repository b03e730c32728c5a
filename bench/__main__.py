"""`python -m bench [--quick]`: run the benchmark, print one table, write the report and plot."""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bench import api_calls, broadcast, data, memory, pager, pm, refresh, scale, served, writer
from bench.plan import FULL, QUICK, Plan
from bench.report import Row, machine, markdown, plot, table
from bench.results import load_rows, memory_rows, qe_rows, refresh_rows, scrape_rows, writer_rows
from ecm_common.cli import run
from ecm_common.db import connect
from ecm_common.logs import setup_logging

log = logging.getLogger("bench")

PROG = "ecm-bench"
ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PLOT_NAME = "bench-refresh.png"
REPORT_NAME = "BENCHMARKS.md"

NOTES = [
    "Every part runs against a throwaway PostgreSQL cluster started for the run; the data are "
    "synthetic calls with skewed latency (log-normal mixture, 30% idle phones, core timeouts at "
    "the 10 s timer) and skewed tower traffic, loaded with INSERT ... SELECT and then VACUUM "
    "ANALYZE, so the direct queries get index-only scans.",
    "1: the generator's backfill (vectorised generation, binary COPY in batches) into an empty "
    "table, then the very rows it stored, pre-built as one binary COPY stream before timing, "
    "loaded into the emptied table with one COPY: same table, same indexes. Medians of the "
    "repeats.",
    "2: windows 5m, 10m, 1h; the data span the last 50 minutes, so the 1h window holds every row. "
    "Steady refresh: the median of refreshes with new rows committed between them, the clock "
    "advancing 15 s each time (the refresh includes rendering /metrics). Start-up rebuild: the "
    "first refresh of a new exporter. Direct: the exact overall, per-tower and per-reason "
    "queries (count, avg, percentile_cont(0.95), failures by reason) for every window, median "
    "of the repeats on a warm cache. Accuracy: the published 1h p95 against percentile_cont over "
    "the same rows.",
    "3: the generic SQL exporter, installed into a private virtual environment, running the same "
    "overall, per-tower and per-reason queries for each window back to back; its refresh cost is "
    "its own query_latency histogram (mean execution time per query, times the windows). It is "
    "scraped fewer times than ECM (most of a second per scrape at 5,000 towers).",
    "4: the exporter as users run it (`python -m exporter`, its own process), scraped "
    "sequentially on 127.0.0.1 with a new connection per scrape, body read in full. Twice: with "
    "`Accept-Encoding: gzip`, as Prometheus always scrapes (the exporter sends the gzip copy it "
    "compressed once per refresh; the goal is judged on these scrapes; decompressing is the "
    "scraper's own work and not timed), and as plain text. Then, on the most towers, under load: "
    f"{', '.join(map(str, served.LOAD_CLIENTS))} client threads of the benchmark process start "
    "together and each scrapes with gzip on a new connection per scrape; median and p99 over "
    "every scrape, and how many failed (an error, a non-200 answer or a short body).",
    "5: a fresh process feeds rows minute by minute on an injected clock (4 refreshes a "
    "minute) for twice the longest window, so the middle sample is taken with that window full "
    "and the second half only replaces old minutes; RSS from /proc and tracemalloc.",
]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line flags."""
    p = argparse.ArgumentParser(prog=PROG, description=__doc__)
    p.add_argument("--quick", action="store_true", help="tiny sizes, seconds long (CI smoke run)")
    p.add_argument(
        "--output-dir",
        type=Path,
        default=DOCS,
        help=f"where {REPORT_NAME} and {PLOT_NAME} go (default: the repository's docs/)",
    )
    p.add_argument("--log-level", default="WARNING", help="progress detail (default WARNING)")
    return p.parse_args(argv)


def shown_path(path: Path) -> str:
    """A path as the table prints it: relative to the repository when inside it."""
    resolved = path.resolve()
    return str(resolved.relative_to(ROOT)) if resolved.is_relative_to(ROOT) else str(resolved)


def measure_all(plan: Plan, out_dir: Path, command: str) -> tuple[list[Row], str]:
    """Run every section; the table rows and the Markdown document."""
    rows: list[Row] = []
    with data.throwaway_database() as db:
        mach = machine(db.server_version)
        with connect(db.url, autocommit=True, app="ecm-bench") as conn:
            start = data.db_now(conn)
        log.warning("1/5 generator against the COPY limit")
        rows += writer_rows(writer.run(db.url, plan.writer_rows, plan.writer_repeats, start))

        points: list[refresh.RefreshPoint] = []
        scraped: list[served.Served] = []
        qe = None
        for towers in plan.tower_counts:
            log.warning("2/5 refresh against direct queries, %d towers", towers)
            points += refresh.run(db.url, plan, towers)
            log.warning("4/5 scrape latency, %d towers", towers)
            biggest_set = towers == max(plan.tower_counts)
            scraped.append(
                served.serve_and_scrape(db.url, plan, towers, plan.largest, under_load=biggest_set)
            )
            if biggest_set:
                log.warning("3/5 query-exporter on the same data")
                qe = served.query_exporter(db.url, plan)
        rows += refresh_rows(points, plan)
        biggest = [p for p in points if p.rows == plan.largest]
        if qe is not None:
            rows += qe_rows(qe, scraped[-1], max(biggest, key=lambda p: p.towers))
        rows += scrape_rows(scraped)
        rows += load_rows(scraped)

        mem_towers = min(plan.tower_counts)
        log.warning("5/5 memory over %d simulated minutes", plan.memory_minutes)
        rows += memory_rows(memory.run(db.url, plan, mem_towers), plan, mem_towers)

        log.warning("7 the pager under an alert storm")
        storm = pager.run(db.url, pager.QUICK_STORM if plan.quick else pager.FULL_STORM)
        log.warning("8 RAN PM ingest through the API, and the 24h KPI query")
        pm_result = pm.run(db.url, pm.PM_QUICK if plan.quick else pm.PM_FULL)
        log.warning("9 national scale: series, refresh, rebuild, memory, scrape")
        scaled = scale.run(db.url, scale.QUICK_SCALE if plan.quick else scale.FULL_SCALE)
        log.warning("10 SMS broadcast queue against raw UPDATEs, senders scaling")
        sms = broadcast.run(db.url, broadcast.QUICK_PLAN if plan.quick else broadcast.FULL_PLAN)
        calls_api = api_calls.run(
            db.url, api_calls.QUICK_PLAN if plan.quick else api_calls.FULL_PLAN
        )

    png = out_dir / PLOT_NAME
    missing = plot(points, png)
    rows.append(
        Row("6", "plot of refresh cost against window size", f"not written: {missing}")
        if missing
        else Row("6", "plot of refresh cost against window size", shown_path(png))
    )
    rows += pager.rows(storm)
    rows += pm.pm_rows(pm_result)
    rows += scale.rows(scaled)
    rows += broadcast.rows(sms)
    rows += api_calls.rows(calls_api)
    notes = [*NOTES, pager.NOTE, pm.NOTE, scale.NOTE, broadcast.NOTE, api_calls.NOTE]
    doc = markdown(rows, mach, command, notes, None if missing else PLOT_NAME)
    return rows, doc


def _main(argv: Sequence[str] | None) -> int:
    args = parse_args(argv)
    setup_logging(args.log_level)
    plan = QUICK if args.quick else FULL
    command = "python -m bench" + (" --quick" if args.quick else "")
    if args.output_dir != DOCS:
        command += f" --output-dir {shlex.quote(str(args.output_dir))}"
    t0 = time.monotonic()
    rows, doc = measure_all(plan, args.output_dir, command)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    report = args.output_dir / REPORT_NAME
    report.write_text(doc, encoding="utf-8")
    print(table(rows))
    print(f"\nwrote {report} in {time.monotonic() - t0:.0f} s")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    return run(lambda: _main(argv), PROG)


if __name__ == "__main__":
    sys.exit(main())
