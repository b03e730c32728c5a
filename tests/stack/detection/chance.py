"""False tickets a year on a healthy network: the failure-ratio ticket's guards, by simulation.

A year of calls in 10 s steps at a steady rate and failure probability (the usual ratio); each
window is judged every 10 s, as Prometheus evaluates, and a run of judging windows over the
line counts as one ticket. The guards are the rules' (stack.rules.guard): enough calls
(slo.ticket_min_calls), or enough calls for significance (slo.significant_min_calls) and failures
slo.ticket_sigmas over those the failure ratio of the hour that ended usual_failure_offset ago
expects, on the square-root scale. The table counts tickets a year.

    python -m tests.stack.detection.chance            # the table in docs/DETECTION.md
"""

from __future__ import annotations

import argparse

import numpy as np
import numpy.typing as npt

from ecm_common.durations import parse_duration
from ecm_common.slo import SLO
from stack.rules import RuleParams

STEP_S = 10
DAY_STEPS = 86_400 // STEP_S


def _sums(x: npt.NDArray[np.int64], steps: int) -> npt.NDArray[np.int64]:
    """Sums over every run of steps consecutive buckets (the window ending at each bucket)."""
    c = np.concatenate(([0], np.cumsum(x)))
    return c[steps:] - c[:-steps]


def _episodes(hit: npt.NDArray[np.bool_]) -> int:
    return int(hit[0]) + int(np.sum(hit[1:] & ~hit[:-1]))


def simulate(rate: float, failure: float, window_s: int, days: int, seed: int) -> tuple[int, int]:
    """(tickets with the call guard alone, tickets with the significance path as well)."""
    slo, p = SLO, RuleParams()
    w = window_s // STEP_S
    hour = round(parse_duration(p.usual_failure_window)) // STEP_S
    off = round(parse_duration(p.usual_failure_offset)) // STEP_S
    rng = np.random.default_rng(seed)
    old = new = 0
    for _ in range(days):
        calls = rng.poisson(rate * STEP_S, DAY_STEPS + hour + off)
        failed = rng.binomial(calls, failure)
        c = _sums(calls, w)[hour + off - w :]
        f = _sums(failed, w)[hour + off - w :]
        u = (_sums(failed, hour) / _sums(calls, hour))[: len(c)]
        over = f > slo.warn_failure_ratio * c
        guard = over & (c >= slo.ticket_min_calls)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = 2 * (np.sqrt(f) - np.sqrt(u * c))
        sig = over & (c >= slo.significant_min_calls) & (z >= slo.ticket_sigmas)
        old += _episodes(guard)
        new += _episodes(guard | sig)
    return old, new


def main() -> None:
    """Print the table: rate, usual ratio, window, tickets a year with each guard."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=365)
    args = ap.parse_args()
    print("| calls/s | usual failure ratio | window | calls guard alone | with significance |")
    print("|---|---|---|---|---|")
    for rate in (5.0, 10.0, 20.0, 50.0):
        for failure in (0.003, 0.005):
            for window_s in (60, 120):
                old, new = simulate(rate, failure, window_s, args.days, seed=1)
                print(f"| {rate:g} | {failure:.1%} | {window_s // 60}m | {old} | {new} |")


if __name__ == "__main__":
    main()
