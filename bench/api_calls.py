"""Section 11: the ECM API's calls and analytics, at 1M and 10M calls. GET /v1/calls at page 1
and page 1,000 (keyset pages; goal: flat) beside the same page 1,000 by OFFSET in SQL; the 30-day
and 24-hour summaries from the per-minute rollups beside the same numbers (percentile_cont) from
raw calls, and the summary at the largest size against the smallest (goal: flat).

    python -m bench.api_calls [--quick]     # this section alone, on a throwaway cluster
"""

from __future__ import annotations

import logging
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import requests
from prometheus_client import CollectorRegistry

from api.app import build
from api.config import ApiSettings
from bench import data, measure
from bench.report import Row, run_alone, verdict
from ecm_common.db import connect
from ecm_common.service import BackgroundServer

log = logging.getLogger(__name__)

PAGE = 100
DAY_S = 86400.0
FLAT_GOAL = 1.5
SUMMARY_P99_GOAL_S = 0.05
PAGE_REPEATS = 200  # page 1 and page 1,000, in turns
FOLD_ROWS = 500_000  # each fold well inside the statement timeout, even at 10M calls
OFFSET_PAGE = """SELECT call_id FROM emergency_calls ORDER BY "timestamp" DESC, call_id DESC
 OFFSET %(offset)s LIMIT %(limit)s"""
RAW_SUMMARY = """SELECT count(*), count(*) FILTER (WHERE status = 'FAILED'), avg(latency_ms),
       percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms)
  FROM emergency_calls WHERE "timestamp" >= %(from)s AND "timestamp" < %(to)s"""
NOTE = (
    "11: the ECM API in the benchmark process (uvicorn on 127.0.0.1, one client on a keep-alive "
    "session). Calls spread over 30 days on 100 towers, VACUUM ANALYZEd, folded into the "
    "per-minute rollups by the API's own job before timing. Page 1 and page 1,000 of GET "
    "/v1/calls (100 rows a page; page 1,000 reached by following next_cursor; medians of 200 "
    "of each, timed in turns) against the same page 1,000 by OFFSET in plain SQL; the summary "
    "over 30 days and 24 hours from the rollups (median and p99 of the repeats) against "
    "count/avg/percentile_cont over the raw calls."
)


@dataclass(frozen=True)
class ApiCallsPlan:
    """Sizes of section 11: the table is filled anew at each size."""

    sizes: tuple[int, ...]
    repeats: int


QUICK_PLAN = ApiCallsPlan(sizes=(110_000, 220_000), repeats=5)  # page 1,000 needs 100,000
FULL_PLAN = ApiCallsPlan(sizes=(1_000_000, 10_000_000), repeats=30)


@dataclass(frozen=True)
class ApiCallsResult:
    """Section 11's timings, in seconds."""

    rows: int
    page1_s: float
    page1000_s: float
    offset1000_s: float
    summaries: tuple[tuple[str, float, float, float], ...]  # (span, median, p99, raw)


def _timed(session: requests.Session, url: str, params: dict[str, str], n: int) -> list[float]:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        resp = session.get(url, params=params, timeout=60)
        times.append(time.perf_counter() - start)
        resp.raise_for_status()
    return times


def _pages(s: requests.Session, url: str, at: dict[str, str]) -> tuple[float, float]:
    """Medians of page 1 and of the page at `at`, timed in turns: a few milliseconds each, so
    timed apart they differed by whatever else the machine did in between."""
    first: list[float] = []
    deep: list[float] = []
    for _ in range(PAGE_REPEATS):
        first += _timed(s, url, {"limit": str(PAGE)}, 1)
        deep += _timed(s, url, at, 1)
    return statistics.median(first), statistics.median(deep)


def _p99(times: list[float]) -> float:
    return sorted(times)[min(len(times) - 1, round(0.99 * (len(times) - 1)))]


def run(url: str, plan: ApiCallsPlan) -> list[ApiCallsResult]:
    """Every size of the plan, smallest first."""
    out = []
    for size in sorted(plan.sizes):
        log.warning("11 API calls and summaries at %s calls", f"{size:,}")
        out.append(run_size(url, size, plan.repeats))
    return out


