"""`ecm-generator pm`: PM counters of every cell, one event per cell per period, posted to the
ECM API in batches, continuously until --count events, --duration or a signal.

The first period sent is the last one completed at start-up (data at once), then each period as
it ends. Batches the API cannot take now (it is down) stay in a bounded backlog and are sent
again later; at the end the run says what it could not deliver and exits non-zero.
"""

from __future__ import annotations

import collections
import logging
import math
import threading
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr

from ecm_common.clock import Clock
from generator.pm_config import PmSettings
from generator.pm_model import PmModel, make_cells
from generator.pm_sender import Outcome, Sender
from generator.scenario import load_scenario

log = logging.getLogger(__name__)

# Exit statuses, as the calls generator uses them: events left undelivered, events dropped.
EXIT_UNDELIVERED = 4
EXIT_DROPPED = 5
EXIT_REJECTED = 6


@dataclass
class PmCounts:
    """What a run generated and what became of it."""

    generated: int = 0
    periods: int = 0
    outcome: Outcome = field(default_factory=Outcome)
    dropped: int = 0
    undelivered: int = 0
    retries: int = 0

    def summary(self) -> str:
        """One line for the end of a run."""
        o = self.outcome
        text = (
            f"{self.generated} events in {self.periods} period(s): {o.accepted} accepted, "
            f"{o.duplicate} duplicate, {o.rejected} rejected, {self.retries} retries"
        )
        if o.reasons:
            text += " (" + ", ".join(f"{r}: {n}" for r, n in sorted(o.reasons.items())) + ")"
        if self.dropped:
            text += f", {self.dropped} dropped (backlog full)"
        if self.undelivered:
            text += f", {self.undelivered} not delivered"
        return text

    def exit_status(self) -> int:
        """0, or the most serious of undelivered, dropped, rejected."""
        if self.undelivered:
            return EXIT_UNDELIVERED
        if self.dropped:
            return EXIT_DROPPED
        return EXIT_REJECTED if self.outcome.rejected else 0


class PmRun:
    """One run: the model, the backlog and the sender, paced by the clock."""

    def __init__(
        self, s: PmSettings, clock: Clock, stop: threading.Event, token: SecretStr | None
    ) -> None:
        self.s = s
        self.clock = clock
        self.stop = stop
        scenario = load_scenario(s.scenario, n_towers=s.towers) if s.scenario else None
        self.start = clock.time()
        self.model = PmModel(
            make_cells(s.n_cells, s.sectors), s.period, seed=s.seed, scenario=scenario,
            origin=self.start,
        )  # fmt: skip
        self.sender = Sender(
            s.api_url,
            token=token,
            timeout_s=s.request_timeout,
            max_retries=s.max_retries,
            base_delay_s=s.retry_base_delay,
            max_delay_s=s.retry_max_delay,
            clock=clock,
            stop=stop,
        )
        self.backlog: collections.deque[dict[str, Any]] = collections.deque()
        self.counts = PmCounts()

    def run(self) -> PmCounts:
        """Generate and send until done; the counts say what happened."""
        next_end = math.floor(self.start / self.s.period) * self.s.period
        end_at = self.start + self.s.duration if self.s.duration else math.inf
        try:
            while not self.stop.is_set() and not self._enough() and next_end <= end_at:
                self._produce(next_end)
                next_end += self.s.period
                delivered = self._drain()
                wait = next_end - self.clock.time()
                if not delivered:
                    # The API is down: try again before the next period, not after it.
                    wait = min(wait, self.s.retry_max_delay)
                while wait > 0 and not self.stop.is_set():
                    if self.clock.wait(wait, self.stop):
                        break
                    if self.backlog and not self._drain():
                        wait = min(next_end - self.clock.time(), self.s.retry_max_delay)
                    else:
                        wait = next_end - self.clock.time()
            self._drain()
        finally:
            self.sender.close()
        self.counts.undelivered = len(self.backlog)
        self.counts.retries = self.sender.retries
        return self.counts

    def _enough(self) -> bool:
        return self.s.count is not None and self.counts.generated >= self.s.count

    def _produce(self, period_end: float) -> None:
        events = self.model.period(period_end)
        if self.s.count is not None:
            events = events[: self.s.count - self.counts.generated]
        self.counts.generated += len(events)
        self.counts.periods += 1
        self.backlog.extend(events)
        over = len(self.backlog) - self.s.max_backlog
        if over > 0:
            for _ in range(over):
                self.backlog.popleft()
            self.counts.dropped += over
            log.error("PM backlog full: dropped the %d oldest events", over)

    def _drain(self) -> bool:
        """Send the backlog in batches; False when the API could not take a batch now."""
        while self.backlog:
            n = min(self.s.batch_size, len(self.backlog))
            batch = [self.backlog[i] for i in range(n)]
            began = self.clock.monotonic()
            got = self.sender.send(batch)
            if got is None:
                log.warning("the API is unavailable; %d PM events wait", len(self.backlog))
                return False
            for _ in range(n):
                self.backlog.popleft()
            self.counts.outcome.add(got)
            if got.rejected:
                log.warning("the API rejected %d PM events: %s", got.rejected, dict(got.reasons))
            if self.s.rate is not None:
                pause = n / self.s.rate - (self.clock.monotonic() - began)
                if pause > 0 and self.clock.wait(pause, self.stop):
                    return not self.backlog
        return True
