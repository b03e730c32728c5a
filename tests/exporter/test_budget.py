"""The series budget: full detail per region, per tower only what an operator acts on."""

from __future__ import annotations

import numpy as np
import psycopg
import pytest

from exporter.assess import Thresholds
from exporter.budget import Budget, Sizes, series_budget
from exporter.config import parse_window
from exporter.counters import Counters
from exporter.metrics import Published
from exporter.refresh import RefreshJob, view
from exporter.render import Renderer
from exporter.rollup import Catalog, Rollup, Rows
from tests.exporter.helpers import Call, by_tower, samples, total, value, write_calls
from tests.exporter.test_render import promtool_check
from tests.fixtures.clock import FakeClock
from tests.fixtures.postgres import EcmDb

NOW = 1_800_000_030.0
WINDOWS = ("5m", "10m", "1h")
# 12 towers in two regions; TOWER_5 fails half its calls, TOWER_12 is not in the towers table.
TOWERS = {f"TOWER_{i}": "NORTH" if i <= 6 else "SOUTH" for i in range(1, 12)}


def add_regions(url: str, towers: dict[str, str]) -> None:
    """Insert towers with their regions."""
    with psycopg.connect(url) as conn:
        for t, region in towers.items():
            conn.execute("INSERT INTO towers (tower_id, region) VALUES (%s, %s)", (t, region))
        conn.commit()


def traffic(now: float) -> list[Call]:
    """30 calls per tower in the last 3 minutes; TOWER_5 fails half, TOWER_2 one in 30."""
    out = []
    for t in [*TOWERS, "TOWER_12"]:
        for i in range(30):
            bad = (t == "TOWER_5" and i % 2 == 0) or (t == "TOWER_2" and i == 0)
            out.append(Call(now - 1 - i * 5, t, 1000 + 10 * i, "PSAP_BUSY" if bad else None))
    return out


def small_budget_job(url: str, clock: FakeClock) -> RefreshJob:
    """Detail for at most 4 towers (so none, 12 being more) except the listed TOWER_7."""
    return RefreshJob(
        url,
        [parse_window(w) for w in WINDOWS],
        Thresholds(top_n=1),
        15.0,
        clock=clock,
        budget=Budget(tower_detail_max=4, detail_towers=("TOWER_7",)),
    )


