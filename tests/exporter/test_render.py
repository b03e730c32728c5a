"""The fast renderer writes exactly what prometheus_client's generate_latest writes."""

from __future__ import annotations

import math
import subprocess
from collections.abc import Sequence

import numpy as np
import pytest

from exporter.assess import Thresholds
from exporter.counters import Counters
from exporter.metrics import Published, QueryStats
from exporter.refresh import RefreshJob, view
from exporter.render import Renderer, format_values
from exporter.rollup import Catalog, Rollup, Rows
from tests.exporter.helpers import Call, add_towers, write_calls
from tests.exporter.reference import reference
from tests.fixtures.clock import FakeClock
from tests.fixtures.postgres import EcmDb
from tests.fixtures.tools import require_binary

NOW = 1_800_000_030.0
WINDOWS = (("5m", 5), ("10m", 10), ("1h", 60))
ODD_TOWERS = ['TOWER "quoted"', "back\\slash", "new\nline", "ünïcødé 塔", "", "a,b=c}{"]


def snapshot(
    towers: Sequence[str],
    n_rows: int,
    *,
    seed: int = 1,
    thresholds: Thresholds | None = None,
    queries: dict[str, QueryStats] | None = None,
    with_windows: bool = True,
    oldest_s: float = 3000.0,
    newest_s: float = 0.0,
    extra_reason: bool = False,
    regions: int = 1,
    detail_max: int = 1000,
    detail_towers: Sequence[str] = (),
) -> Published:
    """A snapshot built by the real rollup and counters from random calls (no database)."""
    rng = np.random.default_rng(seed)
    catalog = Catalog(detail_max, detail_towers)
    catalog.add_towers((t, f"REGION_{i % regions + 1}") for i, t in enumerate(towers))
    if extra_reason:
        catalog.reason("SOMETHING_NEW")
    rollup = Rollup(catalog, list(WINDOWS))
    counters = Counters(catalog)
    if n_rows:
        n_r = len(catalog.reasons)
        rows = Rows(
            rng.integers(0, len(towers), n_rows),
            np.where(rng.random(n_rows) < 0.2, rng.integers(0, n_r, n_rows), -1),
            rng.lognormal(math.log(1800), 0.8, n_rows).astype(np.int64),
            NOW - rng.uniform(newest_s, oldest_s, n_rows),
        )
        rollup.add(rows, NOW)
        counters.add(rows)
    else:
        rollup.add(Rows.empty(), NOW)
    counters.add(Rows.empty())
    th = thresholds or Thresholds(min_tower_calls=1)
    views = [view(rollup, label, th, 3) for label, _ in WINDOWS] if with_windows else []
    return Published(
        interval_s=15.0,
        thresholds=th,
        counters=counters.snapshot(),
        database_up=with_windows,
        last_success=NOW if with_windows else None,
        queries=queries if queries is not None else {"new_calls": QueryStats(0.0123, NOW, 2)},
        windows=views,
        # A stale snapshot is also one before the first refresh: no duration yet.
        refresh_duration_s=0.0421 if with_windows else math.nan,
        overruns=2 if with_windows else 0,
        rows_skipped={"future": 3, "past": 70_000} if with_windows else {},
        rebuilds={"start": 1, "rows_removed": 2} if with_windows else {},
        series_budget=12_345,
        towers=len(catalog.towers),
        detail_towers=len(catalog.detail),
        regions=len(catalog.regions),
    )


def promtool_check(body: bytes) -> None:
    """promtool check metrics passes without a complaint."""
    promtool = require_binary("promtool", "prometheus")
    check = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True,
                           timeout=60, check=False)  # fmt: skip
    assert check.returncode == 0, (check.stdout + check.stderr).decode()
    assert check.stdout.strip() == b"" and check.stderr.strip() == b""


