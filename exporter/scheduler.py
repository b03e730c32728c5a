"""The APScheduler job that runs the refresh every interval, starting at once."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler

log = logging.getLogger(__name__)

JOB_ID = "refresh"


class _SkipsCountedElsewhere(logging.Filter):
    """Drops APScheduler's warning for each run skipped behind a long refresh: the refresh job
    counts overruns in a metric and logs them at most once per period; this would log every
    interval for as long as a database hangs."""

    def filter(self, record: logging.LogRecord) -> bool:
        """False for the 'maximum number of running instances reached' warning."""
        return "maximum number of running instances reached" not in str(record.msg)


_SKIPS = _SkipsCountedElsewhere()


def start_scheduler(refresh: Callable[[], Any], interval_s: float) -> BackgroundScheduler:
    """A started scheduler running refresh now and then every interval_s seconds."""
    sched = BackgroundScheduler(timezone=UTC)
    logging.getLogger("apscheduler.scheduler").addFilter(_SKIPS)  # added once: same object
    sched.add_job(
        refresh,
        "interval",
        seconds=interval_s,
        id=JOB_ID,
        max_instances=1,
        coalesce=True,
        # A refresh that starts late is still worth running; coalescing drops the backlog.
        misfire_grace_time=max(1, int(interval_s)),
        next_run_time=datetime.now(UTC),
    )
    sched.start()
    log.info("refresh scheduled every %g s", interval_s)
    return sched


def stop_scheduler(sched: BackgroundScheduler) -> None:
    """Stop the scheduler, waiting for a running refresh to finish."""
    sched.shutdown(wait=True)
