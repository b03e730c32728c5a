"""The write path: a bounded queue, one writer thread, retries, the spool and dead letters.

Guarantee: every call ``submit`` accepts ends in exactly one place the counts name: stored in
the database (``written``, or ``already_stored`` when a retry or replay finds it there), in the
spool (``spooled``, replayed later), in the dead-letter file, or counted as ``lost`` with the
reason. Calls are lost only when the spool itself cannot be written or the writer thread fails;
then the pipeline stops accepting calls at once (``submit`` returns False) so the loss is
bounded by what was already in memory. A database that refuses this writer (a missing grant, a
different schema) stops the run the same way, keeping what it accepted in the spool.
"""

from __future__ import annotations

import logging
import random
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import psycopg
from pydantic import Field, model_validator

from ecm_common.clock import Clock, SystemClock
from ecm_common.config import StrictModel
from ecm_common.durations import Seconds
from ecm_common.errors import EcmError
from generator.backpressure import MAX_WAIT_S, BoundedQueue
from generator.batch import CallBatch, split_valid
from generator.metrics import GeneratorMetrics
from generator.spool import BadRange, DeadLetters, Spool, SpoolError
from generator.writer import WRITE_TIMEOUT_S, classify, explain

log = logging.getLogger(__name__)

MAX_FLUSH_INTERVAL_S = 60.0
MAX_RETRY_DELAY_S = 600.0

Outcome = Literal["done", "retry", "refused"]
# Counts whose metric has another name (every other count is the GeneratorMetrics attribute).
_METRIC = {"corrupt": "spool_corrupt_records"}


