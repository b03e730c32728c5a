"""Section 2: exporter refresh and rebuild against the direct exact window queries, and accuracy."""

from __future__ import annotations

import logging
import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg

from bench import data, ecm, measure, queries
from bench.plan import Plan
from exporter.config import parse_window

log = logging.getLogger(__name__)

# Per-tower accuracy is reported over towers with enough calls for a p95 to mean something.
TOWER_ACCURACY_MIN_CALLS = 1_000


@dataclass(frozen=True)
class RefreshPoint:
    """One data set: N rows in the longest window over T towers."""

    rows: int
    towers: int
    steady_s: float
    rebuild_s: float
    direct_s: float
    exact_p95_ms: float
    published_p95_ms: float
    tower_max_error: float | None
    towers_checked: int

    @property
    def p95_error(self) -> float:
        """Relative error of the published p95 against percentile_cont."""
        return abs(self.published_p95_ms - self.exact_p95_ms) / self.exact_p95_ms


def direct_once(conn: psycopg.Connection, windows: tuple[str, ...], now: datetime) -> None:
    """Every exact query for every window, as a re-reading exporter runs them each refresh."""
    for w in windows:
        since = now - timedelta(minutes=parse_window(w).minutes)
        for q in queries.DIRECT_QUERIES:
            conn.execute(q, {"since": since, "until": now}).fetchall()


def direct_time(conn: psycopg.Connection, windows: tuple[str, ...], repeats: int) -> float:
    """Median seconds of one full set of direct queries."""
    now = data.db_now(conn)
    direct_once(conn, windows, now)  # warm the cache, as the exporter's own reads are
    return measure.median_time(lambda: direct_once(conn, windows, now), repeats)


def exact_p95(conn: psycopg.Connection) -> tuple[float, dict[str, tuple[float, int]]]:
    """percentile_cont(0.95) over every row, and per tower (p95, calls)."""
    row = conn.execute(queries.EXACT_P95_ALL).fetchone()
    assert row is not None
    towers = {str(t): (float(p), int(n)) for t, p, n in conn.execute(queries.EXACT_P95_PER_TOWER)}
    return float(row[0]), towers


def measure_point(
    conn: psycopg.Connection, url: str, plan: Plan, rows: int, towers: int
) -> RefreshPoint:
    """Rebuild, steady refreshes and the direct baseline on the data now in the table."""
    direct = direct_time(conn, plan.windows, plan.direct_repeats)
    clock = ecm.FakeClock(data.db_now(conn).timestamp())
    with ecm.job(url, plan.windows, clock) as job:
        t0 = time.perf_counter()
        if not job.refresh():
            raise RuntimeError("the exporter's start-up rebuild failed")
        rebuild = time.perf_counter() - t0
        steady: list[float] = []
        for _ in range(plan.steady_refreshes):
            now = clock.advance(plan.refresh_interval_s)
            data.add_calls(
                conn,
                plan.new_rows_per_refresh,
                towers=towers,
                end=datetime.fromtimestamp(now, UTC),
                span_s=plan.refresh_interval_s,
            )
            t0 = time.perf_counter()
            if not job.refresh():
                raise RuntimeError("an exporter refresh failed")
            steady.append(time.perf_counter() - t0)
        exposition = job.exposition()
    longest = max(plan.windows, key=lambda w: parse_window(w).minutes)
    published = ecm.window_value(exposition, "ecm_window_latency_p95_seconds", longest)
    if published is None:
        raise RuntimeError(f"the exporter published no p95 for the {longest} window")
    exact, per_tower = exact_p95(conn)
    pub_towers = ecm.tower_values(exposition, "ecm_tower_window_latency_p95_seconds", longest)
    errors = [
        abs(pub_towers[t] * 1000.0 - p) / p
        for t, (p, n) in per_tower.items()
        if n >= TOWER_ACCURACY_MIN_CALLS and t in pub_towers and p > 0
    ]
    return RefreshPoint(
        rows=rows,
        towers=towers,
        steady_s=statistics.median(steady),
        rebuild_s=rebuild,
        direct_s=direct,
        exact_p95_ms=exact,
        published_p95_ms=published * 1000.0,
        tower_max_error=max(errors) if errors else None,
        towers_checked=len(errors),
    )


def run(url: str, plan: Plan, towers: int) -> list[RefreshPoint]:
    """Grow the window through plan.window_rows for one tower count; one point per size."""
    points = []
    span_s = plan.data_span_minutes * 60.0
    with psycopg.connect(url, autocommit=True) as conn:
        data.reset(conn)
        have = 0
        for rows in sorted(plan.window_rows):
            data.add_calls(conn, rows - have, towers=towers, end=data.db_now(conn), span_s=span_s)
            have = rows
            data.vacuum(conn)
            point = measure_point(conn, url, plan, rows, towers)
            log.info(
                "refresh %d rows %d towers: steady %.1f ms, rebuild %.0f ms, direct %.0f ms",
                rows, towers, point.steady_s * 1e3, point.rebuild_s * 1e3, point.direct_s * 1e3,
            )  # fmt: skip
            points.append(point)
            # The steady refreshes added rows: count them in for the next size.
            have += plan.steady_refreshes * plan.new_rows_per_refresh
    return points
