"""The call rollup job: folds newly committed emergency calls into the per-minute rollups the
analytics routes read, exactly once (ecm_common/folds.py), and resets them for a rebuild.

The rollups and their snapshot live in PostgreSQL, so they survive restarts: a new process goes
on from the stored snapshot. A rebuild (POST /v1/analytics/rebuild, `ecm-api rebuild-rollups`)
empties them and sets the snapshot back, in one transaction; the folds then take every stored
call again in bounded transactions.
"""

from __future__ import annotations

import logging
import time

import psycopg

from api import call_rollup_sql as q
from api.job_conn import JobConnection
from api.metrics import CallRollupMetrics
from ecm_common.clock import Clock
from ecm_common.db import describe
from ecm_common.folds import FoldSql, fold_once

log = logging.getLogger(__name__)

MAX_FOLDS_PER_RUN = 20
CALL_FOLD = FoldSql(
    state=q.FOLD_STATE, bound=q.FOLD_BOUND, fold=q.FOLD, save=q.SAVE_STATE, what="call rollups"
)


class CallRollup:
    """The call rollup job on a connection of its own (reopened after a failure)."""

    def __init__(
        self,
        url: str,
        *,
        statement_timeout_s: float,
        max_fold_rows: int,
        metrics: CallRollupMetrics,
        clock: Clock,
    ) -> None:
        self.url = url
        self.statement_timeout_s = statement_timeout_s
        self.max_fold_rows = max_fold_rows
        self.metrics = metrics
        self.clock = clock
        self.job = JobConnection(url, "ecm-api-call-rollup", statement_timeout_s)

    def close(self) -> None:
        """Close the job's connection."""
        self.job.close()

    def run(self, max_folds: int = MAX_FOLDS_PER_RUN) -> bool:
        """One job run: up to max_folds bounded folds; failures become metrics and a log line.
        True when every committed call is folded in."""
        start = time.perf_counter()
        folded, complete = 0, False
        try:
            conn = self.job.get()
            for _ in range(max_folds):
                n, complete = fold_once(conn, CALL_FOLD, self.max_fold_rows)
                folded += n
                self.metrics.rows.inc(n)
                if complete:
                    break
        except psycopg.errors.SerializationFailure:
            self.job.rollback()
            log.info("the call rollups changed meanwhile (a rebuild or a replica); next run")
            return False
        except psycopg.Error as exc:
            self.metrics.failures.inc()
            log.warning("call rollup failed: %s", describe(exc))
            self.close()
            return False
        self.metrics.last_success.set(self.clock.time())
        self.metrics.duration.set(time.perf_counter() - start)
        log.debug("call rollup folded %d calls", folded)
        return complete

    def reset(self) -> None:
        """Empty the rollups and set their snapshot back: the next folds take every call.

        On a connection of its own: the job's may be inside a fold in another thread."""
        job = JobConnection(self.url, "ecm-api-call-rollup-reset", self.statement_timeout_s)
        try:
            conn = job.get()
            with conn.transaction():
                for statement in q.RESET:
                    conn.execute(statement)
        finally:
            job.close()
        log.info("call rollups reset: every stored call is folded again")
