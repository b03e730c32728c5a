"""The background jobs (APScheduler): the rollup every rollup_interval, retention every
retention_interval; stable ids, one instance at a time, coalesced, first runs at start-up."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from apscheduler.schedulers.background import BackgroundScheduler

from api.pm_rollup import Rollup

log = logging.getLogger(__name__)

ROLLUP_JOB = "pm-rollup"
RETENTION_JOB = "pm-retention"
CALL_ROLLUP_JOB = "call-rollup"
Job = tuple[str, Callable[[], object], float]


def start_jobs(
    rollup: Rollup, rollup_s: float, retention_s: float, extra: Sequence[Job] = ()
) -> BackgroundScheduler:
    """A started scheduler with both PM jobs and the extra (id, function, interval) jobs."""
    sched = BackgroundScheduler(timezone=UTC)
    now = datetime.now(UTC)
    jobs: list[Job] = [
        (ROLLUP_JOB, rollup.run, rollup_s),
        (RETENTION_JOB, rollup.retention, retention_s),
        *extra,
    ]
    for job_id, func, seconds in jobs:
        sched.add_job(
            func,
            "interval",
            seconds=seconds,
            id=job_id,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=max(1, int(seconds)),
            next_run_time=now,
        )
    sched.start()
    log.info("PM rollup every %g s, retention every %g s", rollup_s, retention_s)
    return sched


def stop_jobs(sched: BackgroundScheduler, rollup: Rollup) -> None:
    """Stop the scheduler, waiting for a running job, then close the jobs' connection."""
    sched.shutdown(wait=True)
    rollup.close()
