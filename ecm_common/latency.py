"""The latency histogram layout shared by the exporter's in-memory rollups and the API's
PostgreSQL rollups: one bucket per millisecond below 50 ms, then log-spaced buckets of ratio
1.02 up to 120 s (values above are clamped to 120 s).

A bucket is reported by its geometric midpoint, so every order statistic is within
sqrt(1.02) - 1 = 0.995% (relative) of the true value, and so is p95, a convex combination of two
order statistics. BUCKET_SQL computes the same bucket in PostgreSQL.
"""

from __future__ import annotations

import math
from typing import LiteralString

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

LINEAR_MS = 50
RATIO = 1.02
MAX_MS = 120_000
_LOG_RATIO = math.log(RATIO)
N_BUCKETS = LINEAR_MS + math.floor(math.log(MAX_MS / LINEAR_MS) / _LOG_RATIO) + 1
QUANTILE = 0.95

# bucket_of() in SQL, for a column named latency_ms (smallint: N_BUCKETS is far below 32767).
BUCKET_SQL: LiteralString = (
    "least(CASE WHEN latency_ms < 50 THEN latency_ms"
    " ELSE 50 + floor(ln(least(latency_ms, 120000) / 50.0) / ln(1.02)) END, 443)::smallint"
)


def _representatives() -> FloatArray:
    """The value (ms) each bucket stands for: exact below LINEAR_MS, geometric midpoint above."""
    idx = np.arange(N_BUCKETS, dtype=np.float64)
    rep = np.where(idx < LINEAR_MS, idx, LINEAR_MS * RATIO ** (idx - LINEAR_MS + 0.5))
    return np.minimum(rep, MAX_MS)


BUCKET_VALUE_MS = _representatives()


def bucket_of(latency_ms: IntArray) -> IntArray:
    """Histogram bucket index of each latency in milliseconds."""
    v = np.clip(latency_ms, 0, MAX_MS).astype(np.float64)
    logs = np.floor(np.log(np.maximum(v, LINEAR_MS) / LINEAR_MS) / _LOG_RATIO) + LINEAR_MS
    out = np.where(v < LINEAR_MS, v, logs).astype(np.int64)
    return np.minimum(out, N_BUCKETS - 1)


def quantile_from_counts(counts: IntArray, q: float = QUANTILE) -> float:
    """percentile_cont(q) estimated from bucket counts; NaN when empty."""
    return float(quantiles_by_row(counts.reshape(1, -1), q)[0])


def quantiles_by_row(counts: IntArray, q: float = QUANTILE) -> FloatArray:
    """percentile_cont(q) per row of a (rows x buckets) count matrix, NaN for empty rows."""
    rows, width = counts.shape
    if not rows or not width:
        return np.full(rows, np.nan)
    n = counts.sum(axis=1)
    # One running count over the flattened matrix: row r's entries lie in (off[r], off[r] + n[r]],
    # so a search for off[r] + k finds row r's bucket holding order statistic k (0-based).
    running = np.cumsum(counts, axis=None)
    off = running[width - 1 :: width] - n
    h = q * np.maximum(n - 1, 0)
    k = np.floor(h).astype(np.int64)
    frac = h - k
    last = width - 1
    base = np.arange(rows, dtype=np.int64) * width
    k_hi = np.minimum(k + 1, np.maximum(n - 1, 0))
    b_lo = np.minimum(np.searchsorted(running, off + k, side="right") - base, last)
    b_hi = np.minimum(np.searchsorted(running, off + k_hi, side="right") - base, last)
    lo = BUCKET_VALUE_MS[b_lo]
    hi = BUCKET_VALUE_MS[b_hi]
    out: FloatArray = lo + frac * (hi - lo)
    out[n == 0] = np.nan
    return out
