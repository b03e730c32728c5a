"""Every exporter metric, defined once: name, HELP, labels and type, and the published state.

exporter/render.py writes the exposition from these definitions; tests/exporter/reference.py
builds the same families with prometheus_client as the reference the renderer is checked against.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from prometheus_client.utils import floatToGoString

from exporter.assess import Status, Thresholds
from exporter.counters import LATENCY_BUCKETS_S, CounterRows
from exporter.rollup import TowerResult, WindowResult

QUERIES = ("source", "new_calls", "due_calls", "rebuild", "towers")
SKIP_REASONS = ("future", "past")
REBUILD_REASONS = ("start", "recovery", "database_changed", "rows_removed")
_W = (
    "over the trailing window (label window: the current minute and the whole minutes before it), "
    "refreshed every {interval:g} s"
)


@dataclass(frozen=True)
class Def:
    """A metric's name, HELP text and labels."""

    name: str
    help: str
    labels: tuple[str, ...] = ()
    kind: str = "gauge"  # the exposition's TYPE: gauge, counter or histogram

    def help_text(self, interval_s: float) -> str:
        """HELP with the refresh interval filled in (window gauges name it)."""
        return self.help.format(interval=interval_s)


_DETAIL = (
    ' Per tower for towers with detail; the region\'s other towers summed under tower="" '
    "(sum over all series for the network)."
)
CALLS_TOTAL = Def(
    "ecm_calls_total",
    "Calls stored since the exporter started, any status." + _DETAIL,
    ("region", "tower"),
    "counter",
)
CALLS_FAILED_TOTAL = Def(
    "ecm_calls_failed_total",
    "Failed calls stored since the exporter started, by failure reason." + _DETAIL,
    ("region", "tower", "reason"),
    "counter",
)
CALL_LATENCY = Def(
    "ecm_call_latency_seconds",
    "Call setup latency in seconds of calls stored since the exporter started." + _DETAIL,
    ("region", "tower"),
    "histogram",
)
WINDOW_CALLS = Def("ecm_window_calls", "Calls " + _W + ".", ("window",))
WINDOW_FAILED = Def("ecm_window_failed_calls", "Failed calls " + _W + ".", ("window",))
WINDOW_RATIO = Def(
    "ecm_window_failure_ratio", "Failed calls / calls (0..1) " + _W + ".", ("window",)
)
WINDOW_AVG = Def(
    "ecm_window_latency_avg_seconds", "Mean call setup latency in seconds " + _W + ".", ("window",)
)
WINDOW_P95 = Def(
    "ecm_window_latency_p95_seconds",
    "95th percentile call setup latency in seconds (within 1% of the exact value) " + _W + ".",
    ("window",),
)
WINDOW_STATUS = Def(
    "ecm_window_status", "Window classification 0 OK, 1 WARN, 2 ALERT " + _W + ".", ("window",)
)
REASON_FAILED = Def(
    "ecm_window_reason_failed_calls", "Failed calls by failure reason " + _W + ".",
    ("window", "reason"),
)  # fmt: skip
REASON_RATIO = Def(
    "ecm_window_reason_ratio",
    "Calls that failed with the reason / all calls (0..1) " + _W + ".",
    ("window", "reason"),
)
REGION_CALLS = Def("ecm_region_window_calls", "Calls per region " + _W + ".", ("window", "region"))
REGION_FAILED = Def(
    "ecm_region_window_failed_calls", "Failed calls per region " + _W + ".", ("window", "region")
)
REGION_RATIO = Def(
    "ecm_region_window_failure_ratio",
    "Failed calls / calls per region (0..1), regions with calls only, " + _W + ".",
    ("window", "region"),
)
REGION_P95 = Def(
    "ecm_region_window_latency_p95_seconds",
    "95th percentile call setup latency in seconds per region (within 1%), regions with calls "
    "only, " + _W + ".",
    ("window", "region"),
)
REGION_STATUS = Def(
    "ecm_region_window_status",
    "Region classification 0 OK, 1 WARN, 2 ALERT (the window thresholds) " + _W + ".",
    ("window", "region"),
)
REGION_REASON_FAILED = Def(
    "ecm_region_window_reason_failed_calls",
    "Failed calls per region by failure reason " + _W + ".",
    ("window", "region", "reason"),
)
_PUBLISHED = "published towers only (towers with detail, the top_n worst and the failing towers), "
TOWER_CALLS = Def(
    "ecm_tower_window_calls",
    "Calls per tower, " + _PUBLISHED + _W + ".",
    ("window", "region", "tower"),
)
TOWER_FAILED = Def(
    "ecm_tower_window_failed_calls",
    "Failed calls per tower, " + _PUBLISHED + _W + ".",
    ("window", "region", "tower"),
)
TOWER_RATIO = Def(
    "ecm_tower_window_failure_ratio",
    "Failed calls / calls per tower (0..1), " + _PUBLISHED + "with calls, " + _W + ".",
    ("window", "region", "tower"),
)
TOWER_P95 = Def(
    "ecm_tower_window_latency_p95_seconds",
    "95th percentile call setup latency in seconds per tower, "
    + _PUBLISHED
    + "with calls, "
    + _W
    + ".",
    ("window", "region", "tower"),
)
WORST = Def(
    "ecm_worst_tower_failure_ratio",
    "Failure ratio (0..1) of the worst towers by failure ratio (rank 1 is worst; only towers with "
    "at least min_tower_calls calls and a failure) " + _W + ".",
    ("window", "region", "tower", "rank"),
)
TH_RATIO = Def(
    "ecm_threshold_failure_ratio", "Failure ratio (0..1) above which a window is WARN/ALERT.",
    ("level",),
)  # fmt: skip
TH_P95 = Def(
    "ecm_threshold_latency_p95_seconds",
    "p95 setup latency in seconds above which a window is WARN/ALERT.",
    ("level",),
)
TH_MIN_CALLS = Def("ecm_threshold_min_calls", "Calls a window needs before it is classified.")
DB_UP = Def(
    "ecm_database_up",
    "1 when the last refresh reached the database and no refresh has been running for longer than "
    "three refresh intervals (at least 30 s; a hung database), else 0.",
)
LAST_SUCCESS = Def(
    "ecm_exporter_last_refresh_success_timestamp_seconds",
    "Unix time in seconds of the snapshot the published values were read from (last successful "
    "refresh).",
)
REFRESH_DURATION = Def(
    "ecm_exporter_refresh_duration_seconds",
    "Duration in seconds of the last finished refresh: connect, read, fold and render.",
)
REFRESH_OVERRUNS = Def(
    "ecm_exporter_refresh_overruns_total",
    "Refreshes that took longer than the refresh interval, since start.",
    kind="counter",
)
ROWS_SKIPPED = Def(
    "ecm_exporter_rows_skipped_total",
    "Rows committed since start that no window holds when read: timestamped more than the "
    "clock-skew tolerance ahead of the exporter's clock (future; they enter the windows when "
    "their time comes) or older than the longest window (past).",
    ("reason",),
    "counter",
)
REBUILDS = Def(
    "ecm_exporter_rebuilds_total",
    "Window rebuilds from the database since start, by reason (start, recovery after a failed "
    "refresh, database_changed, rows_removed by DELETE, UPDATE or TRUNCATE).",
    ("reason",),
    "counter",
)
QUERY_DURATION = Def(
    "ecm_exporter_query_duration_seconds",
    "Duration in seconds of the query's last run.",
    ("query",),
)
QUERY_LAST_SUCCESS = Def(
    "ecm_exporter_query_last_success_timestamp_seconds",
    "Unix time in seconds of the query's last success.",
    ("query",),
)
QUERY_FAILURES = Def(
    "ecm_exporter_query_failures_total",
    "Failed runs of the query since start.",
    ("query",),
    "counter",
)
INTERVAL = Def("ecm_exporter_refresh_interval_seconds", "Configured refresh interval in seconds.")
SERIES = Def("ecm_exporter_series", "Series (samples) in the exposition of the last refresh.")
SERIES_BUDGET = Def(
    "ecm_exporter_series_budget",
    "Most series the exposition can hold with the towers, regions, reasons and windows known now "
    "(the formula in docs/metrics.md).",
)
TOWERS = Def(
    "ecm_exporter_towers", "Towers known: the towers table and towers seen in calls since start."
)
DETAIL_TOWERS = Def(
    "ecm_exporter_detail_towers",
    "Towers with per-tower counters and window gauges (tower_detail_max, detail_towers).",
)
REGIONS = Def("ecm_exporter_regions", "Regions known (the towers table's region column).")

