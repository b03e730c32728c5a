"""Time as the generator sees it, injectable so tests never wait on the wall clock."""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    """Wall time, a monotonic time, and an interruptible wait."""

    def time(self) -> float:
        """Seconds since the Unix epoch."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back."""
        ...

    def wait(self, seconds: float, event: threading.Event) -> bool:
        """Wait up to ``seconds`` or until ``event`` is set; True when it was set."""
        ...


class SystemClock:
    """The real clocks."""

    def time(self) -> float:
        """Seconds since the Unix epoch."""
        return time.time()

    def monotonic(self) -> float:
        """time.monotonic()."""
        return time.monotonic()

    def wait(self, seconds: float, event: threading.Event) -> bool:
        """Event.wait with a timeout."""
        return event.wait(max(seconds, 0.0))
