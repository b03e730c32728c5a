"""`ecm-generator pm`: PM counters of every cell, one event per cell per period, posted to the
ECM API in batches, continuously until --count events, --duration or a signal.

The first period sent is the last one completed at start-up (data at once), then each period as
it ends. Batches the API cannot take now (it is down) wait in the spool (generator/pm_backlog.py,
the calls generator's spool format) and go first when it answers again, also in the next run;
at the end the run says what it could not deliver and exits non-zero.
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from ecm_common.clock import Clock
from generator.config import default_state_dir
from generator.pm_backlog import Backlog
from generator.pm_config import PmSettings
from generator.pm_model import PmModel, make_cells
from generator.pm_sender import Outcome, Sender
from generator.scenario import load_scenario
from generator.spool import Spool

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
        spool_dir = Path(s.pm_spool_dir) if s.pm_spool_dir else default_state_dir() / "pm-spool"
        self.backlog = Backlog(Spool(spool_dir), s.batch_size, s.max_backlog)
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
        self.counts = PmCounts()
        self.spool_dir = spool_dir

    def run(self) -> PmCounts:
        """Generate and send until done; the counts say what happened."""
        next_end = math.floor(self.start / self.s.period) * self.s.period
        end_at = self.start + self.s.duration if self.s.duration else math.inf
        try:
            while not self.stop.is_set() and not self._enough() and next_end <= end_at:
                self._produce(next_end)
                next_end += self.s.period
                pending = not self._drain()
                while not self.stop.is_set():
                    wait = next_end - self.clock.time()
                    if pending:
                        # The API is down: try again before the next period, not after it.
                        wait = min(wait, self.s.retry_max_delay)
                    if wait <= 0 or self.clock.wait(wait, self.stop):
                        break
                    if pending:
                        pending = not self._drain()
            self._drain()
        finally:
            self.sender.close()
            self.backlog.spool_memory()
        self.counts.undelivered = self.backlog.waiting()
        self.counts.dropped = self.backlog.dropped + self.backlog.damaged
        self.counts.retries = self.sender.retries
        if self.counts.undelivered:
            log.warning(
                "%d PM events wait in %s; the next run sends them first",
                self.counts.undelivered,
                self.spool_dir,
            )
        return self.counts

    def _enough(self) -> bool:
        return self.s.count is not None and self.counts.generated >= self.s.count

    def _produce(self, period_end: float) -> None:
        events = self.model.period(period_end)
        if self.s.count is not None:
            events = events[: self.s.count - self.counts.generated]
        self.counts.generated += len(events)
        self.counts.periods += 1
        self.backlog.add(events)

    def _drain(self) -> bool:
        """Send what waits; False when the API could not take it now."""
        delivered = self.backlog.send(self._send, self.counts.outcome.add)
        if not delivered:
            log.warning("the API is unavailable; PM events wait in the spool")
        return delivered

    def _send(self, batch: list[dict[str, Any]]) -> Outcome | None:
        began = self.clock.monotonic()
        got = self.sender.send(batch)
        if got is not None and got.rejected:
            log.warning("the API rejected %d PM events: %s", got.rejected, dict(got.reasons))
        if got is not None and self.s.rate is not None:
            pause = len(batch) / self.s.rate - (self.clock.monotonic() - began)
            if pause > 0:
                self.clock.wait(pause, self.stop)
        return got
