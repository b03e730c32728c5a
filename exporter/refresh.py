"""The refresh job: read new calls, update rollups and counters, render the exposition once."""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import psycopg
from prometheus_client import CollectorRegistry

from ecm_common.db import connect, describe
from ecm_common.errors import DatabaseUnavailable, EcmError
from exporter import queries
from exporter.assess import Thresholds, classify, worst_towers
from exporter.config import Window
from exporter.counters import Counters
from exporter.metrics import QUERIES, EcmCollector, Published, QueryStats, WindowView
from exporter.render import Renderer
from exporter.rollup import Catalog, Rollup, Rows

log = logging.getLogger(__name__)

Clock = Callable[[], float]
STALE_INTERVALS = 3
MIN_STALE_S = 30.0
STATEMENT_TIMEOUT_S = 300.0  # long enough for a rebuild of a busy hour


def to_rows(catalog: Catalog, cols: queries.Columns) -> Rows:
    """Database columns to catalog-indexed arrays."""
    return Rows.from_columns(
        catalog, cols.towers, cols.statuses, cols.reasons, cols.latency_ms, cols.epoch_s
    )


def view(rollup: Rollup, label: str, th: Thresholds) -> WindowView:
    """A window's values, classification and worst towers."""
    result = rollup.result(label)
    return WindowView(result, classify(result, th), worst_towers(result, th))


@dataclass(frozen=True)
class _Exposition:
    """Rendered /metrics text, plain and gzip, and when it was rendered."""

    body: bytes
    gzip: bytes
    rendered_at: float
    has_windows: bool


@dataclass
class _Read:
    """What one refresh transaction read."""

    snapshot: str
    towers: list[str]
    window: queries.Columns | None  # rows for a rebuild
    new: queries.Columns | None  # rows committed since the previous snapshot