def gauges(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The window, region and tower gauges of an exposition."""
    return {k: v for k, v in samples(text).items() if "window" in dict(k[1])}


@pytest.mark.integration
def test_large_network_publishes_regions_and_only_towers_to_act_on(
    test_db: EcmDb, clock: FakeClock
) -> None:
    add_regions(test_db.url, TOWERS)
    job = small_budget_job(test_db.reader_url, clock)
    assert job.refresh()  # counters count the calls committed from now on
    write_calls(test_db.writer_url, traffic(clock.now))
    assert job.refresh()
    text = job.exposition().decode()
    job.close()
    promtool_check(text.encode())
    # A new exporter rebuilds the same gauges from the database (binary COPY; TOWER_12's rows,
    # absent from the towers table, read again by name).
    rebuilt = small_budget_job(test_db.reader_url, clock)
    assert rebuilt.refresh()
    assert gauges(rebuilt.exposition().decode()) == gauges(text)
    rebuilt.close()

    # Counters: the listed tower on its own, every other tower summed in its region.
    assert by_tower(text, "ecm_calls_total", tower="TOWER_7") == 30
    assert value(text, "ecm_calls_total", region="SOUTH", tower="TOWER_7") == 30
    assert value(text, "ecm_calls_total", region="NORTH", tower="") == 180
    assert value(text, "ecm_calls_total", region="SOUTH", tower="") == 120
    assert value(text, "ecm_calls_total", region="unknown", tower="") == 30  # TOWER_12
    assert total(text, "ecm_calls_total") == 12 * 30
    assert value(text, "ecm_calls_failed_total", region="NORTH", tower="", reason="PSAP_BUSY") == 16
    assert by_tower(text, "ecm_calls_total", tower="TOWER_5") is None

    # Region gauges: every region, every window.
    for w in WINDOWS:
        assert value(text, "ecm_region_window_calls", window=w, region="NORTH") == 180
        assert value(text, "ecm_region_window_failed_calls", window=w, region="NORTH") == 16
        assert value(text, "ecm_region_window_failure_ratio", window=w, region="NORTH") == (
            pytest.approx(16 / 180)
        )
        assert value(text, "ecm_region_window_status", window=w, region="NORTH") == 2  # > 5%
        assert value(text, "ecm_region_window_status", window=w, region="SOUTH") == 0
        reason = value(
            text, "ecm_region_window_reason_failed_calls", window=w, region="NORTH",
            reason="PSAP_BUSY",
        )  # fmt: skip
        assert reason == 16
        p95 = value(text, "ecm_region_window_latency_p95_seconds", window=w, region="SOUTH")
        assert p95 is not None and 1.2 < p95 < 1.3

    # Towers: the failing TOWER_5 (also the worst), the listed TOWER_7; TOWER_2 (1 in 30 failed,
    # under the 10% tower line) and the healthy towers are not published.
    towers = {
        dict(lab)["tower"]
        for (n, lab), _ in samples(text).items()
        if n == "ecm_tower_window_calls" and dict(lab)["window"] == "5m"
    }
    assert towers == {"TOWER_5", "TOWER_7"}
    assert by_tower(text, "ecm_tower_window_failure_ratio", window="5m", tower="TOWER_5") == 0.5
    assert by_tower(text, "ecm_worst_tower_failure_ratio", window="5m", tower="TOWER_5", rank="1")

    # The self-metrics count what was published, within the budget.
    published = len(samples(text))
    assert value(text, "ecm_exporter_series") == published
    budget = value(text, "ecm_exporter_series_budget")
    assert budget is not None and published <= budget
    assert value(text, "ecm_exporter_towers") == 12
    assert value(text, "ecm_exporter_detail_towers") == 1
    assert value(text, "ecm_exporter_regions") == 3


@pytest.mark.integration
def test_small_network_keeps_every_tower(test_db: EcmDb, job: RefreshJob, clock: FakeClock) -> None:
    add_regions(test_db.url, {"TOWER_1": "NORTH", "TOWER_2": "SOUTH"})
    assert job.refresh()
    write_calls(test_db.writer_url, [Call(clock.now - 5, "TOWER_1", 900)])
    assert job.refresh()
    text = job.exposition().decode()
    assert value(text, "ecm_calls_total", region="NORTH", tower="TOWER_1") == 1
    assert value(text, "ecm_calls_total", region="SOUTH", tower="TOWER_2") == 0
    assert by_tower(text, "ecm_tower_window_calls", window="1h", tower="TOWER_2") == 0
    assert not [k for k in samples(text) if k[0] == "ecm_calls_total" and ("tower", "") in k[1]]


def worst_case(n_towers: int, n_regions: int, b: Budget, th: Thresholds) -> tuple[int, int]:
    """(series rendered, budget) when every tower fails, with every reason, in every window."""
    catalog = Catalog(b.tower_detail_max, b.detail_towers)
    catalog.add_towers((f"T{i}", f"R{i % n_regions}") for i in range(n_towers))
    windows = [(w, parse_window(w).minutes) for w in WINDOWS]
    rollup = Rollup(catalog, windows)
    counters = Counters(catalog)
    n = n_towers * th.min_tower_calls * 2
    rng = np.random.default_rng(7)
    rows = Rows(
        np.arange(n) % n_towers,
        rng.integers(-1, len(catalog.reasons), n),  # about 6 in 7 calls fail
        rng.integers(100, 40_000, n),
        NOW - rng.uniform(0, 200, n),
    )
    rollup.add(rows, NOW)
    counters.add(rows)
    p = Published(
        interval_s=15.0,
        thresholds=th,
        counters=counters.snapshot(),
        database_up=True,
        windows=[view(rollup, w, th, b.failing_towers_max) for w, _ in windows],
    )
    renderer = Renderer()
    body = renderer.render(p)
    sizes = Sizes(
        towers=n_towers, detail=len(catalog.detail), regions=len(catalog.regions),
        reasons=len(catalog.reasons), windows=len(WINDOWS), top_n=th.top_n,
        failing_max=b.failing_towers_max,
    )  # fmt: skip
    return len(samples(body.decode())), series_budget(sizes)


@pytest.mark.parametrize(
    ("towers", "regions", "budget", "gap"),
    [
        # Every tower has detail: no region sums its other towers (3 x 26 counter series).
        (50, 3, Budget(), 12 + 3 * (1 + 6 + 19)),
        (3_000, 12, Budget(), None),  # none has: regions, worst and failing towers only
        (3_000, 12, Budget(detail_towers=("T5", "T77"), failing_towers_max=40), None),
        (200, 2, Budget(tower_detail_max=0), 12),
    ],
)
def test_series_never_exceed_the_documented_formula(
    towers: int, regions: int, budget: Budget, gap: int | None
) -> None:
    th = Thresholds(min_tower_calls=3, top_n=5)
    published, bound = worst_case(towers, regions, budget, th)
    assert published <= bound
    if gap is not None:
        # Every tower published: the bound is met but for the optional self-metrics (no refresh
        # duration, last success or query runs in this snapshot: 12 series) and region sums.
        assert bound - published == gap


def test_one_hundred_thousand_towers_stay_under_fifty_thousand_series() -> None:
    sizes = Sizes(
        towers=100_000, detail=0, regions=100, reasons=6, windows=3, top_n=5,
        failing_max=Budget().failing_towers_max,
    )  # fmt: skip
    assert series_budget(sizes) < 50_000


@pytest.mark.integration
def test_a_large_network_looks_up_only_the_new_towers_its_calls_name(
    test_db: EcmDb, clock: FakeClock
) -> None:
    add_regions(test_db.url, TOWERS)
    job = small_budget_job(test_db.reader_url, clock)
    assert job.refresh()
    # A tower added to the table later, with calls: its region comes from the table.
    add_regions(test_db.url, {"TOWER_40": "SOUTH", "TOWER_41": "WEST"})
    write_calls(test_db.writer_url, [Call(clock.now - 2, "TOWER_40", 700)] * 3)
    assert job.refresh()
    text = job.exposition().decode()
    job.close()
    assert value(text, "ecm_calls_total", region="SOUTH", tower="") == 3
    assert value(text, "ecm_region_window_calls", window="5m", region="SOUTH") == 3
    # TOWER_41 has no calls: a large network does not read the whole table to find it.
    assert value(text, "ecm_exporter_towers") == 12
    assert value(text, "ecm_region_window_calls", window="5m", region="WEST") is None
