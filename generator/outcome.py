"""How a run ends: one error class per exit status for every way calls were not all stored."""

from __future__ import annotations

from pathlib import Path

from ecm_common.errors import EcmError
from generator.pipeline import Counts


class RunOutcome(EcmError):
    """A run that did not store every call; ``counts`` says what happened to them."""

    def __init__(self, message: str, counts: Counts | None = None) -> None:
        super().__init__(message)
        self.counts = counts or Counts()


class CallsLeftInSpool(RunOutcome):
    """The run ended while the database was away: calls wait in the spool for the next run."""

    exit_code = 4


class CallsNotStored(RunOutcome):
    """Calls were lost, damaged spool records not replayed, or the run had to stop early."""

    exit_code = 5


class WritesRefused(RunOutcome):
    """The database refused the generator's writes (a grant, the schema); the run stopped."""

    exit_code = 6


def check_outcome(counts: Counts, spool_dir: Path) -> None:
    """Raise the error that says what was not stored and where it is; return if all was."""
    waiting = (
        f"{counts.in_spool} call(s) wait in the spool {spool_dir} and are replayed by the next run"
    )
    if counts.lost or counts.corrupt or counts.failure:
        parts = []
        if counts.failure:
            parts.append(
                f"the run stopped early ({counts.failure}); {counts.lost} call(s) were lost"
            )
        if counts.corrupt:
            parts.append(
                f"{counts.corrupt} damaged spool record(s) were not replayed (their bytes are in"
                f" {spool_dir / 'quarantine'})"
            )
        if counts.in_spool:
            parts.append(waiting)
        raise CallsNotStored("; ".join(parts) + f" ({counts.summary()})", counts)
    if counts.refusal is not None:
        raise WritesRefused(
            f"the database refused the generator's writes: {counts.refusal}; {waiting}"
            f" ({counts.summary()})",
            counts,
        )
    if counts.in_spool:
        raise CallsLeftInSpool(
            f"the database was unavailable when the run ended: {waiting} ({counts.summary()})",
            counts,
        )
