"""Fixtures for the exporter tests."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator

import pytest

from exporter.assess import Thresholds
from exporter.config import parse_window
from exporter.refresh import RefreshJob
from tests.fixtures.postgres import EcmDb


class FakeClock:
    """An ecm_common.clock.Clock the test moves by hand; wall and monotonic time move together."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.start = now

    def time(self) -> float:
        """The simulated wall-clock time."""
        return self.now

    def monotonic(self) -> float:
        """Seconds since the clock was made, moved with the wall-clock time."""
        return self.now - self.start

    def wait(self, seconds: float, event: threading.Event) -> bool:
        """Time passes at once."""
        if not event.is_set():
            self.advance(max(seconds, 0.0))
        return event.is_set()

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    """Mid-minute now, so the window edges are whole minutes away from the rows."""
    return FakeClock(math.floor(time.time() / 60) * 60 + 30.0)


@pytest.fixture
def job(test_db: EcmDb, clock: FakeClock) -> Iterator[RefreshJob]:
    """A refresh job on the reader role with windows 5m,10m,1h and default thresholds."""
    j = RefreshJob(
        test_db.reader_url,
        [parse_window(w) for w in ("5m", "10m", "1h")],
        Thresholds(),
        15.0,
        clock=clock,
    )
    yield j
    j.close()