class BatchWriter(Protocol):
    """Something that stores a batch (generator.writer.DbWriter)."""

    def write(self, batch: CallBatch, *, idempotent: bool) -> int:
        """Store the batch and return the rows newly stored; idempotent when it may be stored."""
        ...

    def write_isolating(self, batch: CallBatch) -> tuple[int, list[tuple[int, str]]]:
        """Store the rows of a refused batch that the database takes: (new rows, refused rows)."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...


class WriteOptions(StrictModel):
    """Batching, retry and timeout settings of the writer (options of the same names)."""

    batch_size: int = Field(default=5000, ge=1, le=1_000_000)
    flush_interval: Seconds = Field(default=1.0, gt=0, le=MAX_FLUSH_INTERVAL_S)
    queue_size: int = Field(default=100_000, ge=1, le=10_000_000)
    max_retries: int = Field(default=5, ge=0, le=100)
    retry_base_delay: Seconds = Field(default=0.2, ge=0, le=MAX_RETRY_DELAY_S)
    retry_max_delay: Seconds = Field(default=5.0, ge=0, le=MAX_RETRY_DELAY_S)
    write_timeout: Seconds = Field(default=WRITE_TIMEOUT_S, gt=0, le=3600)

    @model_validator(mode="after")
    def _delays_ordered(self) -> WriteOptions:
        if self.retry_base_delay > self.retry_max_delay:
            raise ValueError(
                f"retry_base_delay ({self.retry_base_delay:g}s) must not exceed "
                f"retry_max_delay ({self.retry_max_delay:g}s)"
            )
        return self


@dataclass
class Counts:
    """What happened to the calls of one run."""

    generated: int = 0
    written: int = 0
    already_stored: int = 0
    spooled: int = 0
    dead_lettered: int = 0
    retries: int = 0
    lost: int = 0
    corrupt: int = 0
    in_spool: int = 0
    failure: str | None = None
    refusal: str | None = None

    def summary(self) -> str:
        """One line for the end of a run."""
        return (
            f"generated={self.generated} written={self.written} "
            f"already_stored={self.already_stored} spooled={self.spooled} "
            f"dead_lettered={self.dead_lettered} retries={self.retries} lost={self.lost} "
            f"corrupt={self.corrupt} in_spool={self.in_spool}"
        )


class Pipeline:
    """Producer-side ``submit`` and a writer thread that stores, retries, spools and replays."""

    def __init__(
        self,
        writer: BatchWriter,
        spool_dir: Path,
        dead_letter_file: Path,
        options: WriteOptions | None = None,
        metrics: GeneratorMetrics | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.writer = writer
        self.opts = options or WriteOptions()
        self.metrics = metrics or GeneratorMetrics()
        self.clock = clock or SystemClock()
        self.spool = Spool(spool_dir)
        self.dead = DeadLetters(dead_letter_file)
        self.queue = BoundedQueue(self.opts.queue_size)
        self.counts = Counts()
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._leftover: CallBatch | None = None
        self._in_hand: CallBatch | None = None
        self._down = False
        self._probe_step = 0
        self._next_probe = 0.0
        self._replayed: dict[Path, int] = {}
        self._thread = threading.Thread(target=self._run, name="ecm-writer", daemon=True)

    # -- producer side -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer thread; it replays any spool left by an earlier run first."""
        self._thread.start()

    def accepting(self) -> bool:
        """False once calls can no longer be kept (then ``submit`` refuses every batch)."""
        return not self.queue.refusing

    def submit(self, batch: CallBatch, stop: threading.Event | None = None) -> bool:
        """Validate and enqueue (blocks while the queue is full); False if not accepted."""
        valid, invalid = split_valid(batch)
        if len(valid) and not self.queue.put(valid, stop):
            return False
        if not len(valid) and not self.accepting():
            return False
        self._count("generated", len(batch))
        self.metrics.queue_depth.set(self.queue.rows)
        if invalid:
            self._dead_letter(invalid)
        return True

    def close(self) -> Counts:
        """Write (or spool) everything queued, stop the writer thread and return the counts."""
        self._closing.set()
        self.queue.close()
        self._thread.join()
        return self.counts

    def in_memory(self) -> int:
        """Accepted calls not yet stored, spooled or dead-lettered (lost on a hard exit)."""
        held = [self._in_hand, self._leftover]
        return self.queue.rows + sum(len(b) for b in held if b is not None)

    # -- bookkeeping ---------------------------------------------------------------------------

    def _count(self, name: str, n: int) -> None:
        if n <= 0:
            return
        with self._lock:
            setattr(self.counts, name, getattr(self.counts, name) + n)
        getattr(self.metrics, _METRIC.get(name, name)).inc(n)

    def _fail(self, reason: str) -> None:
        """Stop accepting calls: from now on what cannot be stored is counted as lost."""
        if self.counts.failure is None:
            self.counts.failure = reason
            log.error("%s: no longer accepting calls", reason)
        self.queue.refuse()

    def _refuse(self, reason: str) -> None:
        """The database refuses this writer: stop accepting, keep what is held in the spool."""
        if self.counts.refusal is None:
            self.counts.refusal = reason
            log.error(
                "the database refused the generator's writes: %s; stopping, accepted calls go to"
                " the spool %s",
                reason,
                self.spool.dir,
            )
        self.queue.refuse()

    def _lose(self, rows: int, why: str) -> None:
        if rows > 0:
            log.error("%d call(s) not stored: %s", rows, why)
        self._count("lost", rows)

    def _dead_letter(self, items: list[tuple[dict[str, Any], str]]) -> None:
        try:
            self.dead.write(items)
        except OSError as exc:
            reason = f"cannot write the dead-letter file {self.dead.path}: {exc.strerror or exc}"
            self._fail(reason)
            self._lose(len(items), reason)
            return
        self._count("dead_lettered", len(items))

    # -- writer thread -------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._loop()
        except Exception as exc:
            log.exception("writer thread failed")
            reason = f"the writer thread failed: {type(exc).__name__}: {exc}"
            self._fail(reason)
            self._lose(self._drop_held(), reason)
        finally:
            self.spool.close()
            self.writer.close()
            self._finish()

    def _drop_held(self) -> int:
        """Drop everything held in memory; returns the calls dropped."""
        held = [self._in_hand, self._leftover]
        self._in_hand = self._leftover = None
        return self.queue.take_all() + sum(len(b) for b in held if b is not None)

    def _loop(self) -> None:
        while True:
            if self._storing() and self.spool.pending():
                self._replay()
            batch = self._collect()
            if batch is not None:
                self._in_hand = batch
                self._deliver(batch)
                self._in_hand = None
            elif self._leftover is None and self.queue.drained():
                break
        if self._storing() and self.spool.pending():
            self._replay(force=True)

    def _storing(self) -> bool:
        """Whether the database may still be written (not refused, nothing failed)."""
        return self.counts.refusal is None and self.counts.failure is None

    def _finish(self) -> None:
        try:
            # Records already replayed stay in a half-replayed segment: they are not waiting.
            self.counts.in_spool = self.spool.rows_waiting(self._replayed)
        except OSError as exc:
            log.error("cannot count the calls left in the spool %s: %s", self.spool.dir, exc)
        if self.counts.in_spool:
            log.warning("%d call(s) wait in the spool %s", self.counts.in_spool, self.spool.dir)

    def _collect(self) -> CallBatch | None:
        """Up to batch_size rows: whatever arrives within flush_interval of the first one."""
        parts: list[CallBatch] = []
        rows = 0
        if self._leftover is not None:
            parts.append(self._leftover)
            rows = len(self._leftover)
            self._leftover = None
        deadline = self.clock.monotonic() + self.opts.flush_interval
        if not parts:
            wait = self.opts.flush_interval
            if self._down:
                wait = min(wait, max(self._next_probe - self.clock.monotonic(), 0.01))
            first = self.queue.get(wait)
            if first is None:
                return None
            parts.append(first)
            rows = len(first)
            deadline = self.clock.monotonic() + self.opts.flush_interval
        while rows < self.opts.batch_size:
            nxt = self.queue.get(deadline - self.clock.monotonic())
            if nxt is None:
                break
            parts.append(nxt)
            rows += len(nxt)
        self.metrics.queue_depth.set(self.queue.rows)
        batch = CallBatch.concat(parts)
        if len(batch) > self.opts.batch_size:
            self._leftover = batch.take(slice(self.opts.batch_size, None))
            batch = batch.take(slice(0, self.opts.batch_size))
        return batch

    def _deliver(self, batch: CallBatch) -> None:
        """Write a batch, or spool it while older batches wait on disk (keeps the order)."""
        if self.counts.failure is not None:
            self._last_chance(batch)
            return
        if self.counts.refusal is not None or self._down or self.spool.pending():
            self._keep(batch)
            return
        attempt = 0
        idempotent = False
        while True:
            outcome = self._try_write(batch, idempotent)
            if outcome == "done":
                return
            if outcome == "refused":
                self._keep(batch)
                return
            attempt += 1
            idempotent = True
            self._count("retries", 1)
            if attempt > self.opts.max_retries or self.queue.full() or self.queue.closed:
                self._go_down()
                self._keep(batch)
                return
            self.clock.wait(self._delay(attempt), self._closing)

    def _try_write(self, batch: CallBatch, idempotent: bool) -> Outcome:
        """One attempt: done (stored or dead-lettered), retry later, or refused for good."""
        start = self.clock.monotonic()
        try:
            new = self.writer.write(batch, idempotent=idempotent)
        except (psycopg.Error, EcmError) as exc:
            verdict = classify(exc)
            if verdict == "duplicate" and not idempotent:
                # Part of the batch is already stored: store the rest without doubling anything.
                return self._try_write(batch, True)
            if verdict == "reject":
                return self._store_refused(batch)
            if verdict == "refuse":
                self._refuse(explain(exc))
                return "refused"
            log.warning("writing %d calls failed: %s", len(batch), explain(exc))
            return "retry"
        self.metrics.write_duration.observe(self.clock.monotonic() - start)
        self.metrics.last_write.set(self.clock.time())
        self._count("written", new)
        self._count("already_stored", len(batch) - new)
        return "done"

    def _store_refused(self, batch: CallBatch) -> Outcome:
        """The database refused some rows: store the others, dead-letter only the refused."""
        try:
            new, refused = self.writer.write_isolating(batch)
        except (psycopg.Error, EcmError) as exc:
            if classify(exc) == "refuse":
                self._refuse(explain(exc))
                return "refused"
            log.warning("writing %d calls failed: %s", len(batch), explain(exc))
            return "retry"
        if refused:
            rows = batch.take(np.array([i for i, _ in refused], dtype=np.int64)).rows()
            reasons = [f"database refused it: {why}" for _, why in refused]
            self._dead_letter(list(zip(rows, reasons, strict=True)))
        self._count("written", new)
        self._count("already_stored", len(batch) - new - len(refused))
        return "done"

    def _keep(self, batch: CallBatch) -> None:
        """Spool a batch; if the spool fails, stop accepting calls and try the database once."""
        try:
            self.spool.append(batch)
        except SpoolError as exc:
            self._fail(str(exc))
            self._last_chance(batch)
            return
        self._count("spooled", len(batch))

    def _last_chance(self, batch: CallBatch) -> None:
        """After a failure: one write attempt unless the database is known away; else lost."""
        if self.counts.refusal is None and not self._down:
            if self._try_write(batch, True) == "done":
                return
            self._down = True
        self._lose(len(batch), self.counts.failure or "not stored")

    def _delay(self, attempt: int) -> float:
        """Exponential backoff with jitter, capped."""
        base = min(
            self.opts.retry_max_delay,
            self.opts.retry_base_delay * 2 ** min(attempt - 1, 64),
            MAX_WAIT_S,
        )
        return float(base * random.uniform(0.5, 1.5))

    def _go_down(self) -> None:
        if not self._down:
            log.warning("database unavailable: spooling calls to %s", self.spool.dir)
        self._down = True
        self._probe_step += 1
        self._next_probe = self.clock.monotonic() + self._delay(self._probe_step)

    def _set_aside(self, segment: Path, bad: BadRange) -> None:
        """Copy a damaged or torn range to quarantine (SpoolError when that fails) and count it."""
        try:
            target = self.spool.quarantine(segment, bad)
        except OSError as exc:
            raise SpoolError(f"cannot quarantine damaged spool bytes: {exc}") from None
        size = bad.end - bad.start
        if bad.torn:
            log.warning(
                "%s: a record cut short at the end (never acknowledged), %d bytes kept in %s",
                segment.name,
                size,
                target,
            )
            return
        rows = "an unknown number of" if bad.rows is None else str(bad.rows)
        log.error(
            "%s: damaged record at byte %d (%s calls, %d bytes) moved to %s; later records"
            " are replayed",
            segment.name,
            bad.start,
            rows,
            size,
            target,
        )
        self._count("corrupt", 1)

    def _replay(self, force: bool = False) -> None:
        """Store spooled batches oldest first; on failure stay down until the next probe."""
        if self._down and not force and self.clock.monotonic() < self._next_probe:
            return
        replayed = 0
        try:
            for segment in self.spool.segments():
                for item in self.spool.read(segment, self._replayed.get(segment, 0)):
                    if not self._storing():
                        return
                    if isinstance(item, BadRange):
                        self._set_aside(segment, item)
                    else:
                        if self._replay_batch(item.batch) != "done":
                            return
                        replayed += len(item.batch)
                    self._replayed[segment] = item.end
                self.spool.remove(segment)
                self._replayed.pop(segment, None)
        except SpoolError as exc:
            self._fail(str(exc))
            return
        except OSError as exc:
            self._fail(f"cannot read the spool {self.spool.dir}: {exc.strerror or exc}")
            return
        if self._down or replayed:
            log.info("database back: %d spooled calls replayed", replayed)
        self._down = False
        self._probe_step = 0

    def _replay_batch(self, batch: CallBatch) -> Outcome:
        valid, invalid = split_valid(batch)
        if invalid:
            self._dead_letter(invalid)
        if not len(valid):
            return "done"
        outcome = self._try_write(valid, True)
        if outcome == "retry":
            self._go_down()
        return outcome
