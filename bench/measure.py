"""Small measuring helpers: timing repeats, HTTP scrapes, resident memory."""

from __future__ import annotations

import gzip
import http.client
import logging
import os
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScrapeStats:
    """Latency of scrapes of one /metrics endpoint and the size of its body."""

    median_s: float
    p99_s: float
    count: int
    body_bytes: int  # as sent: compressed when the server answered with gzip
    series: int
    gzip: bool  # asked for gzip (Accept-Encoding: gzip), as Prometheus always does
    gzipped: bool  # the server answered with Content-Encoding: gzip


def median_time(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of fn over repeats calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def fetch(
    host: str, port: int, path: str = "/metrics", timeout_s: float = 10.0, *, gzip: bool = False
) -> tuple[bytes, bool]:
    """One GET on a new connection, as a scraper without keep-alive does; the body as sent and
    whether it came gzip-encoded."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout_s)
    try:
        conn.request("GET", path, headers={"Accept-Encoding": "gzip"} if gzip else {})
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"GET {path} on {host}:{port} answered {resp.status}")
        return body, resp.getheader("Content-Encoding", "") == "gzip"
    finally:
        conn.close()


def scrape(host: str, port: int, path: str = "/metrics", timeout_s: float = 10.0) -> bytes:
    """One plain GET; the body."""
    return fetch(host, port, path, timeout_s)[0]


def scrape_latency(host: str, port: int, count: int, *, use_gzip: bool = False) -> ScrapeStats:
    """Median and p99 of count sequential scrapes (connect, request, whole body as sent)."""
    times = []
    body, gzipped = b"", False
    for _ in range(count):
        start = time.perf_counter()
        body, gzipped = fetch(host, port, gzip=use_gzip)
        times.append(time.perf_counter() - start)
    text = gzip.decompress(body) if gzipped else body
    series = sum(1 for line in text.splitlines() if line and not line.startswith(b"#"))
    return ScrapeStats(
        median_s=float(np.median(times)),
        p99_s=float(np.percentile(times, 99)),
        count=count,
        body_bytes=len(body),
        series=series,
        gzip=use_gzip,
        gzipped=gzipped,
    )


@dataclass(frozen=True)
class LoadStats:
    """Latency of scrapes from clients scraping in parallel, each on a new connection."""

    clients: int
    count: int  # scrapes in all
    median_s: float
    p99_s: float
    failures: int  # connection errors, non-200 answers and short bodies


def parallel_scrape_latency(
    host: str, port: int, clients: int, per_client: int, *, use_gzip: bool = True
) -> LoadStats:
    """Median and p99 when clients threads each scrape per_client times, started together."""
    times: list[float] = []
    failures = 0
    lock = threading.Lock()
    start_line = threading.Barrier(clients)

    def client() -> None:
        nonlocal failures
        mine: list[float] = []
        bad = 0
        start_line.wait()
        for _ in range(per_client):
            start = time.perf_counter()
            try:
                fetch(host, port, gzip=use_gzip)
            except (OSError, RuntimeError, http.client.HTTPException):
                bad += 1
            mine.append(time.perf_counter() - start)
        with lock:
            times.extend(mine)
            failures += bad

    threads = [threading.Thread(target=client, name=f"scraper-{i}") for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return LoadStats(
        clients=clients,
        count=len(times),
        median_s=float(np.median(times)),
        p99_s=float(np.percentile(times, 99)),
        failures=failures,
    )


def rss_bytes(pid: int | None = None) -> int:
    """Resident set size of a process (this one by default), from /proc."""
    path = f"/proc/{pid or os.getpid()}/status"
    with open(path, encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS in {path}")


def wait_http(host: str, port: int, deadline_s: float, ready: Callable[[bytes], bool]) -> bytes:
    """Poll /metrics until ready(body) holds; TimeoutError past the deadline."""
    end = time.monotonic() + deadline_s
    last_error = "no answer"
    while time.monotonic() < end:
        try:
            body = scrape(host, port, timeout_s=5.0)
            if ready(body):
                return body
            last_error = "not ready"
        except (OSError, RuntimeError, http.client.HTTPException) as exc:
            last_error = str(exc)
        time.sleep(0.2)
    raise TimeoutError(f"{host}:{port} not ready after {deadline_s:.0f} s ({last_error})")
