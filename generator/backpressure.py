"""The bounded queue between the producer and the writer thread: backpressure, never growth.

A producer that finds the queue full waits; once the write path can no longer keep calls
(``refuse``), every put returns False at once, so nothing piles up in memory behind a failure.
"""

from __future__ import annotations

import collections
import threading

from generator.batch import CallBatch

# Longest single wait of the writer thread: an absurd flush interval or retry delay must not
# overflow the lock timeout (threading.TIMEOUT_MAX) and kill the thread.
MAX_WAIT_S = 3600.0


class BoundedQueue:
    """FIFO of batches bounded by rows: put blocks while full (backpressure)."""

    def __init__(self, capacity_rows: int) -> None:
        self.capacity = capacity_rows
        self.rows = 0
        self.closed = False
        self.refusing = False
        self._items: collections.deque[CallBatch] = collections.deque()
        self._cond = threading.Condition()

    def put(self, batch: CallBatch, stop: threading.Event | None = None) -> bool:
        """Enqueue, waiting for room (a big batch waits for an empty queue); False if not taken."""
        with self._cond:
            while not self.refusing and self.rows > 0 and self.rows + len(batch) > self.capacity:
                if stop is not None and stop.is_set():
                    return False
                self._cond.wait(0.1)
            if self.refusing:
                return False
            self._items.append(batch)
            self.rows += len(batch)
            self._cond.notify_all()
            return True

    def get(self, timeout: float) -> CallBatch | None:
        """The oldest batch, or None after timeout or when closed and empty."""
        with self._cond:
            if not self._items and not self.closed:
                self._cond.wait(min(max(timeout, 0.0), MAX_WAIT_S))
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

    def refuse(self) -> None:
        """Turn every later put away at once (the write path stopped keeping calls)."""
        with self._cond:
            self.refusing = True
            self._cond.notify_all()

    def take_all(self) -> int:
        """Empty the queue; returns the rows dropped."""
        with self._cond:
            rows = self.rows
            self._items.clear()
            self.rows = 0
            self._cond.notify_all()
            return rows
