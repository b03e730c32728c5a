"""The refresh job's schedule: runs at start-up, survives a failing run, stops on shutdown."""

from __future__ import annotations

import logging
import threading

import pytest
from apscheduler.events import EVENT_JOB_MAX_INSTANCES

from exporter.scheduler import JOB_ID, start_scheduler, stop_scheduler

DEADLINE_S = 10


def test_first_run_is_at_start_up() -> None:
    ran = threading.Event()
    sched = start_scheduler(ran.set, 3600)
    try:
        assert ran.wait(DEADLINE_S)  # long before the first interval would elapse
        job = sched.get_job(JOB_ID)
        assert job is not None and job.max_instances == 1 and job.coalesce
    finally:
        stop_scheduler(sched)
    assert not sched.running


def test_a_failing_run_does_not_stop_the_schedule() -> None:
    calls: list[int] = []
    again = threading.Event()

    def flaky() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("first run fails")
        again.set()

    sched = start_scheduler(flaky, 0.05)
    try:
        assert again.wait(DEADLINE_S)
    finally:
        stop_scheduler(sched)


def test_runs_skipped_behind_a_long_refresh_are_not_logged_each_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    release = threading.Event()
    started = threading.Event()

    def long_refresh() -> None:
        started.set()
        release.wait(DEADLINE_S)

    skips: list[object] = []
    three_skips = threading.Event()

    def on_skip(event: object) -> None:
        skips.append(event)
        if len(skips) >= 3:
            three_skips.set()

    sched = start_scheduler(long_refresh, 0.02)
    sched.add_listener(on_skip, EVENT_JOB_MAX_INSTANCES)
    try:
        assert started.wait(DEADLINE_S)
        # The schedule comes round three times while the first run is still going.
        assert three_skips.wait(DEADLINE_S)
    finally:
        release.set()
        stop_scheduler(sched)
    assert not [r for r in caplog.records if "maximum number of running" in r.getMessage()]
