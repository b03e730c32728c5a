"""The refresh job: read new calls, update rollups and counters, render the exposition once.

What it publishes is never older or other than it says: window values are those of the rows
visible in one snapshot, timestamped in [oldest kept minute, horizon), whether they were folded in
one by one or rebuilt (the --once report builds them the same way, from the same rows); they are
withdrawn once the data are older than three intervals; a refresh stuck in the database turns
ecm_database_up to 0; another database, or rows removed from this one, cause a rebuild.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import functools
import gzip
import logging
import math
import threading
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import numpy.typing as npt
import psycopg

from ecm_common.clock import Clock, SystemClock
from ecm_common.db import connect, describe
from ecm_common.errors import DatabaseUnavailable, EcmError
from exporter import budget as series
from exporter import queries
from exporter.assess import (
    Thresholds,
    classify,
    classify_values,
    towers_to_publish,
    worst_towers,
)
from exporter.budget import Budget, Sizes, series_budget
from exporter.config import Window
from exporter.counters import Counters
from exporter.metrics import (
    QUERIES,
    REBUILD_REASONS,
    SKIP_REASONS,
    Published,
    QueryStats,
    WindowView,
)
from exporter.render import Renderer
from exporter.rollup import Catalog, Rollup, Rows

log = logging.getLogger(__name__)


@functools.cache
def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc
        return None


def return_free_memory() -> None:
    """Give the heap a rebuild freed back to the OS: glibc keeps freed heap memory otherwise, and
    a rebuild's million-row temporaries would stay resident."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


T = TypeVar("T")

STALE_INTERVALS = 3
MIN_STALE_S = 30.0
STATEMENT_TIMEOUT_S = 300.0  # long enough for a rebuild of a busy hour
ONCE_TIMEOUT_S = 30.0  # --once: a locked table or a hung server ends the report with exit 3
# Rows timestamped up to this far ahead of the exporter's clock wait in their own minute; rows
# further ahead stay out of the windows until the clock comes within this distance of them.
MAX_CLOCK_SKEW_S = 300.0
LOG_EVERY_S = 300.0  # repeated warnings (skewed rows, overruns): one line per this period


def to_rows(catalog: Catalog, cols: queries.Columns) -> Rows:
    """Database columns to catalog-indexed arrays."""
    return Rows.from_columns(
        catalog, cols.towers, cols.statuses, cols.reasons, cols.latency_ms, cols.epoch_s
    )


def view(rollup: Rollup, label: str, th: Thresholds, failing_max: int | None = None) -> WindowView:
    """A window's values and classification, per region, and for the towers it publishes: those
    with detail, the worst and the failing ones."""
    c = rollup.catalog
    ws = rollup.window(label)
    n = len(c.towers)
    limit = Budget().failing_towers_max if failing_max is None else failing_max
    flagged = towers_to_publish(ws.calls[:n], ws.failed[:n], c.towers, th, limit)
    result = rollup.result(label, np.union1d(c.detail_index(), flagged))
    g = result.regions
    regions = [
        classify_values(calls, failed, p95, th)
        for calls, failed, p95 in zip(g.calls.tolist(), g.failed.tolist(), g.p95_ms.tolist(),
                                      strict=True)
    ]  # fmt: skip
    return WindowView(result, classify(result, th), worst_towers(result, th), regions)


def read_range(now: float, longest_minutes: int) -> tuple[float, float]:
    """The event times [since, horizon) a rebuild at now reads: the longest window's minutes, and
    rows up to the clock-skew tolerance ahead."""
    return (math.floor(now / 60) - longest_minutes + 1) * 60.0, now + MAX_CLOCK_SKEW_S


def build(catalog: Catalog, windows: Sequence[Window], rows: Rows, now: float) -> Rollup:
    """Windows at now from the rows read_range selected: the rebuild and --once share this."""
    rollup = Rollup(catalog, [(w.label, w.minutes) for w in windows])
    rollup.add(rows, now)
    return rollup


