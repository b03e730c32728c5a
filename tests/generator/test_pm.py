"""`ecm-generator pm`: the simulated counters, and the run posting them to a real ECM API on a
real PostgreSQL, paced by a clock the test moves (no sleeps)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from prometheus_client import CollectorRegistry

from api.app import build
from api.config import ApiSettings
from ecm_common.service import BackgroundServer, HttpSettings, listen_socket
from generator.pm import EXIT_UNDELIVERED, PmRun
from generator.pm_config import PmSettings
from generator.pm_model import PmModel, event_id, make_cells
from generator.scenario import load_scenario
from stack.pgcluster import free_port
from tests.api.conftest import NOW, Served, api_login, serve_api  # noqa: F401 (fixtures)
from tests.fixtures.clock import FakeClock

HOUR = 3600.0
DAY = 86400.0


def metric_values(events: list[dict[str, Any]], name: str) -> np.ndarray:
    return np.array([e["metrics"][name] for e in events])


def test_cells_belong_to_the_call_generators_towers() -> None:
    cells = make_cells(7, 3)
    assert cells.ids == (
        "TOWER_1-C1", "TOWER_1-C2", "TOWER_1-C3",
        "TOWER_2-C1", "TOWER_2-C2", "TOWER_2-C3",
        "TOWER_3-C1",
    )  # fmt: skip


def test_event_ids_are_deterministic_per_cell_and_period() -> None:
    model = PmModel(make_cells(30, 3), 900, seed=1)
    a, b = model.period(DAY * 100), model.period(DAY * 100)
    assert [e["event_id"] for e in a] == [e["event_id"] for e in b]
    assert len({e["event_id"] for e in a}) == 30
    assert a[0]["event_id"] == str(event_id("TOWER_1-C1", DAY * 100, 900))
    later = model.period(DAY * 100 + 900)
    assert not {e["event_id"] for e in a} & {e["event_id"] for e in later}


def test_values_stay_in_range_over_a_day_with_a_busy_hour() -> None:
    model = PmModel(make_cells(300, 3), 900, seed=2)
    day = [model.period(DAY * 200 + k * 900) for k in range(1, 97)]
    for events in day:
        for name in ("dl_prb_util_pct", "ul_prb_util_pct", "drop_rate_pct"):
            v = metric_values(events, name)
            assert ((v >= 0) & (v <= 100)).all()
        assert (metric_values(events, "rrc_conn_avg") >= 0).all()
    means = [metric_values(e, "dl_prb_util_pct").mean() for e in day]
    # A quiet night (about 04:00) and a busy day: docs/DOMAIN.md's daily average up to 80%.
    assert means[15] < 25 < max(means) < 80
    assert max(metric_values(e, "dl_prb_util_pct").max() for e in day) <= 99.5


SCENARIO = """
name: pm-test
description: PM test
duration: 2h
phases:
  - name: tower-2-down
    start: 0s
    duration: 1h
    targets: {towers: [TOWER_2]}
    effects: {failure_prob: 0.9, reason: RADIO_LINK_FAILURE}
  - name: surge-on-3
    start: 0s
    duration: 1h
    targets: {towers: [TOWER_3]}
    effects: {rate_multiplier: 3}
