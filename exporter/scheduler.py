"""The APScheduler job that runs the refresh every interval, starting at once."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler

log = logging.getLogger(__name__)

JOB_ID = "refresh"


def start_scheduler(refresh: Callable[[], Any], interval_s: float) -> BackgroundScheduler:
    """A started scheduler running refresh now and then every interval_s seconds."""
    sched = BackgroundScheduler(timezone=UTC)
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