@dataclass
class WindowRead:
    """What a rebuild read: the towers table in order, the numbered rows and the odd ones."""

    towers: list[tuple[str, str]]
    reasons: list[str]  # the reason list the records are numbered against
    records: queries.Records
    odd: queries.Columns | None

    def __len__(self) -> int:
        return len(self.records.tower)


def read_window(
    conn: psycopg.Connection, reasons: list[str], since: float, until: float
) -> WindowRead:
    """The towers and the calls of [since, until), inside the caller's snapshot."""
    towers = queries.towers(conn)
    records = queries.window_records(conn, since, until, reasons)
    odd = None
    if ((records.tower < 0) | (records.reason == -2)).any():
        odd = queries.odd_window_calls(conn, since, until, reasons)
    return WindowRead(towers, reasons, records, odd)


def window_rows(catalog: Catalog, read: WindowRead) -> Rows:
    """A rebuild's rows in catalog indices (the towers become known, in their regions)."""
    catalog.add_towers(read.towers)
    rec = read.records
    to_index = np.fromiter(
        (catalog.tower_index[t] for t, _ in read.towers), np.int64, len(read.towers)
    )
    ok = (rec.tower >= 0) & (rec.reason != -2)
    # Reasons keep their catalog index once added, so read.reasons' positions are catalog's.
    rows = Rows(to_index[rec.tower[ok]], rec.reason[ok], rec.latency_ms[ok], rec.epoch_s[ok])
    if read.odd is not None:
        rows = Rows.concat([rows, to_rows(catalog, read.odd)])
    return rows


class Throttled:
    """A log line at most once per period; occurrences in between are summed into the next one."""

    def __init__(self, level: int, period_s: float, clock: Clock) -> None:
        self.level = level
        self.period_s = period_s
        self.clock = clock
        self._next = -math.inf
        self._pending = 0

    def __call__(self, n: int, msg: str, *args: object) -> None:
        """Record n occurrences; log msg % (occurrences, *args) when the period has passed."""
        self._pending += n
        now = self.clock.monotonic()
        if self._pending and now >= self._next:
            log.log(self.level, msg, self._pending, *args)
            self._pending = 0
            self._next = now + self.period_s


@dataclass(frozen=True)
class _Exposition:
    """Rendered /metrics text, plain and gzip, the state it shows, and its health when rendered."""

    body: bytes
    gzip: bytes
    base: Published  # as the refresh left it
    published: Published  # as shown: without window values when stale, database down when hung
    read_at: float | None  # monotonic time the data finished reading; None: no window values
    stale: bool
    hung: bool


@dataclass
class _Read:
    """What one refresh transaction read."""

    snapshot: str
    now: float  # wall-clock time just after the snapshot was taken
    towers: list[tuple[str, str]]  # (tower, region) pairs newly read from the towers table
    window: WindowRead | None  # rows for a rebuild
    new: queries.Columns | None  # rows committed since the previous snapshot
    due: queries.Columns | None  # rows stored earlier whose timestamps the horizon has reached


