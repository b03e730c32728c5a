"""Live traffic: draw calls in fixed-size chunks and release each one when its time comes."""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass

import numpy as np

from ecm_common.clock import Clock, SystemClock
from generator.batch import CallBatch
from generator.model import CallModel
from generator.pipeline import Pipeline

log = logging.getLogger(__name__)

# Longest the producer sleeps before looking at the stop flag again.
MAX_NAP_S = 0.2


@dataclass(frozen=True)
class RunLimits:
    """When a run ends: after count calls, after duration model seconds, or when stopped."""

    count: int | None = None
    duration: float | None = None


def chunk_size(rate: float, flush_interval: float, batch_size: int) -> int:
    """Calls drawn at a time: about one flush interval of traffic, from options alone.

    It depends on configuration only, never on timing, so a seeded stream is the same every run.
    """
    # min before ceil: an absurd flush interval must not overflow the conversion to int.
    return max(1, math.ceil(min(float(batch_size), rate * flush_interval)))


def produce(
    model: CallModel,
    pipeline: Pipeline,
    rng: np.random.Generator,
    limits: RunLimits,
    chunk: int,
    stop: threading.Event,
    *,
    paced: bool = True,
    clock: Clock | None = None,
) -> int:
    """Generate until a limit, ``stop`` or the pipeline stops accepting; returns calls accepted.

    Paced: each call is handed over at its wall time.
    """
    clock = clock or SystemClock()
    emitted = 0
    t = 0.0
    while not stop.is_set():
        left = None if limits.count is None else limits.count - emitted
        if left is not None and left <= 0:
            break
        # Always a full chunk, then cut: the first N calls are the same whatever the count.
        batch = model.batch(chunk, t, rng)
        offsets = batch.offsets
        assert offsets is not None
        t = float(offsets[-1])
        keep = np.ones(chunk, dtype=bool)
        last = False
        if left is not None and left <= chunk:
            keep[left:] = False
            last = True
        if limits.duration is not None and t >= limits.duration:
            keep &= offsets < limits.duration
            last = True
        if last:
            batch = batch.take(keep)
        if paced:
            emitted += _release(batch, pipeline, stop, clock)
        elif pipeline.submit(batch, stop):
            emitted += len(batch)
        if last or not pipeline.accepting():
            break
    return emitted


def _release(batch: CallBatch, pipeline: Pipeline, stop: threading.Event, clock: Clock) -> int:
    """Hand calls to the pipeline as the wall clock reaches their timestamps."""
    due_at = batch.ts_us / 1e6
    i = 0
    n = len(batch)
    released = 0
    while i < n and not stop.is_set() and pipeline.accepting():
        now = clock.time()
        j = int(np.searchsorted(due_at, now, side="right"))
        if j > i:
            part = batch.take(slice(i, j))
            if not pipeline.submit(part, stop):
                break
            released += j - i
            i = j
            continue
        clock.wait(min(float(due_at[i]) - now, MAX_NAP_S), stop)
    return released