CASES = {
    "no towers": lambda: snapshot([], 0),
    "one tower": lambda: snapshot(["TOWER_1"], 40),
    "towers needing escapes": lambda: snapshot(ODD_TOWERS, 600, extra_reason=True),
    "empty windows": lambda: snapshot(["TOWER_1", "TOWER_2"], 0),
    "only old calls (short windows empty)": lambda: snapshot(
        ["TOWER_1", "TOWER_2"], 300, newest_s=900.0, seed=5
    ),
    "stale (no window gauges)": lambda: snapshot(["TOWER_1"], 50, with_windows=False),
    "NaN and infinite values": lambda: snapshot(
        ["TOWER_1", "TOWER_2"],
        100,
        # Settings refuse these values; the renderer must still print them as Prometheus does.
        thresholds=Thresholds.model_construct(
            warn_p95_seconds=math.inf,
            alert_p95_seconds=-math.inf,
            warn_failure_ratio=math.nan,
            min_tower_calls=1,
        ),
        queries={
            "new_calls": QueryStats(math.nan, None, 0),
            "rebuild": QueryStats(1e-7, 0.0, 0),
            "towers": QueryStats(-0.0, 1e22, 1_000_000),
        },
    ),
    "500 towers": lambda: snapshot([f"TOWER_{i}" for i in range(1, 501)], 60_000, seed=3),
    "2,000 towers in 7 regions, detail for two listed towers only": lambda: snapshot(
        [f"TOWER_{i}" for i in range(1, 2001)],
        30_000,
        seed=4,
        regions=7,
        detail_max=100,
        detail_towers=["TOWER_7", "TOWER_1999"],
        thresholds=Thresholds(min_tower_calls=5, top_n=4),
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_renderer_matches_generate_latest(case: str) -> None:
    p = CASES[case]()
    expected = reference(p)
    renderer = Renderer()
    assert renderer.render(p) == expected
    assert renderer.render(p) == expected  # again, from the cached label prefixes
    promtool_check(expected)


def test_large_and_growing_counters_match() -> None:
    """Counts past the small-number table and past 1e6 (Go's exponent form), new towers later."""
    renderer = Renderer()
    p = snapshot(["TOWER_1", "TOWER_2"], 50)
    p.counters.calls[:] = [70_000, 12_345_678]
    p.counters.buckets[0, :] = [0, 1, 65_535, 65_536, 999_999, 1_000_000, *[3] * 11]
    p.counters.latency_sum_ms[:] = [123_456_789_012, 5]
    assert renderer.render(p) == reference(p)
    more = snapshot(["TOWER_1", "TOWER_2", "TOWER_3"], 80, seed=9)
    assert renderer.render(more) == reference(more)


def test_format_values_is_float_to_go_string() -> None:
    values = [0, -0.0, 1, 2.5, 1e-7, 123456.0, 999999.0, 1e6, 1234567.0, 1.5e6, 1e16, 1e22,
              -3.0, -1e7, math.inf, -math.inf, math.nan, 0.1 + 0.2, 4.1793]  # fmt: skip
    # floatToGoString's documented outputs, written out here rather than computed by it.
    expected = ["0.0", "-0.0", "1.0", "2.5", "1e-07", "123456.0", "999999.0", "1e+06",
                "1.234567e+06", "1.5e+06", "1e+16", "1e+22", "-3.0", "-10000000.0", "+Inf",
                "-Inf", "NaN", "0.30000000000000004", "4.1793"]  # fmt: skip
    assert format_values(values) == expected
    assert format_values(values, "\n") == [v + "\n" for v in expected]


@pytest.mark.integration
def test_served_exposition_matches_the_reference(
    test_db: EcmDb, job: RefreshJob, clock: FakeClock
) -> None:
    add_towers(test_db.url, ["TOWER_1", 'TOWER "2"'])
    assert job.refresh()
    calls = [
        Call(clock.now - i, "TOWER_1", 900 + 37 * i, None if i % 4 else "PSAP_BUSY")
        for i in range(60)
    ]
    write_calls(test_db.writer_url, calls)
    clock.advance(15)
    assert job.refresh()
    assert job.exposition() == reference(job.published)
    promtool_check(job.exposition())
