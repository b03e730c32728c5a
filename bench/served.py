"""Sections 3 and 4: the exporter as users run it, scraped over HTTP, beside the generic one."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bench import ecm, measure, qexporter
from bench.plan import Plan
from exporter.config import parse_window
from stack.pgcluster import free_port

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 180.0
# Scrapers hitting /metrics at once (Prometheus replicas, federation, people with curl).
LOAD_CLIENTS = (1, 10, 50)
# So that even the quick run's p99 at 50 clients rests on a few hundred scrapes.
MIN_SCRAPES_PER_CLIENT = 5


@dataclass(frozen=True)
class Served:
    """Scrape latency and resident memory of the exporter process on one data set."""

    towers: int
    rows: int
    scrape: measure.ScrapeStats  # plain text
    scrape_gzip: measure.ScrapeStats  # Accept-Encoding: gzip, as Prometheus scrapes
    rss_bytes: int
    # Gzip scrapes from LOAD_CLIENTS parallel clients; measured on the largest data set only.
    load: tuple[measure.LoadStats, ...] = ()


def serve_and_scrape(
    url: str, plan: Plan, towers: int, rows: int, *, under_load: bool = False
) -> Served:
    """Start the exporter process, wait for its first refresh, scrape it plan.scrapes times
    (then, under_load, again from 1, 10 and 50 parallel clients)."""
    port = free_port()
    proc = ecm.serve_process(url, port, plan.windows)
    longest = max(plan.windows, key=lambda w: parse_window(w).minutes)
    marker = f'ecm_window_calls{{window="{longest}"}}'.encode()
    try:
        try:
            measure.wait_http("127.0.0.1", port, READY_TIMEOUT_S, lambda body: marker in body)
        except TimeoutError as exc:
            err = b""
            if proc.poll() is not None and proc.stderr is not None:
                err = proc.stderr.read()[-400:]
            raise RuntimeError(
                f"exporter not ready: {exc} {err.decode(errors='replace')}"
            ) from None
        stats = measure.scrape_latency("127.0.0.1", port, plan.scrapes)
        gz = measure.scrape_latency("127.0.0.1", port, plan.scrapes, use_gzip=True)
        rss = measure.rss_bytes(proc.pid)
        load = tuple(
            measure.parallel_scrape_latency(
                "127.0.0.1", port, n, max(MIN_SCRAPES_PER_CLIENT, plan.scrapes // n)
            )
            for n in (LOAD_CLIENTS if under_load else ())
        )
    finally:
        ecm.stop_process(proc)
    return Served(towers, rows, scrape=stats, scrape_gzip=gz, rss_bytes=rss, load=load)


def query_exporter(url: str, plan: Plan) -> qexporter.QeResult:
    """The generic exporter on the same data, or why it could not run here."""
    cmd, reason = qexporter.ensure_installed(allow_install=plan.run_query_exporter)
    if cmd is None:
        return qexporter.QeResult(False, reason=reason)
    windows = {w: parse_window(w).minutes * 60 for w in plan.windows}
    try:
        return qexporter.run(cmd, url, windows, plan.qe_scrapes)
    except (OSError, RuntimeError) as exc:
        return qexporter.QeResult(False, reason=f"failed to run: {exc}")