class RefreshJob:
    """State kept between refreshes, and the prepared exposition the HTTP server serves."""

    def __init__(
        self,
        url: str,
        windows: Sequence[Window],
        thresholds: Thresholds,
        interval_s: float,
        clock: Clock | None = None,
        budget: Budget | None = None,
    ) -> None:
        self.url = url
        self.windows = list(windows)
        self.thresholds = thresholds
        self.interval_s = interval_s
        self.clock: Clock = clock or SystemClock()
        self.budget = budget or Budget()
        self.catalog = Catalog(self.budget.tower_detail_max, self.budget.detail_towers)
        self.counters = Counters(self.catalog)
        self.rollup: Rollup | None = None
        self.prev: str | None = None
        self.horizon = -math.inf  # rows timestamped at or after this are not folded yet
        self.source: queries.Source | None = None
        self.conn: psycopg.Connection | None = None
        self._system_id = False  # may this connection's role read the system identifier?
        self.queries = {name: QueryStats() for name in QUERIES}
        self.rows_skipped = dict.fromkeys(SKIP_REASONS, 0)
        self.rebuilds = dict.fromkeys(REBUILD_REASONS, 0)
        self.overruns = 0
        self.refresh_duration_s = math.nan
        self.reached = False  # the last refresh reached the database
        self.last_success: float | None = None  # snapshot time of the published values
        # Data older than this are withdrawn, and a refresh running longer is a hung database.
        self.stale_after_s = max(STALE_INTERVALS * interval_s, MIN_STALE_S)
        self._rebuild_reason = "start"
        self._running_since: float | None = None
        self._failing = False
        self._future_log = Throttled(logging.WARNING, LOG_EVERY_S, self.clock)
        self._past_log = Throttled(logging.INFO, LOG_EVERY_S, self.clock)
        self._overrun_log = Throttled(logging.WARNING, LOG_EVERY_S, self.clock)
        self._lock = threading.Lock()  # one refresh at a time
        self._render_lock = threading.Lock()  # one rendering at a time (refresh or scrape)
        self.renderer = Renderer()
        self._publish(self._published([]), None, self.clock.monotonic())

    @property
    def database_up(self) -> bool:
        """What ecm_database_up shows now: reached by the last refresh, and no refresh hung."""
        return self.published.database_up

    @property
    def published(self) -> Published:
        """The state /metrics shows now."""
        return self._current().published

    def exposition(self) -> bytes:
        """The text rendered at the end of the last refresh (a scrape never touches the DB)."""
        return self._current().body

    def exposition_gzip(self) -> bytes:
        """The same text, gzip-compressed once per refresh for scrapers that accept gzip."""
        return self._current().gzip

    def refresh(self) -> bool:
        """One refresh; never raises: failures become self-metrics and one log line per outage."""
        with self._lock:
            start = self.clock.monotonic()
            self._running_since = start
            views: list[WindowView] = []
            read_at: float | None = None
            failures_before = sum(q.failures for q in self.queries.values())
            main_query = "rebuild" if self.rollup is None else "new_calls"
            had_rollup = self.rollup is not None
            try:
                read_at = self._refresh()
                assert self.rollup is not None
                views = [
                    view(self.rollup, w.label, self.thresholds, self.budget.failing_towers_max)
                    for w in self.windows
                ]
                ok = True
            except (DatabaseUnavailable, psycopg.OperationalError, psycopg.InterfaceError) as exc:
                self._lost(describe(exc) if isinstance(exc, psycopg.Error) else str(exc))
                ok = False
            except psycopg.Error as exc:
                self._fail(f"query failed: {describe(exc)}")
                ok = False
            except Exception as exc:
                log.exception("refresh failed unexpectedly; rollups will be rebuilt")
                self._fail(f"unexpected error: {exc}", logged=True)
                ok = False
            if not ok:
                if had_rollup:  # else the pending reason (start, database_changed) stands
                    self._rebuild_reason = "recovery"
                self.rollup = None
                read_at = None
                if sum(q.failures for q in self.queries.values()) == failures_before:
                    # Failed before a named query ran (connect, snapshot): charge the main query.
                    self.queries[main_query].failures += 1
            else:
                if self._failing:
                    log.info("refresh succeeded again (database reachable, rollups rebuilt)")
                self._failing = False
                self.reached = True
            self._publish(self._published(views), read_at, start)
            self._running_since = None
            return ok

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._drop_connection()

    # -- publishing ----------------------------------------------------------------------------

    def sizes(self) -> Sizes:
        """What the series budget depends on, as known now."""
        c = self.catalog
        return Sizes(
            towers=len(c.towers),
            detail=len(c.detail),
            regions=len(c.regions),
            reasons=len(c.reasons),
            windows=len(self.windows),
            top_n=self.thresholds.top_n,
            failing_max=self.budget.failing_towers_max,
        )

    def _published(self, views: list[WindowView]) -> Published:
        sizes = self.sizes()
        return Published(
            interval_s=self.interval_s,
            thresholds=self.thresholds,
            counters=self.counters.snapshot(),
            database_up=self.reached,
            last_success=self.last_success,
            queries={
                k: QueryStats(v.duration_s, v.last_success, v.failures)
                for k, v in self.queries.items()
            },
            windows=views,
            refresh_duration_s=self.refresh_duration_s,
            overruns=self.overruns,
            rows_skipped=dict(self.rows_skipped),
            rebuilds=dict(self.rebuilds),
            series_budget=series_budget(sizes),
            towers=sizes.towers,
            detail_towers=sizes.detail,
            regions=sizes.regions,
        )

    def _publish(self, p: Published, read_at: float | None, start: float) -> None:
        """Render a refresh's state; its duration runs from start to the end of rendering and
        compressing the data (all but the few self-metric lines that publish it)."""
        with self._render_lock:
            data = self.renderer.render_data(p)
            # Level 1: a tenth of the size at 5,000 towers for little time; gzip framing, mtime 0.
            packer = zlib.compressobj(1, zlib.DEFLATED, 31)
            packed = packer.compress(data)
            if self._running_since is not None:  # a refresh, not the initial empty state
                self.refresh_duration_s = self.clock.monotonic() - start
                if self.refresh_duration_s > self.interval_s:
                    self.overruns += 1
                    self._overrun_log(
                        1,
                        "%d refresh(es) took longer than the %g s interval (last: %.1f s); "
                        "values are published late: raise --interval or look at the database",
                        self.interval_s,
                        self.refresh_duration_s,
                    )
                p = dataclasses.replace(
                    p, refresh_duration_s=self.refresh_duration_s, overruns=self.overruns
                )
            tail = self.renderer.render_self(p, self.renderer.data_series)
            gz = packed + packer.compress(tail) + packer.flush()
            self._exposition = _Exposition(data + tail, gz, p, p, read_at, False, False)

    def _health(self, exp: _Exposition) -> tuple[bool, bool]:
        """(stale, hung) now: data read too long ago, a refresh running too long."""
        now = self.clock.monotonic()
        stale = exp.read_at is not None and now - exp.read_at > self.stale_after_s
        running = self._running_since
        hung = running is not None and now - running > self.stale_after_s
        return stale, hung

    def _current(self) -> _Exposition:
        """The cached exposition, re-rendered when its data went stale or a refresh hangs."""
        exp = self._exposition
        if self._health(exp) == (exp.stale, exp.hung):
            return exp
        with self._render_lock:
            exp = self._exposition
            stale, hung = self._health(exp)
            if (stale, hung) == (exp.stale, exp.hung):
                return exp
            if stale and not exp.stale:
                log.warning(
                    "no refresh finished reading for %.0f s; window metrics withdrawn as stale",
                    self.clock.monotonic() - (exp.read_at or 0.0),
                )
            if hung and not exp.hung:
                log.warning(
                    "a refresh has been running for more than %.0f s (database hung or "
                    "emergency_calls locked?); ecm_database_up is 0 until it ends",
                    self.stale_after_s,
                )
            base = exp.base
            shown = dataclasses.replace(
                base,
                windows=[] if stale else base.windows,
                database_up=base.database_up and not hung,
            )
            body = self.renderer.render(shown)
            gz = gzip.compress(body, compresslevel=1, mtime=0)
            exp = self._exposition = _Exposition(body, gz, base, shown, exp.read_at, stale, hung)
            return exp

    # -- the database --------------------------------------------------------------------------

    def _timed(self, name: str, fn: Callable[[], T]) -> T:
        """Run one query, recording its duration and outcome under its name."""
        q = self.queries[name]
        start = self.clock.monotonic()
        try:
            out = fn()
        except BaseException:
            q.duration_s = self.clock.monotonic() - start
            q.failures += 1
            raise
        q.duration_s = self.clock.monotonic() - start
        q.last_success = self.clock.time()
        log.debug("query %s took %.3f s", name, q.duration_s)
        return out

    def _connection(self) -> psycopg.Connection:
        if self.conn is None or self.conn.closed:
            conn = connect(self.url, app="ecm-exporter")
            try:
                queries.session_setup(conn, timeout_s=max(self.stale_after_s, STATEMENT_TIMEOUT_S))
                self._system_id = queries.can_read_system_id(conn)
            except BaseException:
                conn.close()
                raise
            self.conn = conn
        return self.conn

    def _drop_connection(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(psycopg.Error):
                self.conn.close()
        self.conn = None

    def _lost(self, reason: str) -> None:
        """The database is unreachable: withdraw window values, rebuild when it returns."""
        self._drop_connection()
        self.reached = False
        if not self._failing:
            log.warning(
                "database unavailable (%s); window metrics withdrawn until it returns", reason
            )
        self._failing = True

    def _fail(self, reason: str, *, logged: bool = False) -> None:
        if not self._failing and not logged:
            log.warning("refresh failed (%s); window metrics withdrawn until it succeeds", reason)
        self._failing = True

    def _check_source(self, src: queries.Source) -> None:
        """Another database, or rows removed from this one: the windows must be rebuilt."""
        if self.source is None:
            return
        if not src.same_database(self.source):
            log.warning(
                "the exporter now reads another database (or a restored copy): windows rebuilt; "
                "counters continue from now, calls stored there before are not counted"
            )
            self.prev = None  # its transaction ids say nothing about this database
            self.rollup = None
            self._rebuild_reason = "database_changed"
        elif self.rollup is not None and src.rows_removed_since(self.source):
            log.info("rows were deleted, updated or truncated in emergency_calls: windows rebuilt")
            self.rollup = None
            self._rebuild_reason = "rows_removed"

    def _read(self, conn: psycopg.Connection) -> _Read:
        """One REPEATABLE READ transaction: towers, then a rebuild and/or the new rows."""
        with queries.snapshot_transaction(conn) as snap:
            now = self.clock.time()
            towers: list[tuple[str, str]] = []
            # A small network is read whole, so its new towers are published with zeros; a large
            # one only looks up the unknown towers its new calls name (below).
            small = len(self.catalog.towers) <= self.budget.tower_detail_max
            if small and self.rollup is not None:
                towers = self._timed("towers", lambda: queries.towers(conn))
            window = new = due = None
            prev = self.prev
            if self.rollup is None:
                longest = max(w.minutes for w in self.windows)
                since, until = read_range(now, longest)
                reasons = list(self.catalog.reasons)
                window = self._timed("rebuild", lambda: read_window(conn, reasons, since, until))
                # Counters continue across a lost connection when the snapshot history is intact.
                if prev is not None:
                    if queries.continuous(conn, prev):
                        new = self._timed("new_calls", lambda: queries.new_calls(conn, prev))
                    else:
                        log.warning(
                            "the database's transaction ids went back (restored or replaced?): "
                            "counters continue from now; calls committed meanwhile are not counted"
                        )
            else:
                assert prev is not None
                new = self._timed("new_calls", lambda: queries.new_calls(conn, prev))
                lo, hi = self.horizon, max(self.horizon, now + MAX_CLOCK_SKEW_S)
                if hi > lo:
                    due = self._timed("due_calls", lambda: queries.due_calls(conn, prev, lo, hi))
            unknown = {
                t for cols in (new, due) if cols is not None for t in cols.towers
            } - self.catalog.tower_index.keys()
            if unknown and not towers:
                ids = sorted(unknown)
                towers = self._timed("towers", lambda: queries.towers_named(conn, ids))
        return _Read(snap, now, towers, window, new, due)

    # -- folding -------------------------------------------------------------------------------

    def _refresh(self) -> float:
        """Read and fold; returns the monotonic time the read finished."""
        conn = self._connection()
        src = self._timed("source", lambda: queries.source(conn, system_id=self._system_id))
        self._check_source(src)
        read = self._read(conn)
        read_at = self.clock.monotonic()
        now = read.now
        self.catalog.add_towers(read.towers)
        # The rebuild's towers become known first, in the regions the towers table gives them.
        rebuilt = window_rows(self.catalog, read.window) if read.window is not None else None
        new = to_rows(self.catalog, read.new) if read.new is not None else Rows.empty()
        if read.window is not None and rebuilt is not None:
            rollup = build(self.catalog, self.windows, rebuilt, now)
            self.horizon = now + MAX_CLOCK_SKEW_S
            longest = max(self.windows, key=lambda w: w.minutes).label
            log.info("rollups rebuilt from %d calls in the last %s", len(read.window), longest)
            log.info("%s", series.describe(self.sizes()))
            self.rebuilds[self._rebuild_reason] += 1
            self.rollup = rollup
            del rebuilt
            read.window = None  # the rows are folded: free them before trimming
            return_free_memory()
            future = self._skipped(new, now)
        else:
            assert self.rollup is not None
            self.horizon = max(self.horizon, now + MAX_CLOCK_SKEW_S)
            future = self._skipped(new, now)
            self.rollup.add(new.take(~future), now)
            if read.due is not None and len(read.due):
                self.rollup.add(to_rows(self.catalog, read.due), now)
                log.info("%d calls stored earlier reached the clock-skew horizon", len(read.due))
            log.debug("refresh: %d new calls", len(new))
        self.counters.add(new)
        self.counters.add(Rows.empty())  # new towers start at 0
        self.prev = read.snapshot
        self.source = src
        self.last_success = now
        return read_at

    def _skipped(self, new: Rows, now: float) -> npt.NDArray[np.bool_]:
        """Count and log new rows no window holds; returns the mask of those beyond the horizon."""
        future = new.epoch_s >= self.horizon
        longest = max(w.minutes for w in self.windows)
        past = int(np.count_nonzero(np.floor(new.epoch_s / 60) < read_range(now, longest)[0] / 60))
        n_future = int(np.count_nonzero(future))
        self.rows_skipped["future"] += n_future
        self.rows_skipped["past"] += past
        self._future_log(
            n_future,
            "%d call(s) timestamped more than %g s ahead of this clock are left out of the "
            "windows until their time comes (a writer's clock is wrong?)",
            MAX_CLOCK_SKEW_S,
        )
        self._past_log(past, "%d call(s) older than the longest window were committed (late)")
        return future


def compute_once(
    url: str,
    window: Window,
    thresholds: Thresholds,
    clock: Clock | None = None,
    *,
    timeout_s: float = ONCE_TIMEOUT_S,
) -> WindowView:
    """The --once report's values: the rebuild path of /metrics, for one window."""
    clock = clock or SystemClock()
    catalog = Catalog()
    with connect(url, app="ecm-exporter-once") as conn:
        try:
            queries.session_setup(conn, timeout_s)
            with queries.snapshot_transaction(conn):
                now = clock.time()
                since, until = read_range(now, window.minutes)
                read = read_window(conn, list(catalog.reasons), since, until)
        except psycopg.errors.QueryCanceled:
            raise DatabaseUnavailable(
                f"the database did not answer within {timeout_s:g} s "
                "(statement timeout; is emergency_calls locked?)"
            ) from None
        except psycopg.OperationalError as exc:
            raise DatabaseUnavailable(f"database went away: {describe(exc)}") from None
        except psycopg.Error as exc:
            raise EcmError(f"query failed: {describe(exc)}") from None
    rows = window_rows(catalog, read)
    return view(build(catalog, [window], rows, now), window.label, thresholds)
