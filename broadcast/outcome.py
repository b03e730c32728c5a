"""The outcomes a delivery attempt can have, which of them are retried, and send-time buckets."""

from __future__ import annotations

from typing import Final

DELIVERED: Final = "delivered"
# Claimed after its campaign was cancelled: never sent, ends 'cancelled'.
WITHDRAWN: Final = "withdrawn"

# SMPP final message states (SMPP 3.4, 5.2.28) a simulated SMSC answers with, and their weights
# among failures.
FAILURE_REASONS: Final[dict[str, str]] = {
    "UNDELIV": "the handset cannot be reached for good (unknown or barred subscriber)",
    "EXPIRED": "validity period ran out before the handset was reached",
    "REJECTD": "the SMSC refused the message",
    "THROTTLED": "the SMSC asked to slow down",
}
REASONS: Final = tuple(FAILURE_REASONS)
REASON_WEIGHTS: Final[dict[str, float]] = {
    "UNDELIV": 0.4,
    "EXPIRED": 0.2,
    "REJECTD": 0.2,
    "THROTTLED": 0.2,
}
# Temporary conditions: the message goes back to the queue with a backoff, up to the
# campaign's max_attempts.
RETRYABLE: Final = ("EXPIRED", "THROTTLED")

# Send-time buckets in seconds, shared by the Prometheus histogram and the monitor's p95.
SEND_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def bucket_of(seconds: float) -> str:
    """The name of the send-time bucket holding seconds: its upper bound, or +Inf."""
    for bound in SEND_BUCKETS:
        if seconds <= bound:
            return f"{bound:g}"
    return "+Inf"


def quantile(q: float, counts: dict[str, int]) -> float | None:
    """The q-quantile of a bucketed distribution (linear within a bucket); None when empty."""
    total = sum(counts.values())
    if total == 0:
        return None
    rank = q * total
    seen, lower = 0, 0.0
    for bound in SEND_BUCKETS:
        n = counts.get(f"{bound:g}", 0)
        if n and seen + n >= rank:
            return lower + (bound - lower) * (rank - seen) / n
        seen += n
        lower = bound
    return SEND_BUCKETS[-1]
