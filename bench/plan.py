"""How big each part of the benchmark is: the full run and the seconds-long `--quick` run."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Plan:
    """Sizes and repeat counts for one benchmark run."""

    quick: bool
    # Rows held by the longest window (1h) for the refresh comparison.
    window_rows: tuple[int, ...]
    tower_counts: tuple[int, ...]
    # Rows arriving between two steady-state refreshes (a few calls/s over a 15 s interval).
    new_rows_per_refresh: int
    refresh_interval_s: float
    steady_refreshes: int
    direct_repeats: int
    writer_rows: int
    writer_repeats: int
    scrapes: int
    # query-exporter takes most of a second per scrape at 5,000 towers: fewer of its scrapes.
    qe_scrapes: int
    # Past twice the longest window, so the middle sample is taken with that window full.
    memory_minutes: int
    memory_rows_per_minute: int
    run_query_exporter: bool
    # The exporter's windows, as users run it; the data spans less than the longest so that
    # window holds every row whatever its minute alignment.
    windows: tuple[str, ...] = ("5m", "10m", "1h")
    data_span_minutes: int = 50

    @property
    def largest(self) -> int:
        """Rows of the biggest window size."""
        return max(self.window_rows)


FULL = Plan(
    quick=False,
    window_rows=(10_000, 100_000, 1_000_000),
    tower_counts=(50, 5_000),
    new_rows_per_refresh=300,
    refresh_interval_s=15.0,
    steady_refreshes=15,
    direct_repeats=5,
    writer_rows=200_000,
    writer_repeats=3,
    scrapes=300,
    qe_scrapes=50,
    memory_minutes=120,
    memory_rows_per_minute=2_000,
    run_query_exporter=True,
)

QUICK = Plan(
    quick=True,
    window_rows=(10_000, 50_000),
    tower_counts=(50, 500),
    new_rows_per_refresh=100,
    refresh_interval_s=15.0,
    steady_refreshes=4,
    direct_repeats=2,
    writer_rows=10_000,
    writer_repeats=1,
    scrapes=50,
    qe_scrapes=20,
    memory_minutes=12,
    memory_rows_per_minute=200,
    run_query_exporter=False,
)
