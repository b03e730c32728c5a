"""Where PM events wait for the API: in memory while it answers, in the calls generator's spool
(generator/spool.py, opaque records of JSON batches, fsync'd) while it does not.

Order is kept: spooled batches go out first, oldest first, then the events in memory. A record
is only dropped from the spool once the API has answered for it; resending after a crash is
harmless (event ids are deterministic: duplicates). A damaged record is copied to quarantine/
and counted. When the spool cannot be written, events stay in memory up to max_backlog; past
it the oldest are dropped and counted.
"""

from __future__ import annotations

import collections
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from generator.pm_sender import Outcome
from generator.spool import BadRange, Spool, SpoolError

log = logging.getLogger(__name__)

Event = dict[str, Any]
Send = Callable[[list[Event]], Outcome | None]


class Backlog:
    """The events not yet answered for by the API."""

    def __init__(self, spool: Spool | None, batch_size: int, max_memory: int) -> None:
        self.spool = spool
        self.batch_size = batch_size
        self.max_memory = max_memory
        self.memory: collections.deque[Event] = collections.deque()
        self.replayed: dict[Path, int] = {}
        self.dropped = 0
        self.damaged = 0

    def add(self, events: list[Event]) -> None:
        """New events, behind everything already waiting."""
        self.memory.extend(events)
        over = len(self.memory) - self.max_memory
        if over > 0:
            for _ in range(over):
                self.memory.popleft()
            self.dropped += over
            log.error("PM backlog full: dropped the %d oldest events", over)

    def send(self, send: Send, on_outcome: Callable[[Outcome], None]) -> bool:
        """Send the spool, then memory, in batches; False when the API could not take one now
        (what is left in memory is then spooled)."""
        if not self._replay(send, on_outcome):
            self.spool_memory()
            return False
        while self.memory:
            n = min(self.batch_size, len(self.memory))
            batch = [self.memory[i] for i in range(n)]
            got = send(batch)
            if got is None:
                self.spool_memory()
                return False
            for _ in range(n):
                self.memory.popleft()
            on_outcome(got)
        return True

    def spool_memory(self) -> None:
        """Move the events in memory to the spool, batch by batch (they stay if it fails)."""
        if self.spool is None:
            return
        try:
            while self.memory:
                n = min(self.batch_size, len(self.memory))
                batch = [self.memory[i] for i in range(n)]
                data = json.dumps(batch, separators=(",", ":")).encode()
                self.spool.append_payload(data, n)
                for _ in range(n):
                    self.memory.popleft()
        except SpoolError as exc:
            log.error("%s; %d PM events wait in memory", exc, len(self.memory))

    def _replay(self, send: Send, on_outcome: Callable[[Outcome], None]) -> bool:
        if self.spool is None:
            return True
        try:
            for segment in self.spool.segments():
                for item in self.spool.read_payloads(segment, self.replayed.get(segment, 0)):
                    if isinstance(item, BadRange):
                        target = self.spool.quarantine(segment, item)
                        self.damaged += item.rows or 0
                        log.error("damaged PM spool bytes moved to %s", target)
                    else:
                        got = send(json.loads(item.data))
                        if got is None:
                            return False
                        on_outcome(got)
                    self.replayed[segment] = item.end
                self.spool.remove(segment)
                self.replayed.pop(segment, None)
        except (OSError, ValueError) as exc:
            log.error("cannot replay the PM spool %s: %s", self.spool.dir, exc)
            return False
        return True

    def waiting(self) -> int:
        """Events not answered for yet: in memory and in the spool."""
        spooled = self.spool.rows_waiting(self.replayed) if self.spool is not None else 0
        return len(self.memory) + spooled
