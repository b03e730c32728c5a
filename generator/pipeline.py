"""The write path: a bounded queue, one writer thread, retries, the spool and dead letters."""

from __future__ import annotations

import collections
import logging
import random
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import psycopg

from ecm_common.clock import Clock, SystemClock
from ecm_common.db import describe
from ecm_common.errors import DatabaseUnavailable
from generator.batch import CallBatch, split_valid
from generator.metrics import GeneratorMetrics
from generator.spool import DeadLetters, Spool

log = logging.getLogger(__name__)


class BatchWriter(Protocol):
    """Something that stores a batch (generator.writer.DbWriter)."""

    def write(self, batch: CallBatch, *, idempotent: bool) -> int:
        """Store the batch; idempotent=True when it may already be stored."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...


@dataclass(frozen=True)
class WriteOptions:
    """Batching and retry settings of the writer thread."""

    batch_size: int = 5000
    flush_interval: float = 1.0
    queue_size: int = 100_000
    max_retries: int = 5
    retry_base_delay: float = 0.2
    retry_max_delay: float = 5.0


@dataclass
class Counts:
    """What happened to the calls of one run."""

    generated: int = 0
    written: int = 0
    spooled: int = 0
    dead_lettered: int = 0
    retries: int = 0

    def summary(self) -> str:
        """One line for the end of a run."""
        return (
            f"generated={self.generated} written={self.written} spooled={self.spooled} "
            f"dead_lettered={self.dead_lettered} retries={self.retries}"
        )


class BoundedQueue:
    """FIFO of batches bounded by rows: put blocks while full (backpressure)."""

    def __init__(self, capacity_rows: int) -> None:
        self.capacity = capacity_rows
        self.rows = 0
        self.closed = False
        self._items: collections.deque[CallBatch] = collections.deque()
        self._cond = threading.Condition()

    def put(self, batch: CallBatch, stop: threading.Event | None = None) -> bool:
        """Enqueue, waiting for room (a big batch waits for an empty queue); False if stopped."""
        with self._cond:
            while self.rows > 0 and self.rows + len(batch) > self.capacity:
                if stop is not None and stop.is_set():
                    return False
                self._cond.wait(0.1)
            self._items.append(batch)
            self.rows += len(batch)
            self._cond.notify_all()
            return True

    def get(self, timeout: float) -> CallBatch | None:
        """The oldest batch, or None after timeout or when closed and empty."""
        with self._cond:
            if not self._items and not self.closed:
                self._cond.wait(max(timeout, 0.0))
            if not self._items:
                return None
            batch = self._items.popleft()
            self.rows -= len(batch)
            self._cond.notify_all()
            return batch

    def full(self) -> bool:
        """Whether a producer would block now."""
        with self._cond:
            return self.rows >= self.capacity

    def drained(self) -> bool:
        """Closed and nothing left."""
        with self._cond:
            return self.closed and not self._items

    def close(self) -> None:
        """No more puts; wake the consumer."""
        with self._cond:
            self.closed = True
            self._cond.notify_all()


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
        self._abort = threading.Event()
        self._leftover: CallBatch | None = None
        self._down = False
        self._probe_step = 0
        self._next_probe = 0.0
        self._replayed: dict[Path, int] = {}
        self._thread = threading.Thread(target=self._run, name="ecm-writer", daemon=True)

    # -- producer side -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer thread; it replays any spool left by an earlier run first."""
        self._thread.start()

    def submit(self, batch: CallBatch, stop: threading.Event | None = None) -> bool:
        """Validate and enqueue (blocks while the queue is full); False if stopped meanwhile."""
        valid, invalid = split_valid(batch)
        if invalid:
            self.dead.write(invalid)
            self._count("dead_lettered", len(invalid))
        if len(valid) and not self.queue.put(valid, stop):
            return False
        self._count("generated", len(batch))
        self.metrics.queue_depth.set(self.queue.rows)
        return True

    def close(self) -> Counts:
        """Write (or spool) everything queued, stop the writer thread and return the counts."""
        self.queue.close()
        self._thread.join()
        return self.counts

    def abort(self) -> None:
        """Stop the writer thread at its next step; what is queued in memory is dropped."""
        self._abort.set()
        self.queue.close()

    # -- writer thread -------------------------------------------------------------------------

    def _count(self, name: str, n: int) -> None:
        with self._lock:
            setattr(self.counts, name, getattr(self.counts, name) + n)
        getattr(self.metrics, name).inc(n)

    def _run(self) -> None:
        try:
            while not self._abort.is_set():
                if self.spool.pending():
                    self._replay()
                batch = self._collect()
                if batch is not None:
                    self._deliver(batch)
                elif self._leftover is None and self.queue.drained():
                    break
            if self.spool.pending() and not self._abort.is_set():
                self._replay(force=True)
        except Exception:
            log.exception("writer thread failed")
        finally:
            self.spool.close()
            self.writer.close()

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
        while rows < self.opts.batch_size and not self._abort.is_set():
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
        if self._down or self.spool.pending():
            self._spool(batch)
            return
        attempt = 0
        idempotent = False
        while True:
            if self._try_write(batch, idempotent):
                return
            attempt += 1
            idempotent = True
            self._count("retries", 1)
            if (
                attempt > self.opts.max_retries
                or self.queue.full()
                or self.queue.closed
                or self._abort.is_set()
            ):
                self._go_down()
                self._spool(batch)
                return
            if self.clock.wait(self._delay(attempt), self._abort):
                return

    def _try_write(self, batch: CallBatch, idempotent: bool) -> bool:
        """One attempt; True when the batch is stored (or dead-lettered as unstorable)."""
        start = self.clock.monotonic()
        try:
            self.writer.write(batch, idempotent=idempotent)
        except psycopg.errors.UniqueViolation:
            # Part of the batch is already stored: store the rest without doubling anything.
            return self._try_write(batch, True) if not idempotent else False
        except (psycopg.DataError, psycopg.IntegrityError) as exc:
            self.dead.write(
                [(row, f"database refused it: {describe(exc)}") for row in batch.rows()]
            )
            self._count("dead_lettered", len(batch))
            return True
        except (psycopg.Error, DatabaseUnavailable) as exc:
            log.warning("writing %d calls failed: %s", len(batch), describe(exc))
            return False
        self.metrics.write_duration.observe(self.clock.monotonic() - start)
        self.metrics.last_write.set(self.clock.time())
        self._count("written", len(batch))
        return True

    def _delay(self, attempt: int) -> float:
        """Exponential backoff with jitter, capped."""
        base = min(self.opts.retry_max_delay, self.opts.retry_base_delay * 2 ** (attempt - 1))
        return float(base * random.uniform(0.5, 1.5))

    def _go_down(self) -> None:
        if not self._down:
            log.warning("database unavailable: spooling calls to %s", self.spool.dir)
        self._down = True
        self._probe_step += 1
        self._next_probe = self.clock.monotonic() + self._delay(self._probe_step)

    def _spool(self, batch: CallBatch) -> None:
        self.spool.append(batch)
        self._count("spooled", len(batch))

    def _replay(self, force: bool = False) -> None:
        """Store spooled batches oldest first; on failure stay down until the next probe."""
        if self._down and not force and self.clock.monotonic() < self._next_probe:
            return
        replayed = 0
        for segment in self.spool.segments():
            done = self._replayed.get(segment, 0)
            for i, batch in enumerate(self.spool.read(segment)):
                if i < done or self._abort.is_set():
                    continue
                valid, invalid = split_valid(batch)
                if invalid:
                    self.dead.write(invalid)
                    self._count("dead_lettered", len(invalid))
                if len(valid) and not self._try_write(valid, True):
                    self._go_down()
                    return
                self._replayed[segment] = i + 1
                replayed += len(batch)
            if self._abort.is_set():
                return
            self.spool.remove(segment)
            self._replayed.pop(segment, None)
        if self._down or replayed:
            log.info("database back: %d spooled calls replayed", replayed)
        self._down = False
        self._probe_step = 0
