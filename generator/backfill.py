"""History: the same model and write path as live traffic, unpaced, with a progress line."""

from __future__ import annotations

import logging
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import TextIO

import numpy as np

from ecm_common.clock import Clock, SystemClock
from ecm_common.db import database_url
from ecm_common.errors import ConfigError
from generator.app import (
    effective_settings,
    load_model_inputs,
    make_pipeline,
    prepare_database,
    stop_on_signals,
)
from generator.config import GeneratorSettings
from generator.metrics import GeneratorMetrics
from generator.model import CallModel
from generator.outcome import check_outcome
from generator.pipeline import Counts, Pipeline

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 1.0
# How far past now a range may end (clocks of two machines disagree a little); beyond it, refused.
FUTURE_TOLERANCE_S = 60.0


class Progress:
    """Rows written, rows/s and ETA on one stderr line (a new line every 5 s if not a tty)."""

    def __init__(self, pipeline: Pipeline, expected: float, out: TextIO | None = None) -> None:
        self.pipeline = pipeline
        self.expected = max(expected, 1.0)
        self.out = out or sys.stderr
        self.tty = self.out.isatty()
        self.t0 = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="ecm-progress", daemon=True)

    def line(self) -> str:
        """The current progress text."""
        c = self.pipeline.counts
        done = c.written + c.already_stored + c.spooled + c.dead_lettered
        elapsed = max(time.monotonic() - self.t0, 1e-6)
        speed = done / elapsed
        left = max(self.expected - done, 0.0)
        eta = timedelta(seconds=round(left / speed)) if speed > 0 else "?"
        pct = min(100.0, 100.0 * done / self.expected)
        return f"backfill: {done} rows ({pct:.0f}%) {speed:,.0f} rows/s ETA {eta}"

    def _loop(self) -> None:
        every = PROGRESS_EVERY_S if self.tty else 5 * PROGRESS_EVERY_S
        while not self._stop.wait(every):
            self._emit()

    def _emit(self, final: bool = False) -> None:
        end = "\n" if final or not self.tty else ""
        self.out.write(("\r" if self.tty else "") + self.line() + end)
        self.out.flush()

    def start(self) -> None:
        """Begin printing."""
        self._thread.start()

    def stop(self) -> None:
        """Print the last line and stop."""
        self._stop.set()
        self._thread.join()
        self._emit(final=True)


def generate_history(
    model: CallModel,
    pipeline: Pipeline,
    rng: np.random.Generator,
    span_s: float,
    chunk: int,
    stop: threading.Event,
) -> int:
    """Submit every call of model time [0, span_s) as fast as the pipeline takes them."""
    t = 0.0
    submitted = 0
    while not stop.is_set():
        batch = model.batch(chunk, t, rng)
        assert batch.offsets is not None
        t = float(batch.offsets[-1])
        last = t >= span_s
        if last:
            batch = batch.take(batch.offsets < span_s)
        if not pipeline.submit(batch, stop):
            break
        submitted += len(batch)
        if last:
            break
    return submitted


def check_range(start: datetime, end: datetime, now: datetime) -> None:
    """ConfigError unless start < end and end is not in the future (beyond the tolerance)."""
    if end <= start:
        raise ConfigError(f"--to ({end.isoformat()}) must be after --from ({start.isoformat()})")
    if (end - now).total_seconds() > FUTURE_TOLERANCE_S:
        raise ConfigError(
            f"--to ({end.isoformat()}) is in the future (now is {now.isoformat()}): backfill"
            " writes history only; use 'run' for live traffic"
        )


def backfill_command(
    s: GeneratorSettings,
    start: datetime,
    end: datetime,
    out: TextIO | None = None,
    clock: Clock | None = None,
) -> Counts:
    """The ``backfill`` command: history between start and end with the configured model.

    Raises the ``generator.outcome`` error that says what was not stored when not every call was.
    """
    now = datetime.fromtimestamp((clock or SystemClock()).time(), UTC)
    check_range(start, end, now)
    url = database_url(s.database_url)
    s = effective_settings(s)
    params, scenario = load_model_inputs(s)
    prepare_database(url, params)
    metrics = GeneratorMetrics()
    server = (
        metrics.serve(s.metrics_port, s.metrics_listen_address)
        if s.metrics_port is not None
        else None
    )
    model = CallModel(
        params,
        scenario.timeline(params) if scenario else None,
        origin_us=int(start.timestamp() * 1_000_000),
    )
    span = (end - start).total_seconds()
    pipeline = make_pipeline(s, url, metrics)
    progress = Progress(pipeline, model.expected_calls(0.0, span), out)
    log.info(
        "backfilling %s .. %s (about %.0f calls)",
        start.isoformat(),
        end.isoformat(),
        model.expected_calls(0.0, span),
    )
    try:
        with stop_on_signals(pipeline.in_memory) as stop:
            pipeline.start()
            progress.start()
            try:
                generate_history(
                    model, pipeline, np.random.default_rng(s.seed), span, s.write.batch_size, stop
                )
            finally:
                counts = pipeline.close()
                progress.stop()
    finally:
        if server is not None:
            server.stop()
    check_outcome(counts, pipeline.spool.dir)
    return counts


def backfill(
    url: str,
    start: datetime,
    end: datetime,
    rate: float,
    scenario: str | None = None,
    seed: int | None = None,
    **options: object,
) -> Counts:
    """Write calls with timestamps in [start, end) at ``rate`` calls/s of history; returns counts.

    ``options`` are any other GeneratorSettings fields (towers, failure_prob, batch_size,
    spool_dir, ...). The scenario's phases start at ``start``. A range ending in the future is a
    ConfigError; when not every call was stored, a ``generator.outcome.RunOutcome`` error carries
    the counts.
    """
    settings = GeneratorSettings.model_validate(
        {"database_url": url, "rate": rate, "scenario": scenario, "seed": seed, **options}
    )
    return backfill_command(settings, start, end, out=sys.stderr)
