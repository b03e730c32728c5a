"""A simulated SMSC: how long one message takes and whether it fails, from a seeded stream."""

from __future__ import annotations

import random
from dataclasses import dataclass

from broadcast.outcome import DELIVERED, REASON_WEIGHTS


@dataclass
class Smsc:
    """Exponential send times of the given mean; failures at failure_rate, reasons by weight."""

    mean_time: float
    failure_rate: float
    rng: random.Random

    def attempt(self) -> tuple[float, str]:
        """(seconds the send takes, 'delivered' or a failure reason)."""
        seconds = self.rng.expovariate(1.0 / self.mean_time) if self.mean_time > 0 else 0.0
        if self.rng.random() < self.failure_rate:
            reason = self.rng.choices(list(REASON_WEIGHTS), weights=list(REASON_WEIGHTS.values()))[
                0
            ]
            return seconds, reason
        return seconds, DELIVERED