"""


def test_scenario_outage_silences_cells_and_surge_loads_them(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO, encoding="utf-8")
    scenario = load_scenario(path, n_towers=3)
    origin = DAY * 300 + 12 * HOUR  # midday: the surge has load to multiply
    model = PmModel(make_cells(9, 3), 900, seed=3, scenario=scenario, origin=origin)
    plain = PmModel(make_cells(9, 3), 900, seed=3)
    during = model.period(origin + 900)
    assert {e["entity_id"][:7] for e in during} == {"TOWER_1", "TOWER_3"}
    surge = {e["entity_id"]: e["metrics"] for e in during}
    base = {e["entity_id"]: e["metrics"] for e in plain.period(origin + 900)}
    for cell in ("TOWER_3-C1", "TOWER_3-C2", "TOWER_3-C3"):
        assert surge[cell]["dl_prb_util_pct"] > base[cell]["dl_prb_util_pct"]
        assert surge[cell]["drop_rate_pct"] > base[cell]["drop_rate_pct"]
    assert surge["TOWER_1-C1"] == base["TOWER_1-C1"]
    # After the phases: every cell reports again.
    assert len(model.period(origin + 2 * HOUR)) == 9


def stored(url: str) -> list[tuple[str, str]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT entity_id, to_char(event_time AT TIME ZONE 'UTC', 'HH24:MI:SS')"
            " FROM pm_events ORDER BY 2, 1"
        ).fetchall()
    return [(str(a), str(b)) for a, b in rows]


def settings(api_url: str, spool: Path, **kw: Any) -> PmSettings:
    base: dict[str, Any] = {
        "pm_spool_dir": str(spool),
        "api_url": api_url, "towers": 2, "sectors": 3, "period": "60s", "count": 18,
        "retry_base_delay": "1s", "retry_max_delay": "2s", "max_retries": 2,
    }  # fmt: skip
    return PmSettings.model_validate({**base, **kw})


@pytest.mark.integration
def test_generator_to_api_to_database_and_a_resend_is_all_duplicates(
    serve_api: Callable[..., Served],  # noqa: F811
    tmp_path: Path,
) -> None:
    served = serve_api()
    url = str(served.client.base_url)
    first = PmRun(settings(url, tmp_path), FakeClock(NOW), threading.Event(), None).run()
    assert (first.generated, first.periods, first.outcome.accepted) == (18, 3, 18)
    assert first.exit_status() == 0
    rows = stored(served.db.url)
    assert len(rows) == 18
    assert len({cell for cell, _ in rows}) == 6
    assert len({t for _, t in rows}) == 3
    again = PmRun(settings(url, tmp_path), FakeClock(NOW), threading.Event(), None).run()
    assert (again.outcome.accepted, again.outcome.duplicate) == (0, 18)
    assert len(stored(served.db.url)) == 18
    served.api.rollup.run()
    with psycopg.connect(served.db.reader_url) as conn:
        assert conn.execute("SELECT sum(samples) FROM pm_kpi_5m_overall").fetchone() == (18,)


class HookClock(FakeClock):
    """A FakeClock that calls hook(n) at its n-th wait (the test's way to change the world)."""

    def __init__(self, now: float, hook: Callable[[int], None]) -> None:
        super().__init__(now)
        self.hook = hook
        self.waits = 0

    def wait(self, seconds: float, event: threading.Event) -> bool:
        self.waits += 1
        self.hook(self.waits)
        return super().wait(seconds, event)


@pytest.fixture
def late_api(serve_api: Callable[..., Served]) -> Iterator[tuple[str, Callable[[], Served]]]:  # noqa: F811
    """A port with no API behind it yet, and a function that starts the API there."""
    port = free_port()
    servers: list[BackgroundServer] = []
    reference = serve_api()  # the database and login the late API uses

    def start() -> Served:
        api = build(
            ApiSettings.model_validate({"port": port, "listen_address": "127.0.0.1"}),
            reference.api_url, CollectorRegistry(), clock=FakeClock(NOW), jobs=False,
        )  # fmt: skip
        sock = listen_socket("127.0.0.1", port)
        servers.append(BackgroundServer(api.app, HttpSettings(port=port), sock=sock).start())
        return reference

    yield f"http://127.0.0.1:{port}", start
    for srv in servers:
        srv.stop()


@pytest.mark.integration
def test_api_down_then_back_every_event_arrives_once(
    late_api: tuple[str, Callable[[], Served]], tmp_path: Path
) -> None:
    url, start = late_api
    holder: list[Served] = []

    def hook(n: int) -> None:
        if n == 4 and not holder:
            holder.append(start())

    counts = PmRun(settings(url, tmp_path), HookClock(NOW, hook), threading.Event(), None).run()
    assert counts.retries > 0
    assert (counts.outcome.accepted, counts.undelivered, counts.exit_status()) == (18, 0, 0)
    assert len(stored(holder[0].db.url)) == 18


@pytest.mark.integration
def test_api_that_stays_down_is_reported_and_exits_4(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    counts = PmRun(settings(url, tmp_path, count=6), FakeClock(NOW), threading.Event(), None).run()
    assert (counts.generated, counts.outcome.accepted, counts.undelivered) == (6, 0, 6)
    assert counts.exit_status() == EXIT_UNDELIVERED
    assert "6 not delivered" in counts.summary()


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError):
        PmSettings.model_validate({"towers": 2, "sectors": 3, "cells": 7})
    with pytest.raises(ValueError):
        PmSettings.model_validate({"api_url": "ftp://x"})
    assert uuid.UUID(str(event_id("c", 1, 1)))


@pytest.mark.integration
def test_spooled_events_go_first_in_the_next_run_and_damage_is_counted(
    late_api: tuple[str, Callable[[], Served]], tmp_path: Path
) -> None:
    url, start = late_api
    down = PmRun(settings(url, tmp_path, count=12), FakeClock(NOW - 900), threading.Event(), None)
    first = down.run()
    assert (first.undelivered, first.exit_status()) == (12, EXIT_UNDELIVERED)
    # Two records of 6 (a batch per period); damage the second one's payload.
    segments = sorted(tmp_path.glob("*.spool"))
    assert len(segments) == 1
    data = bytearray(segments[0].read_bytes())
    data[-10] ^= 0xFF
    segments[0].write_bytes(bytes(data))
    served = start()
    again = PmRun(settings(url, tmp_path, count=6), FakeClock(NOW - 300), threading.Event(), None)
    counts = again.run()
    # The intact spooled period, then this run's own; the damaged one counted and kept aside.
    assert (counts.outcome.accepted, counts.dropped, counts.undelivered) == (12, 6, 0)
    assert counts.exit_status() == 5
    assert len(stored(served.db.url)) == 12
    assert not list(tmp_path.glob("*.spool"))
    assert list((tmp_path / "quarantine").iterdir())