class RefreshJob:
    """State kept between refreshes, and the prepared exposition the HTTP server serves."""

    def __init__(
        self,
        url: str,
        windows: Sequence[Window],
        thresholds: Thresholds,
        interval_s: float,
        registry: CollectorRegistry,
        clock: Clock = time.time,
    ) -> None:
        self.url = url
        self.windows = list(windows)
        self.thresholds = thresholds
        self.interval_s = interval_s
        self.clock = clock
        self.catalog = Catalog()
        self.counters = Counters(self.catalog)
        self.rollup: Rollup | None = None
        self.prev: str | None = None
        self.conn: psycopg.Connection | None = None
        self.queries = {name: QueryStats() for name in QUERIES}
        self.database_up = False
        self.last_success: float | None = None
        # A refresh stuck longer than this (hung database) must not leave old windows looking fresh.
        self.stale_after_s = max(STALE_INTERVALS * interval_s, MIN_STALE_S)
        self._failing = False
        self._lock = threading.Lock()  # one refresh at a time
        self._render_lock = threading.Lock()  # one rendering at a time (refresh or staleness)
        self.renderer = Renderer()
        # The registry view is the reference rendering (generate_latest); /metrics uses renderer.
        self.collector = EcmCollector(self._published([]))
        self.registry = registry
        registry.register(self.collector)
        self._render(self.collector.published, clock())

    def exposition(self) -> bytes:
        """The text rendered at the end of the last refresh (a scrape never touches the DB)."""
        return self._current().body

    def exposition_gzip(self) -> bytes:
        """The same text, gzip-compressed once per refresh for scrapers that accept gzip."""
        return self._current().gzip

    def _render(self, published: Published, now: float) -> None:
        with self._render_lock:
            self.collector.published = published
            body = self.renderer.render(published)
            # Level 1: a tenth of the size at 5,000 towers for about 30 ms per refresh.
            gz = gzip.compress(body, compresslevel=1, mtime=0)
            self._exposition = _Exposition(body, gz, now, bool(published.windows))

    def _current(self) -> _Exposition:
        """The cached exposition, re-rendered once without window gauges when it went stale."""
        exp = self._exposition
        if not exp.has_windows or self.clock() - exp.rendered_at <= self.stale_after_s:
            return exp
        with self._render_lock:
            exp = self._exposition
            if exp.has_windows and self.clock() - exp.rendered_at > self.stale_after_s:
                log.warning(
                    "no refresh finished for %.0f s; window metrics withdrawn as stale",
                    self.clock() - exp.rendered_at,
                )
                stale = dataclasses.replace(self.collector.published, windows=[])
                self.collector.published = stale
                body = self.renderer.render(stale)
                gz = gzip.compress(body, compresslevel=1, mtime=0)
                exp = self._exposition = _Exposition(body, gz, exp.rendered_at, False)
        return exp

    def refresh(self) -> bool:
        """One refresh; never raises: failures become self-metrics and one log line per outage."""
        with self._lock:
            now = self.clock()
            views: list[WindowView] = []
            failures_before = sum(q.failures for q in self.queries.values())
            main_query = "rebuild" if self.rollup is None else "new_calls"
            try:
                self._refresh(now)
                assert self.rollup is not None
                views = [view(self.rollup, w.label, self.thresholds) for w in self.windows]
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
                self.rollup = None
                ok = False
            if not ok and sum(q.failures for q in self.queries.values()) == failures_before:
                # Failed before a named query ran (connect, snapshot): charge the main query.
                self.queries[main_query].failures += 1
            if ok:
                if self._failing:
                    log.info("refresh succeeded again (database reachable, rollups rebuilt)")
                self._failing = False
                self.database_up = True
                self.last_success = now
            self._render(self._published(views), now)
            return ok

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._drop_connection()

    # -- internals ---------------------------------------------------------------------------

    def _published(self, views: list[WindowView]) -> Published:
        return Published(
            interval_s=self.interval_s,
            thresholds=self.thresholds,
            counters=self.counters.snapshot(),
            database_up=self.database_up,
            last_success=self.last_success,
            queries={
                k: QueryStats(v.duration_s, v.last_success, v.failures)
                for k, v in self.queries.items()
            },
            windows=views,
        )

    def _timed(self, name: str, seconds: float, ok: bool) -> None:
        q = self.queries[name]
        q.duration_s = seconds
        if ok:
            q.last_success = self.clock()
        else:
            q.failures += 1

    def _connection(self) -> psycopg.Connection:
        if self.conn is None or self.conn.closed:
            self.conn = connect(self.url, app="ecm-exporter")
            queries.session_setup(self.conn, timeout_s=max(self.stale_after_s, STATEMENT_TIMEOUT_S))
        return self.conn

    def _drop_connection(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(psycopg.Error):
                self.conn.close()
        self.conn = None

    def _lost(self, reason: str) -> None:
        """The database is unreachable: withdraw window values, rebuild when it returns."""
        self._drop_connection()
        self.rollup = None
        self.database_up = False
        if not self._failing:
            log.warning(
                "database unavailable (%s); window metrics withdrawn until it returns", reason
            )
        self._failing = True

    def _fail(self, reason: str, *, logged: bool = False) -> None:
        if not self._failing and not logged:
            log.warning("refresh failed (%s); window metrics withdrawn until it succeeds", reason)
        self._failing = True

    def _read(self, conn: psycopg.Connection, now: float) -> _Read:
        """One REPEATABLE READ transaction: towers, then a rebuild and/or the new rows."""
        with queries.snapshot_transaction(conn) as snap:
            towers = queries.towers(conn, self._timed)
            window = new = None
            if self.rollup is None:
                oldest_minute = math.floor(now / 60) - max(w.minutes for w in self.windows) + 1
                window = queries.window_calls(conn, oldest_minute * 60.0, self._timed)
                # Counters continue across a lost connection when the snapshot history is intact.
                if self.prev is not None:
                    if queries.continuous(conn, self.prev):
                        new = queries.new_calls(conn, self.prev, self._timed)
                    else:
                        log.warning(
                            "the database's transaction ids went back (restored or replaced?): "
                            "counters continue from now; calls committed meanwhile are not counted"
                        )
            else:
                assert self.prev is not None
                new = queries.new_calls(conn, self.prev, self._timed)
        return _Read(snap, towers, window, new)

    def _refresh(self, now: float) -> None:
        read = self._read(self._connection(), now)
        self.catalog.add_towers(read.towers)
        if read.window is not None:
            rollup = Rollup(self.catalog, [(w.label, w.minutes) for w in self.windows])
            rollup.add(to_rows(self.catalog, read.window), now)
            longest = max(self.windows, key=lambda w: w.minutes).label
            log.info("rollups rebuilt from %d calls in the last %s", len(read.window), longest)
            if read.new is not None:
                self.counters.add(to_rows(self.catalog, read.new))
            self.rollup = rollup
        else:
            assert read.new is not None and self.rollup is not None
            rows = to_rows(self.catalog, read.new)
            self.rollup.add(rows, now)
            self.counters.add(rows)
            log.debug("refresh: %d new calls", len(rows))
        self.counters.add(Rows.empty())  # new towers start at 0
        self.prev = read.snapshot


def compute_once(
    url: str, window: Window, thresholds: Thresholds, clock: Clock = time.time
) -> WindowView:
    """The --once report's values: the same rollup path, over calls since now - window."""
    now = clock()
    catalog = Catalog()
    with connect(url, app="ecm-exporter-once") as conn:
        try:
            with queries.snapshot_transaction(conn):
                cols = queries.window_calls(conn, now - window.minutes * 60.0)
        except psycopg.OperationalError as exc:
            raise DatabaseUnavailable(f"database went away: {describe(exc)}") from None
        except psycopg.Error as exc:
            raise EcmError(f"query failed: {describe(exc)}") from None
    # One extra slot holds the partial oldest minute, so the result is exact for [now - N, now].
    rollup = Rollup(catalog, [(window.label, window.minutes + 1)])
    rollup.add(to_rows(catalog, cols), now)
    return view(rollup, window.label, thresholds)
