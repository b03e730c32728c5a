"""Skewed timestamps: rows far ahead or behind never pin the windows, and /metrics and --once
give the same values for the same rows at the same time."""

from __future__ import annotations

import logging

import pytest

from exporter.assess import Thresholds
from exporter.config import parse_window
from exporter.refresh import RefreshJob, compute_once
from tests.exporter.helpers import Call, by_tower, samples, value, write_calls
from tests.fixtures.clock import FakeClock
from tests.fixtures.postgres import EcmDb

pytestmark = pytest.mark.integration

LABELS = ("5m", "10m", "1h")


def batch(now: float, tag: int) -> dict[str, list[Call]]:
    """Calls of every kind of timestamp, relative to now (mid-minute)."""
    return {
        "normal": [Call(now - 20 - i, f"TOWER_{i % 3 + 1}", 700 + 53 * i + tag,
                        "PSAP_BUSY" if i % 4 == 0 else None) for i in range(40)],
        # Ahead by less than the 5-minute tolerance: they wait for their own minute.
        "near_future": [Call(now + 100, "TOWER_1", 2500 + tag, "CORE_TIMEOUT"),
                        Call(now + 250, "TOWER_2", 3100 + tag)],
        # Far ahead: a writer's clock is wrong by an hour or a day.
        "far_future": [Call(now + 3600, "TOWER_3", 9000 + tag, "IMS_UNREACHABLE"),
                       Call(now + 86_400, "TOWER_3", 9500 + tag)],
        # Older than every window (a late commit, or a clock far behind).
        "past": [Call(now - 7200, "TOWER_2", 400 + tag, "PSAP_BUSY")],
    }  # fmt: skip


def assert_same_as_once(job: RefreshJob, url: str, clock: FakeClock) -> None:
    """Every window value /metrics shows equals what --once computes for that window now."""
    text = job.exposition().decode()
    got = samples(text)
    for label in LABELS:
        once = compute_once(url, parse_window(label), Thresholds(), clock).result
        assert value(text, "ecm_window_calls", window=label) == once.calls, label
        assert value(text, "ecm_window_failed_calls", window=label) == once.failed, label
        if once.calls:
            assert value(text, "ecm_window_latency_avg_seconds", window=label) == pytest.approx(
                once.avg_latency_ms / 1000, rel=1e-12
            )
            assert value(text, "ecm_window_latency_p95_seconds", window=label) == pytest.approx(
                once.p95_ms / 1000, rel=1e-12
            )
        for reason, n in once.reason_failed.items():
            assert value(text, "ecm_window_reason_failed_calls", window=label, reason=reason) == n
        towers = {
            dict(lab)["tower"]: v
            for (name, lab), v in got.items()
            if name == "ecm_tower_window_calls" and dict(lab)["window"] == label and v
        }
        assert towers == {t.tower: t.calls for t in once.towers}, label


def window_calls(job: RefreshJob, label: str) -> float | None:
    """ecm_window_calls of one window."""
    return value(job.exposition().decode(), "ecm_window_calls", window=label)


def test_skewed_rows_never_pin_the_windows_and_once_agrees(
    test_db: EcmDb, job: RefreshJob, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    start = clock.now
    first = batch(start, 0)
    write_calls(test_db.writer_url, [c for kind in first.values() for c in kind])
    assert job.refresh()  # a rebuild reads them
    # Only the rows timestamped in the windows' minutes count; nothing is folded into "now".
    assert window_calls(job, "5m") == 40
    assert window_calls(job, "1h") == 40
    assert_same_as_once(job, test_db.reader_url, clock)

    clock.advance(15)
    second = batch(clock.now, 1)
    write_calls(test_db.writer_url, [c for kind in second.values() for c in kind])
    assert job.refresh()  # read incrementally this time
    assert window_calls(job, "5m") == 80
    text = job.exposition().decode()
    # Rows read after start-up that no window holds are counted once, by reason.
    assert value(text, "ecm_exporter_rows_skipped_total", reason="future") == 2
    assert value(text, "ecm_exporter_rows_skipped_total", reason="past") == 1
    assert by_tower(text, "ecm_calls_total", tower="TOWER_3") == 13 + 2  # counters count them all
    assert_same_as_once(job, test_db.reader_url, clock)

    clock.advance(15)
    write_calls(test_db.writer_url, [Call(clock.now + 7200, "TOWER_1", 800)])
    assert job.refresh()
    assert value(job.exposition().decode(), "ecm_exporter_rows_skipped_total", reason="future") == 3
    warned = [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and "ahead of this clock" in r.getMessage()
    ]
    assert len(warned) == 1  # rate-limited: one line for the first, the rest counted
    assert warned[0].startswith("2 call(s)")

    clock.advance(240)  # the near-future rows' minutes have begun: they enter the windows
    assert job.refresh()
    assert window_calls(job, "5m") == 4  # both near-future pairs; the rest is older
    assert window_calls(job, "10m") == 80 + 4
    assert_same_as_once(job, test_db.reader_url, clock)

    # An hour on, the first two far-future rows' minute begins: they were stored long ago and
    # the exporter reads them again, once, when the skew horizon passes them.
    clock.advance(start + 3600 + 5 - clock.now)
    assert job.refresh()
    text = job.exposition().decode()
    assert value(text, "ecm_window_calls", window="5m") == 2
    assert value(text, "ecm_window_failed_calls", window="5m") == 2
    assert value(text, "ecm_window_calls", window="1h") == 4 + 2
    assert value(text, "ecm_exporter_rows_skipped_total", reason="future") == 3
    assert_same_as_once(job, test_db.reader_url, clock)