# Exposition order: counters, window gauges, self-metrics.
COUNTER_DEFS = (CALLS_TOTAL, CALLS_FAILED_TOTAL, CALL_LATENCY)
WINDOW_DEFS = (
    WINDOW_CALLS, WINDOW_FAILED, WINDOW_RATIO, WINDOW_AVG, WINDOW_P95, WINDOW_STATUS,
    REASON_FAILED, REASON_RATIO, REGION_CALLS, REGION_FAILED, REGION_RATIO, REGION_P95,
    REGION_STATUS, REGION_REASON_FAILED, TOWER_CALLS, TOWER_FAILED, TOWER_RATIO, TOWER_P95, WORST,
)  # fmt: skip
SELF_DEFS = (
    TH_RATIO, TH_P95, TH_MIN_CALLS, DB_UP, LAST_SUCCESS, REFRESH_DURATION, REFRESH_OVERRUNS,
    ROWS_SKIPPED, REBUILDS, QUERY_DURATION, QUERY_LAST_SUCCESS, QUERY_FAILURES, INTERVAL,
    SERIES, SERIES_BUDGET, TOWERS, DETAIL_TOWERS, REGIONS,
)  # fmt: skip
# The histogram's le values as the text format writes them.
BUCKET_LE = tuple([str(floatToGoString(b)) for b in LATENCY_BUCKETS_S] + ["+Inf"])  # type: ignore[no-untyped-call]


@dataclass
class QueryStats:
    """Self-metrics of one query."""

    duration_s: float = math.nan
    last_success: float | None = None
    failures: int = 0


@dataclass
class WindowView:
    """A window's values with their judgement."""

    result: WindowResult
    status: Status
    worst: list[TowerResult]
    region_status: list[Status] = field(default_factory=list)  # result.regions order


@dataclass
class Published:
    """Everything /metrics shows, taken at the end of a refresh."""

    interval_s: float
    thresholds: Thresholds
    counters: CounterRows
    database_up: bool = False
    last_success: float | None = None
    queries: dict[str, QueryStats] = field(default_factory=dict)
    windows: list[WindowView] = field(default_factory=list)  # empty while stale
    refresh_duration_s: float = math.nan  # NaN before the first refresh finished
    overruns: int = 0
    rows_skipped: dict[str, int] = field(default_factory=dict)  # by SKIP_REASONS
    rebuilds: dict[str, int] = field(default_factory=dict)  # by REBUILD_REASONS
    series_budget: int = 0
    towers: int = 0
    detail_towers: int = 0
    regions: int = 0
