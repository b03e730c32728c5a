"""Turning measurements into table rows, each beside its baseline and goal."""

from __future__ import annotations

from bench.memory import MemorySample
from bench.plan import Plan
from bench.qexporter import QeResult
from bench.refresh import RefreshPoint
from bench.report import Row, verdict
from bench.served import Served
from bench.writer import WriterResult

WRITER_GOAL = 0.5
GROWTH_GOAL = 1.5
DIRECT_GOAL = 10.0
P95_GOAL = 0.01
SCRAPE_P99_GOAL_S = 0.010
SCRAPE_GOAL_TOWERS = 5_000
# 50 parallel scrapers: no one-second tails (the old server's backlog of 5 gave p99 ~ 1-3 s).
LOAD_P99_GOAL_S = 0.250
LOAD_GOAL_CLIENTS = 50
MEMORY_FLAT = 1.10


def ms(seconds: float) -> str:
    """Milliseconds with sensible precision."""
    v = seconds * 1e3
    return f"{v:,.2f} ms" if v < 10 else f"{v:,.1f} ms" if v < 100 else f"{v:,.0f} ms"


def mib(n: int) -> str:
    """Mebibytes."""
    return f"{n / 2**20:,.1f} MiB"


def writer_rows(w: WriterResult) -> list[Row]:
    """Section 1."""
    return [
        Row(
            "1",
            f"generator rows/s: backfill of {w.rows:,} rows "
            f"(generate + COPY, batch {w.batch_size})",
            f"{w.generator_rows_s:,.0f} rows/s",
            f"one binary COPY of the same pre-built rows: {w.raw_rows_s:,.0f} rows/s",
            f"{w.ratio:.2f}",
            f">= {WRITER_GOAL:.2f} of the limit",
            verdict(w.ratio >= WRITER_GOAL),
        )
    ]


def refresh_rows(points: list[RefreshPoint], plan: Plan) -> list[Row]:
    """Section 2: per data set, then growth and accuracy."""
    rows: list[Row] = []
    for p in sorted(points, key=lambda p: (p.towers, p.rows)):
        speedup = p.direct_s / p.steady_s if p.steady_s else 0.0
        is_goal = p.rows == plan.largest
        rows.append(
            Row(
                "2",
                f"steady refresh, {p.rows:,} rows in 1h, {p.towers:,} towers "
                f"(+{plan.new_rows_per_refresh} new rows)",
                ms(p.steady_s),
                f"direct exact queries: {ms(p.direct_s)}",
                f"direct/ECM {speedup:,.1f}",
                f">= {DIRECT_GOAL:.0f}x at {plan.largest:,}" if is_goal else "-",
                verdict(speedup >= DIRECT_GOAL) if is_goal else "-",
            )
        )
        rows.append(
            Row(
                "2",
                f"start-up rebuild, {p.rows:,} rows, {p.towers:,} towers",
                ms(p.rebuild_s),
                f"direct exact queries: {ms(p.direct_s)}",
                f"rebuild/direct {p.rebuild_s / p.direct_s:,.1f}" if p.direct_s else "-",
            )
        )
    for towers in sorted({p.towers for p in points}):
        pts = sorted((p for p in points if p.towers == towers), key=lambda p: p.rows)
        small, big = pts[0], pts[-1]
        growth = big.steady_s / small.steady_s if small.steady_s else 0.0
        rows.append(
            Row(
                "2",
                f"refresh growth {small.rows:,} -> {big.rows:,} rows, {towers:,} towers",
                ms(big.steady_s),
                f"refresh at {small.rows:,} rows: {ms(small.steady_s)}",
                f"{growth:.2f}",
                f"<= {GROWTH_GOAL}",
                verdict(growth <= GROWTH_GOAL),
            )
        )
    for p in sorted(points, key=lambda p: (p.towers, p.rows)):
        tower_note = (
            f"; worst tower {p.tower_max_error:.2%} over {p.towers_checked} towers >= 1,000 calls"
            if p.tower_max_error is not None
            else ""
        )
        rows.append(
            Row(
                "2",
                f"published p95 (1h), {p.rows:,} rows, {p.towers:,} towers{tower_note}",
                f"{p.published_p95_ms:,.1f} ms",
                f"percentile_cont(0.95): {p.exact_p95_ms:,.1f} ms",
                f"{p.p95_error:.3%} error",
                f"<= {P95_GOAL:.0%}",
                verdict(p.p95_error <= P95_GOAL),
            )
        )
    return rows


