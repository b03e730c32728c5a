"""The rollup job: folds newly committed PM events into the 5-minute KPI rollups, exactly once,
then refreshes the KPI gauges from the rollups; and the retention job.

A fold is one REPEATABLE READ transaction (ecm_common/folds.py): read the stored snapshot, fold
the rows committed since it, store the snapshot folded up to. The fold and the new snapshot
commit together or not at all, so a crash or a lost connection never counts a row twice or skips
one; of two folds at once (two API replicas) one fails with a serialization failure.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import IsolationLevel

from api import pm_sql
from api.job_conn import JobConnection
from api.metrics import IngestMetrics, KpiCollector, PmKpis
from ecm_common.clock import Clock
from ecm_common.db import describe
from ecm_common.folds import FoldSql, fold_once
from ecm_common.slo_pm import PmSlo

log = logging.getLogger(__name__)

# Retention deletes at most this many batches per run, and a rollup run folds at most this
# many bounded folds (each its own transaction), so one run stays bounded.
MAX_RETENTION_BATCHES = 100
MAX_FOLDS_PER_RUN = 20
PM_FOLD = FoldSql(
    state=pm_sql.FOLD_STATE,
    bound=pm_sql.FOLD_BOUND,
    fold=pm_sql.FOLD,
    save=pm_sql.SAVE_STATE,
    what="PM rollups",
)


@dataclass(frozen=True)
class RollupSettings:
    """What the jobs need from the API settings."""

    kpi_window_s: float
    pm_period_s: float
    top_n: int
    raw_retention_s: float
    rollup_retention_s: float
    retention_batch_rows: int
    statement_timeout_s: float
    max_fold_rows: int


class Rollup:
    """The rollup and retention jobs on one connection of their own (reopened after a failure)."""

    def __init__(
        self,
        url: str,
        cfg: RollupSettings,
        slo: PmSlo,
        metrics: IngestMetrics,
        kpis: KpiCollector,
        clock: Clock,
    ) -> None:
        self.url = url
        self.cfg = cfg
        self.slo = slo
        self.metrics = metrics
        self.kpis = kpis
        self.clock = clock
        self.job = JobConnection(url, "ecm-api-rollup", cfg.statement_timeout_s)

    def _connection(self) -> psycopg.Connection:
        return self.job.get()

    def close(self) -> None:
        """Close the jobs' connection."""
        self.job.close()

    def run(self) -> bool:
        """One rollup job run: fold, then refresh the gauges; failures become metrics and a log."""
        start = time.perf_counter()
        try:
            conn = self._connection()
            folded = 0
            for _ in range(MAX_FOLDS_PER_RUN):
                n, complete = self.fold(conn)
                folded += n
                if complete:
                    break
            self.kpis.latest = self.read_kpis(conn)
        except psycopg.errors.SerializationFailure:
            self._rollback()
            log.info("another process folded PM events at the same time; next run takes over")
            return False
        except psycopg.Error as exc:
            self.metrics.rollup_failures.inc()
            self.metrics.database_up.set(0)
            log.warning("PM rollup failed: %s", describe(exc))
            self.close()
            return False
        self.metrics.rollup_rows.inc(folded)
        self.metrics.database_up.set(1)
        self.metrics.rollup_last_success.set(self.clock.time())
        self.metrics.rollup_duration.set(time.perf_counter() - start)
        log.debug("PM rollup folded %d events", folded)
        return True

    def _rollback(self) -> None:
        self.job.rollback()

    def fold(self, conn: psycopg.Connection) -> tuple[int, bool]:
        """Fold the events committed since the stored snapshot, about max_fold_rows at most;
        returns how many, and whether that was all of them."""
        return fold_once(conn, PM_FOLD, self.cfg.max_fold_rows)

    def read_kpis(self, conn: psycopg.Connection) -> PmKpis:
        """The KPI gauges from the rollups and the cells' last sighting (one read snapshot)."""
        now = datetime.fromtimestamp(self.clock.time(), UTC)
        since = now - timedelta(seconds=self.cfg.kpi_window_s)
        cutoff = now - timedelta(seconds=self.slo.silent_periods * self.cfg.pm_period_s)
        limits = {
            "since": since,
            "prb_warn": self.slo.warn_prb_util_ratio * 100,
            "prb_alert": self.slo.alert_prb_util_ratio * 100,
            "drop_warn": self.slo.warn_drop_ratio * 100,
            "drop_alert": self.slo.alert_drop_ratio * 100,
            "n": self.cfg.top_n,
        }
        conn.isolation_level = IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        with conn.transaction():
            known, silent = _one(conn, pm_sql.SILENT, {"cutoff": cutoff})
            samples, dl, ul, rrc, drp = _one(conn, pm_sql.OVERALL, {"since": since})
            reporting, pw, pa, dw, da = _one(conn, pm_sql.OVER_THRESHOLDS, limits)
            busiest = conn.execute(pm_sql.TOP_BUSIEST, limits).fetchall()
            drops = conn.execute(pm_sql.TOP_DROPS, limits).fetchall()
        conn.read_only = False
        return PmKpis(
            window_s=self.cfg.kpi_window_s,
            cells_known=int(known),
            cells_silent=int(silent),
            cells_reporting=int(reporting),
            samples=int(samples or 0),
            dl_prb_util=_ratio(dl),
            ul_prb_util=_ratio(ul),
            rrc_conn=math.nan if rrc is None else float(rrc),
            drop=_ratio(drp),
            over={
                ("prb_utilization", "warning"): int(pw),
                ("prb_utilization", "critical"): int(pa),
                ("drop", "warning"): int(dw),
                ("drop", "critical"): int(da),
            },
            busiest=[(str(c), float(v) / 100) for c, v in busiest],
            worst_drop=[(str(c), float(v) / 100) for c, v in drops],
        )

    def retention(self) -> int:
        """Delete raw events past raw_retention and rollups past rollup_retention, in bounded
        batches; returns the raw events deleted."""
        now = datetime.fromtimestamp(self.clock.time(), UTC)
        raw_cutoff = now - timedelta(seconds=self.cfg.raw_retention_s)
        rollup_cutoff = now - timedelta(seconds=self.cfg.rollup_retention_s)
        rows = self.cfg.retention_batch_rows
        deleted = 0
        try:
            conn = self._connection()
            conn.isolation_level = IsolationLevel.READ_COMMITTED
            conn.autocommit = True
            try:
                deleted = _delete_batches(conn, pm_sql.DELETE_RAW, raw_cutoff, rows, self.metrics)
                _delete_batches(conn, pm_sql.DELETE_CELL_BUCKETS, rollup_cutoff, rows, None)
                conn.execute(pm_sql.DELETE_TOTAL_BUCKETS, {"cutoff": rollup_cutoff})
                conn.execute(pm_sql.FORGET_CELLS, {"cutoff": rollup_cutoff})
            finally:
                conn.autocommit = False
        except psycopg.Error as exc:
            log.warning("PM retention failed: %s", describe(exc))
            self.close()
            return deleted
        if deleted:
            log.info("PM retention deleted %d raw events older than %s", deleted, raw_cutoff)
        return deleted


def _delete_batches(
    conn: psycopg.Connection,
    statement: str,
    cutoff: datetime,
    rows: int,
    metrics: IngestMetrics | None,
) -> int:
    total = 0
    for _ in range(MAX_RETENTION_BATCHES):
        n = conn.execute(statement.encode(), {"cutoff": cutoff, "rows": rows}).rowcount
        total += max(n, 0)
        if metrics is not None and n > 0:
            metrics.retention_deleted.inc(n)
        if n < rows:
            break
    return total


def _one(conn: psycopg.Connection, query: str, params: dict[str, object]) -> tuple[Any, ...]:
    row = conn.execute(query.encode(), params).fetchone()
    assert row is not None
    return tuple(row)


def _ratio(pct: Any) -> float:
    return math.nan if pct is None else float(pct) / 100
