"""Fixtures for the exporter tests."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

import pytest

from exporter.assess import Thresholds
from exporter.config import parse_window
from exporter.refresh import RefreshJob
from tests.fixtures.clock import FakeClock
from tests.fixtures.postgres import EcmDb


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