def qe_rows(qe: QeResult, ecm_served: Served | None, ecm_refresh: RefreshPoint | None) -> list[Row]:
    """Section 3: the generic exporter beside ECM on the same data."""
    if not qe.available:
        return [Row("3", "query-exporter on the same window queries", "-", f"not run: {qe.reason}")]
    rows: list[Row] = []
    label = f"query-exporter {qe.version}"
    if ecm_refresh is not None:
        rows.append(
            Row(
                "3",
                f"refresh cost, {ecm_refresh.rows:,} rows, {ecm_refresh.towers:,} towers",
                ms(ecm_refresh.steady_s),
                f"{label} (its query_latency x windows): {ms(qe.refresh_s)}",
                f"query-exporter/ECM {qe.refresh_s / ecm_refresh.steady_s:,.2f}"
                if ecm_refresh.steady_s
                else "-",
            )
        )
    if ecm_served is not None and qe.scrape is not None:
        ecm_gz, qe_gz = ecm_served.scrape_gzip, qe.scrape
        answered = "gzip" if qe_gz.gzipped else "plain text (it ignores Accept-Encoding)"
        rows.append(
            Row(
                "3",
                f"scrape p99 (median) with Accept-Encoding: gzip, same data; {label} answers "
                f"{answered}",
                f"{ms(ecm_gz.p99_s)} ({ms(ecm_gz.median_s)})",
                f"{label}: {ms(qe_gz.p99_s)} ({ms(qe_gz.median_s)}) over {qe_gz.count} scrapes",
                f"query-exporter/ECM {qe_gz.p99_s / ecm_gz.p99_s:,.1f}",
            )
        )
        rows.append(
            Row(
                "3",
                "resident memory after its refreshes, same data",
                mib(ecm_served.rss_bytes),
                f"{label}: {mib(qe.rss_bytes)}",
                f"query-exporter/ECM {qe.rss_bytes / ecm_served.rss_bytes:.2f}",
            )
        )
    return rows


def scrape_rows(served: list[Served]) -> list[Row]:
    """Section 4: scrape latency at each tower count; the goal is judged as Prometheus scrapes."""
    rows = []
    for s in sorted(served, key=lambda s: s.towers):
        is_goal = s.towers >= SCRAPE_GOAL_TOWERS
        for stats in (s.scrape_gzip, s.scrape):
            how = "gzip (as Prometheus scrapes)" if stats.gzip else "plain text"
            judged = is_goal and stats.gzip
            rows.append(
                Row(
                    "4",
                    f"scrape median / p99 over {stats.count} scrapes, {s.towers:,} towers, {how} "
                    f"({stats.series:,} series, {stats.body_bytes / 1024:,.0f} KiB sent)",
                    f"{ms(stats.median_s)} / {ms(stats.p99_s)}",
                    goal=f"p99 < {SCRAPE_P99_GOAL_S * 1e3:.0f} ms at {SCRAPE_GOAL_TOWERS:,}"
                    if judged
                    else "-",
                    result=verdict(stats.p99_s < SCRAPE_P99_GOAL_S) if judged else "-",
                )
            )
    return rows


def load_rows(served: list[Served]) -> list[Row]:
    """Section 4 under load: gzip scrapes from parallel clients beside one client's."""
    rows = []
    for s in served:
        if not s.load:
            continue
        single = min(s.load, key=lambda load: load.clients)
        for load in sorted(s.load, key=lambda load: load.clients):
            judged = load.clients == LOAD_GOAL_CLIENTS
            ok = load.p99_s < LOAD_P99_GOAL_S and load.failures == 0
            rows.append(
                Row(
                    "4",
                    f"scrape median / p99, {load.clients} parallel client(s), "
                    f"{load.count // load.clients} scrapes each, {s.towers:,} towers, gzip "
                    f"({load.failures} failed)",
                    f"{ms(load.median_s)} / {ms(load.p99_s)}",
                    f"1 client: {ms(single.median_s)} / {ms(single.p99_s)}",
                    f"p99 {load.p99_s / single.p99_s:,.1f}x one client" if single.p99_s else "-",
                    f"p99 < {LOAD_P99_GOAL_S * 1e3:.0f} ms, none failed" if judged else "-",
                    verdict(ok) if judged else "-",
                )
            )
    return rows


def memory_rows(samples: list[MemorySample], plan: Plan, towers: int) -> list[Row]:
    """Section 5: memory at the start, middle and end of the simulated traffic."""
    start, middle, end = samples[0], samples[len(samples) // 2], samples[-1]
    growth = end.rss_bytes / middle.rss_bytes if middle.rss_bytes else 0.0
    what = (
        f"{plan.memory_minutes} simulated minutes, {plan.memory_rows_per_minute:,} rows/min, "
        f"{towers:,} towers, minutes {start.minute}/{middle.minute}/{end.minute}"
    )
    return [
        Row(
            "5",
            f"exporter RSS start / middle / end ({what})",
            f"{mib(start.rss_bytes)} / {mib(middle.rss_bytes)} / {mib(end.rss_bytes)}",
            f"middle: {mib(middle.rss_bytes)}",
            f"{growth:.3f} end/middle",
            f"flat (<= {MEMORY_FLAT})",
            verdict(growth <= MEMORY_FLAT),
        ),
        Row(
            "5",
            "Python heap (tracemalloc) start / middle / end",
            f"{mib(start.traced_bytes)} / {mib(middle.traced_bytes)} / {mib(end.traced_bytes)}",
            ratio=f"{end.traced_bytes / max(middle.traced_bytes, 1):.3f} end/middle",
        ),
    ]
