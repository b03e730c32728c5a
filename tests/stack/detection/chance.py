"""False tickets a year on a healthy network: the failure-ratio tickets' guards, by simulation.

Calls in 10 s steps at a steady rate and failure probability (the usual ratio), for a year;
each ticket's windows are judged every 10 s, as Prometheus evaluates, and a run of judging
evaluations counts as one ticket. Three guards (stack.rules.guard) are compared: enough calls
alone; or, in a window of slo.significant_min_calls, failures slo.ticket_sigmas over those the
failure ratio of the hour that ended usual_failure_offset ago expects, on the square-root scale
(the fifth real-time run's rules); and the rules now, whose call guard also needs the failures
that far over a healthy network's slo.baseline_failure_ratio. Latency is left out: a window's
WARN here is its failure ratio alone.

    python -m tests.stack.detection.chance            # the table in docs/DETECTION.md
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ecm_common.durations import parse_duration
from ecm_common.slo import SLO
from exporter.config import DEFAULT_WINDOWS
from stack.rules import RuleParams

STEP_S = 10
DAY_STEPS = 86_400 // STEP_S
RATES = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0)
GUARDS = (
    "calls guard alone",
    "or significant over the usual",
    "now: significant over a healthy 0.5% or the usual",
)
Counts = npt.NDArray[np.int64]
Hits = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Line:
    """A window judged over a failure ratio, its guard's calls, and the window confirming it."""

    window_s: int
    ratio: float
    min_calls: int
    confirm_s: int | None = None


def _steps(text: str) -> int:
    return round(parse_duration(text)) // STEP_S


def _sums(x: Counts, steps: int) -> Counts:
    """Sums over every run of steps consecutive buckets (the window ending at each bucket)."""
    c = np.concatenate(([0], np.cumsum(x)))
    return c[steps:] - c[:-steps]


def _day(x: Counts, steps: int, first: int) -> Counts:
    """The day's windows of steps buckets, the first ending just before bucket first."""
    return _sums(x, steps)[first - steps : first - steps + DAY_STEPS]


def _episodes(hit: Hits) -> int:
    return int(hit[0]) + int(np.sum(hit[1:] & ~hit[:-1]))


def _judge(line: Line, calls: Counts, failed: Counts, first: int) -> tuple[Hits, Hits, Hits]:
    """Over the line per 10 s, with each of GUARDS."""
    slo, p = SLO, RuleParams()
    w = line.window_s // STEP_S
    c, f = _day(calls, w, first), _day(failed, w, first)
    hour, off = _steps(p.usual_failure_window), _steps(p.usual_failure_offset)
    u = _day(failed, hour, first - off) / _day(calls, hour, first - off)
    over = f > line.ratio * c
    if line.confirm_s is not None:
        cw = line.confirm_s // STEP_S
        over &= _day(failed, cw, first) > line.ratio * _day(calls, cw, first)
    with np.errstate(divide="ignore", invalid="ignore"):
        usual = 2 * (np.sqrt(f) - np.sqrt(u * c)) >= slo.ticket_sigmas
        healthy = 2 * (np.sqrt(f) - np.sqrt(slo.baseline_failure_ratio * c)) >= slo.ticket_sigmas
    enough = c >= line.min_calls
    sig = (c >= slo.significant_min_calls) & usual
    return over & enough, over & (enough | sig), over & ((enough & healthy) | sig)


def simulate(
    rate: float, failure: float, lines: tuple[Line, ...], days: int, seed: int
) -> list[int]:
    """Tickets with each of GUARDS."""
    p = RuleParams()
    first = _steps(p.usual_failure_window) + _steps(p.usual_failure_offset)
    rng = np.random.default_rng(seed)
    counts = [0] * len(GUARDS)
    for _ in range(days):
        calls = rng.poisson(rate * STEP_S, DAY_STEPS + first)
        failed = rng.binomial(calls, failure)
        hits = [np.zeros(DAY_STEPS, dtype=bool) for _ in GUARDS]
        for line in lines:
            for i, h in enumerate(_judge(line, calls, failed, first)):
                hits[i] |= h
        counts = [n + _episodes(h) for n, h in zip(counts, hits, strict=True)]
    return counts


def _adaptive_lines(windows: tuple[str, ...], confirm: str) -> tuple[Line, ...]:
    """A failure-ratio ticket's windows, each longer than confirm confirmed over it."""
    cs = _steps(confirm) * STEP_S
    return tuple(
        Line(
            _steps(w) * STEP_S,
            SLO.warn_failure_ratio,
            SLO.ticket_min_calls,
            cs if _steps(w) * STEP_S > cs else None,
        )
        for w in windows
    )


def _rows() -> Iterator[tuple[str, tuple[Line, ...]]]:
    p = RuleParams()
    yield "EcmCallFailureRatioHigh", _adaptive_lines(p.detect_windows, p.confirm_window)
    yield "EcmWindowWarn", _adaptive_lines(DEFAULT_WINDOWS, p.exporter_confirm_window)
    yield (
        "EcmCallSuccessBudgetBurn",
        tuple(
            Line(
                _steps(bw.long) * STEP_S,
                bw.factor * SLO.error_budget,
                SLO.burn_ticket_min_calls,
                _steps(bw.short) * STEP_S,
            )
            for bw in SLO.burn_ticket
        ),
    )


def main() -> None:
    """Print the table: ticket, rate, usual ratio, tickets a year with each guard."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=365)
    args = ap.parse_args()
    print("| ticket | calls/s | usual failure ratio | " + " | ".join(GUARDS) + " |")
    print("|---" * (3 + len(GUARDS)) + "|")
    for name, lines in _rows():
        for rate in RATES:
            for failure in (0.003, 0.005):
                counts = simulate(rate, failure, lines, args.days, seed=1)
                cells = " | ".join(map(str, counts))
                print(f"| {name} | {rate:g} | {failure:.1%} | {cells} |")


if __name__ == "__main__":
    main()
