"""Section 5: exporter memory over simulated hours of traffic, in a process of its own.

Run as `python -m bench.memory URL MINUTES ROWS_PER_MINUTE TOWERS`; prints one JSON object.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tracemalloc
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg

from bench import data, ecm, measure
from bench.plan import Plan

STEPS_PER_MINUTE = 4


@dataclass(frozen=True)
class MemorySample:
    """Memory after a simulated minute."""

    minute: int
    rss_bytes: int
    traced_bytes: int


def simulate(
    url: str,
    minutes: int,
    rows_per_minute: int,
    towers: int,
    windows: tuple[str, ...],
    regions: int = 1,
) -> list[MemorySample]:
    """Feed rows minute by minute on an injected clock, refreshing 4 times a minute."""
    marks = {1, max(1, minutes // 2), minutes}
    out: list[MemorySample] = []
    with psycopg.connect(url, autocommit=True) as conn:
        data.reset(conn)
        clock = ecm.FakeClock(data.db_now(conn).timestamp())
        step_s = 60.0 / STEPS_PER_MINUTE
        with ecm.job(url, windows, clock) as job:
            job.refresh()
            tracemalloc.start()
            for minute in range(1, minutes + 1):
                for _ in range(STEPS_PER_MINUTE):
                    now = clock.advance(step_s)
                    end = datetime.fromtimestamp(now, UTC)
                    n = rows_per_minute // STEPS_PER_MINUTE
                    data.add_calls(conn, n, towers=towers, end=end, span_s=step_s, regions=regions)
                    if not job.refresh():
                        raise RuntimeError("an exporter refresh failed")
                if minute in marks:
                    traced, _peak = tracemalloc.get_traced_memory()
                    out.append(MemorySample(minute, measure.rss_bytes(), traced))
            tracemalloc.stop()
    return out


def run(url: str, plan: Plan, towers: int, regions: int = 1) -> list[MemorySample]:
    """Run the simulation in a fresh interpreter so its memory is the exporter's alone."""
    args = [sys.executable, "-m", "bench.memory", url, str(plan.memory_minutes)]
    args += [str(plan.memory_rows_per_minute), str(towers), ",".join(plan.windows), str(regions)]
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"memory simulation failed: {proc.stderr.strip()[-400:]}")
    return [MemorySample(**s) for s in json.loads(proc.stdout)]


def main(argv: list[str]) -> int:
    """Entry point of the child process."""
    url, minutes, rows, towers, windows, regions = argv
    found = simulate(
        url, int(minutes), int(rows), int(towers), tuple(windows.split(",")), int(regions)
    )
    print(json.dumps([s.__dict__ for s in found]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
