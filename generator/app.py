"""Assembling a run from settings: database checks, the model, the pipeline, signals."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from types import FrameType

import numpy as np
import psycopg
from pydantic import ValidationError

from db.migrate import ensure_schema
from ecm_common.config import describe_error
from ecm_common.db import connect, database_url
from ecm_common.errors import ConfigError, DatabaseUnavailable
from generator.config import GeneratorSettings, model_params, paths
from generator.metrics import GeneratorMetrics
from generator.model import CallModel, ModelParams
from generator.outcome import WritesRefused, check_outcome
from generator.pipeline import Counts, Pipeline
from generator.runner import RunLimits, chunk_size, produce
from generator.scenario import Scenario, load_scenario, read_scenario_file
from generator.writer import (
    WRITE_TIMEOUT_S,
    DbWriter,
    classify,
    explain,
    set_timeouts,
    upsert_towers,
)

log = logging.getLogger(__name__)


def prepare_database(url: str, params: ModelParams, timeout: float = WRITE_TIMEOUT_S) -> None:
    """Apply the schema when missing (and allowed) and record the towers; exit 3 if unreachable."""
    ensure_schema(url)
    with connect(url, app="ecm-generator") as conn:
        set_timeouts(conn, timeout)
        prepare_connection(conn, params)


def prepare_connection(conn: psycopg.Connection, params: ModelParams) -> None:
    """Record the towers on an open connection; a refusal is WritesRefused (exit 6)."""
    try:
        upsert_towers(conn, params.tower_weights, params.tower_regions())
    except psycopg.Error as exc:
        if classify(exc) == "refuse":
            raise WritesRefused(
                f"the database refused the generator's writes: {explain(exc)}"
            ) from None
        raise DatabaseUnavailable(f"cannot record the towers: {explain(exc)}") from None


def deferred_preparation(url: str, params: ModelParams) -> Callable[[psycopg.Connection], None]:
    """What the writer runs on its first connection when the database was down at start."""

    def prepare(conn: psycopg.Connection) -> None:
        ensure_schema(url)
        prepare_connection(conn, params)

    return prepare


def make_pipeline(
    s: GeneratorSettings,
    url: str,
    metrics: GeneratorMetrics,
    prepare: Callable[[psycopg.Connection], None] | None = None,
) -> Pipeline:
    """A pipeline writing to url with the configured spool and dead-letter paths."""
    p = paths(s)
    writer = DbWriter(url, s.write.write_timeout, prepare)
    return Pipeline(writer, p.spool_dir, p.dead_letter_file, s.write, metrics)


def effective_settings(s: GeneratorSettings) -> GeneratorSettings:
    """The settings with a scenario's baseline filled in where the user gave no value."""
    if not s.scenario:
        return s
    top = read_scenario_file(s.scenario)
    explicit = {k: getattr(s, k) for k in s.model_fields_set}
    try:
        return GeneratorSettings.model_validate({**top.baseline, **explicit})
    except ValidationError as exc:
        raise ConfigError(describe_error(exc, f"scenario {s.scenario}: baseline")) from None


def load_model_inputs(s: GeneratorSettings) -> tuple[ModelParams, Scenario | None]:
    """Model parameters and the validated scenario (if any) for already-effective settings."""
    params = model_params(s)
    scenario = load_scenario(s.scenario, n_towers=params.n_towers) if s.scenario else None
    return params, scenario


@contextlib.contextmanager
def stop_on_signals(held: Callable[[], int] | None = None) -> Iterator[threading.Event]:
    """First SIGINT/SIGTERM sets the event; a second exits at once (the spool is fsync'd).

    ``held`` counts the calls still in memory, which a second signal drops: the exit line says
    how many.
    """
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            dropped = f"; {held()} call(s) held in memory were not stored" if held else ""
            print(
                f"ecm-generator: second signal, exiting now{dropped} (the spool keeps what it has)",
                file=sys.stderr,
                flush=True,
            )
            os._exit(130)
        log.info("signal %d: stopping, flushing the queue", signum)
        stop.set()

    if threading.current_thread() is not threading.main_thread():
        # Called as a library from another thread: the caller owns signal handling.
        yield stop
        return
    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


def run_live(s: GeneratorSettings) -> Counts:
    """The ``run`` command: paced traffic until count, duration, scenario end or a signal.

    It starts while the database is down (calls are spooled until it returns) and raises the
    ``generator.outcome`` error that says what was not stored when not every call was.
    """
    url = database_url(s.database_url)
    s = effective_settings(s)
    params, scenario = load_model_inputs(s)
    timeline = scenario.timeline(params) if scenario else None
    prepare: Callable[[psycopg.Connection], None] | None = None
    try:
        prepare_database(url, params, s.write.write_timeout)
    except DatabaseUnavailable as exc:
        log.warning("%s; starting anyway: calls are spooled until it can be reached", exc)
        prepare = deferred_preparation(url, params)
    metrics = GeneratorMetrics()
    server = (
        metrics.serve(s.metrics_port, s.metrics_listen_address)
        if s.metrics_port is not None
        else None
    )
    start = s.start or datetime.now(UTC)
    model = CallModel(params, timeline, origin_us=int(start.timestamp() * 1_000_000), speed=s.speed)
    duration = s.duration
    if duration is None and s.count is None and scenario is not None:
        duration = scenario.duration
    limits = RunLimits(count=s.count, duration=duration)
    rng = np.random.default_rng(s.seed)
    pipeline = make_pipeline(s, url, metrics, prepare)
    try:
        with stop_on_signals(pipeline.in_memory) as stop:
            pipeline.start()
            log.info(
                "generating at %.2f calls/s over %d towers (failure probability %.3f)%s",
                params.rate,
                params.n_towers,
                params.failure_prob,
                f", scenario {scenario.name}" if scenario else "",
            )
            try:
                produce(
                    model,
                    pipeline,
                    rng,
                    limits,
                    chunk_size(params.rate * s.speed, s.write.flush_interval, s.write.batch_size),
                    stop,
                )
            finally:
                # Also when producing failed: what was accepted is written or spooled first.
                counts = pipeline.close()
    finally:
        if server is not None:
            server.stop()
    check_outcome(counts, pipeline.spool.dir)
    return counts
