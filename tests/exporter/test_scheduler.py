"""The refresh job's schedule: runs at start-up, survives a failing run, stops on shutdown."""

from __future__ import annotations

import threading

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