def run_size(url: str, size: int, repeats: int) -> ApiCallsResult:
    """Load the calls, fold them, time the routes and their baselines."""
    with connect(url, autocommit=True, app="ecm-bench") as conn:
        data.reset(conn)
        end = data.db_now(conn)
        data.add_calls(conn, size, towers=100, end=end, span_s=30 * DAY_S)
        data.vacuum(conn)
    settings = ApiSettings.model_validate(
        {"port": 0, "listen_address": "127.0.0.1", "db_timeout": "60s", "max_fold_rows": FOLD_ROWS}
    )
    api = build(settings, url, CollectorRegistry(), jobs=False)
    for _ in range(size // FOLD_ROWS + 20):
        if api.call_rollup.run():
            break
    else:
        raise RuntimeError("the call rollups did not catch up (see the log)")
    base = ""
    with BackgroundServer(api.app, settings.http) as srv, requests.Session() as s:
        base = srv.url
        calls = f"{base}/v1/calls"
        cursor = None
        for _ in range(999):
            params = {"limit": str(PAGE), **({"cursor": cursor} if cursor else {})}
            cursor = s.get(calls, params=params, timeout=60).json()["next_cursor"]
        assert cursor is not None, "fewer than 1,000 pages"
        page1, page1000 = _pages(s, calls, {"limit": str(PAGE), "cursor": cursor})
        summaries = []
        for span, days in (("30 days", 30.0), ("24 hours", 1.0)):
            frm, to = end + timedelta(seconds=1) - timedelta(days=days), end + timedelta(seconds=1)
            window = {"from": frm.isoformat(), "to": to.isoformat()}
            times = _timed(s, f"{base}/v1/analytics/summary", window, repeats)
            raw = _raw(url, frm, to, max(1, repeats // 5))
            summaries.append((span, statistics.median(times), _p99(times), raw))
    api.call_rollup.close()
    with connect(url, autocommit=True, app="ecm-bench") as conn:
        params = {"offset": 999 * PAGE, "limit": PAGE}
        offset = measure.median_time(lambda: conn.execute(OFFSET_PAGE, params).fetchall(), repeats)
    return ApiCallsResult(size, page1, page1000, offset, tuple(summaries))


def _raw(url: str, frm: datetime, to: datetime, repeats: int) -> float:
    with connect(url, autocommit=True, app="ecm-bench") as conn:
        return measure.median_time(
            lambda: conn.execute(RAW_SUMMARY, {"from": frm, "to": to}).fetchall(), repeats
        )


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def rows(results: list[ApiCallsResult]) -> list[Row]:
    """The table rows of section 11: each size, then the summary's growth across sizes."""
    out = [row for r in results for row in _size_rows(r)]
    small, large = results[0], results[-1]
    if large.rows > small.rows:
        # Medians: a p99 of a few repeats is one sample and moves by itself.
        grew = large.summaries[0][1] / small.summaries[0][1]
        out.append(
            Row(
                "11",
                f"summary over {large.summaries[0][0]}, median at {large.rows:,} against "
                f"{small.rows:,} calls",
                _ms(large.summaries[0][1]),
                _ms(small.summaries[0][1]),
                f"{grew:.2f}x for {large.rows / small.rows:g}x the calls",
                f"<= {FLAT_GOAL}x",
                verdict(grew <= FLAT_GOAL),
            )
        )
    return out


def _size_rows(r: ApiCallsResult) -> list[Row]:
    """One size's rows."""
    flat = r.page1000_s / r.page1_s
    out = [
        Row("11", f"GET /v1/calls page 1, {r.rows:,} calls", _ms(r.page1_s)),
        Row(
            "11",
            "GET /v1/calls page 1,000 (keyset)",
            _ms(r.page1000_s),
            f"page 1,000 by OFFSET in SQL: {_ms(r.offset1000_s)}",
            f"{flat:.2f}x page 1",
            f"<= {FLAT_GOAL}x page 1",
            verdict(flat <= FLAT_GOAL),
        ),
    ]
    for span, median, p99, raw in r.summaries:
        out.append(
            Row(
                "11",
                f"GET /v1/analytics/summary over {span} (rollups, {r.rows:,} calls), median / p99",
                f"{_ms(median)} / {_ms(p99)}",
                f"the same from raw calls (percentile_cont): {_ms(raw)}",
                f"{median / raw:.3f}x",
                f"p99 < {SUMMARY_P99_GOAL_S * 1000:g} ms",
                verdict(p99 < SUMMARY_P99_GOAL_S),
            )
        )
    return out


def main(argv: list[str] | None = None) -> int:
    """This section alone on a throwaway cluster; prints its rows."""
    return run_alone(
        "python -m bench.api_calls",
        __doc__,
        argv,
        lambda url, quick: rows(run(url, QUICK_PLAN if quick else FULL_PLAN)),
    )


if __name__ == "__main__":
    sys.exit(main())
