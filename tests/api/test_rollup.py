"""The KPI rollups as a user of pm_kpi_5m sees them: every stored event counted exactly once,
whatever commits while a fold runs; the KPI gauges on /metrics; retention; the roles."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.api.conftest import NOW, Served, event

pytestmark = pytest.mark.integration

URL = "/v1/events/pm"
BUCKET = NOW - NOW % 300  # the 5-minute bucket NOW is in


def kpi(s: Served) -> list[tuple[object, ...]]:
    """pm_kpi_5m as the reader role sees it (what Grafana reads), rounded."""
    with psycopg.connect(s.db.reader_url) as conn:
        rows = conn.execute(
            "SELECT extract(epoch FROM bucket)::bigint, entity_id, samples, dl_prb_util_pct,"
            " dl_prb_util_max_pct, ul_prb_util_pct, rrc_conn_avg, drop_rate_pct"
            " FROM pm_kpi_5m ORDER BY 1, 2"
        ).fetchall()
    return [(*r[:3], *(v if v is None else round(v, 3) for v in r[3:])) for r in rows]


def gauges(s: Served) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = s.client.get("/metrics").text
    return {
        (x.name, frozenset(x.labels.items())): x.value
        for fam in text_string_to_metric_families(text)
        for x in fam.samples
    }


def m(dl: float, ul: float, rrc: float, drop: float) -> dict[str, float]:
    return {
        "dl_prb_util_pct": dl,
        "ul_prb_util_pct": ul,
        "rrc_conn_avg": rrc,
        "drop_rate_pct": drop,
    }


def post(s: Served, *events: dict[str, object]) -> None:
    resp = s.client.post(URL, json=list(events))
    assert resp.status_code == 200, resp.text


def test_fold_averages_per_bucket_and_cell_exactly_once(served: Served) -> None:
    post(
        served,
        event("CELL-A", at=BUCKET + 10, metrics=m(60, 20, 10, 0.5)),
        event("CELL-A", at=BUCKET + 200, metrics=m(80, 40, 30, 1.5)),
        event("CELL-B", at=BUCKET - 100, metrics=m(10, 5, 2, 0)),
    )
    assert served.api.rollup.run()
    first = kpi(served)
    assert first == [
        (BUCKET - 300, "CELL-B", 1, 10.0, 10.0, 5.0, 2.0, 0.0),
        (BUCKET, "CELL-A", 2, 70.0, 80.0, 30.0, 20.0, 1.0),
    ]
    # A later event in the same bucket adds to it; a resend and an empty run add nothing.
    dup = event("CELL-A", at=BUCKET + 250, metrics=m(100, 60, 50, 2.5))
    post(served, dup)
    post(served, dup)
    assert served.api.rollup.run()
    assert served.api.rollup.run()
    assert kpi(served)[1] == (BUCKET, "CELL-A", 3, 80.0, 100.0, 40.0, 30.0, 1.5)
    with psycopg.connect(served.db.reader_url) as conn:
        overall = conn.execute(
            "SELECT samples, dl_prb_util_pct FROM pm_kpi_5m_overall WHERE bucket = %s",
            (datetime.fromtimestamp(BUCKET, UTC),),
        ).fetchone()
        folded = conn.execute("SELECT rows_folded FROM pm_rollup_state").fetchone()
    assert overall == (3, 80.0)
    assert folded == (4,)
    assert gauges(served)[("ecm_pm_rollup_rows_total", frozenset())] == 4


def test_a_row_committed_during_a_fold_is_counted_by_the_next(served: Served) -> None:
    post(served, event("CELL-A", at=BUCKET, metrics=m(50, 50, 5, 0)))
    with psycopg.connect(served.db.url) as writer:
        # In flight while the fold takes its snapshot: not visible, so not counted yet.
        writer.execute(
            "INSERT INTO pm_events (event_id, event_time, source, entity_type, entity_id,"
            " metrics, schema_version) VALUES (%s, %s, 'late', 'cell', 'CELL-A',"
            " '{\"dl_prb_util_pct\": 100}', 1)",
            (uuid.uuid4(), datetime.fromtimestamp(BUCKET + 1, UTC)),
        )
        assert served.api.rollup.run()
        assert kpi(served)[0][2:4] == (1, 50.0)
        writer.commit()
    assert served.api.rollup.run()
    assert kpi(served)[0][2:4] == (2, 75.0)


def test_kpi_gauges_thresholds_top_n_and_silent_cells(
    serve_api: Callable[..., Served],
) -> None:
    s = serve_api(top_n=2, pm_period="15m")
    post(
        s,
        event("CELL-OK", at=NOW - 60, metrics=m(40, 20, 10, 0.2)),
        event("CELL-BUSY", at=NOW - 60, metrics=m(90, 20, 100, 0.5)),
        event("CELL-FULL", at=NOW - 60, metrics=m(97, 20, 200, 1.5)),
        event("CELL-DROPS", at=NOW - 60, metrics=m(30, 20, 10, 2.5)),
        # Last heard 40 minutes ago: more than two 15-minute periods.
        event("CELL-GONE", at=NOW - 2400, metrics=m(30, 20, 10, 0)),
    )
    assert s.api.rollup.run()
    g = gauges(s)

    def one(name: str, **labels: str) -> float:
        return g[(name, frozenset(labels.items()))]

    assert one("ecm_pm_cells_known") == 5
    assert one("ecm_pm_cells_silent") == 1
    assert one("ecm_pm_cells_reporting") == 4
    assert one("ecm_pm_dl_prb_utilization_ratio") == pytest.approx((40 + 90 + 97 + 30) / 400)
    assert one("ecm_pm_drop_ratio") == pytest.approx((0.2 + 0.5 + 1.5 + 2.5) / 400)
    assert one("ecm_pm_cells_over_threshold", kpi="prb_utilization", level="warning") == 2
    assert one("ecm_pm_cells_over_threshold", kpi="prb_utilization", level="critical") == 1
    assert one("ecm_pm_cells_over_threshold", kpi="drop", level="warning") == 2
    assert one("ecm_pm_cells_over_threshold", kpi="drop", level="critical") == 1
    busiest = {
        dict(k[1])["cell"]: v
        for k, v in g.items()
        if k[0] == "ecm_pm_cell_dl_prb_utilization_ratio"
    }
    assert busiest == {"CELL-FULL": pytest.approx(0.97), "CELL-BUSY": pytest.approx(0.9)}
    drops = {dict(k[1])["cell"]: v for k, v in g.items() if k[0] == "ecm_pm_cell_drop_ratio"}
    assert drops == {"CELL-DROPS": pytest.approx(0.025), "CELL-FULL": pytest.approx(0.015)}
    # An hour later nothing is in the window: the averages and the top-N leave /metrics.
    s.clock.advance(3600)
    assert s.api.rollup.run()
    g = gauges(s)
    assert ("ecm_pm_dl_prb_utilization_ratio", frozenset()) not in g
    assert not [k for k in g if k[0] == "ecm_pm_cell_drop_ratio"]
    assert g[("ecm_pm_cells_silent", frozenset())] == 5


def test_retention_removes_old_folded_raw_events_and_keeps_rollups(
    serve_api: Callable[..., Served],
) -> None:
    s = serve_api(max_event_age="1d", raw_retention="1d", retention_batch_rows=100)
    post(s, *[event(f"CELL-{i}", at=NOW - 20 * 3600) for i in range(250)])
    assert s.api.rollup.run()
    post(s, event("CELL-NEW", at=NOW))
    # An old row not folded yet: retention must leave it until the rollup has it.
    with psycopg.connect(s.db.url) as conn:
        conn.execute(
            "INSERT INTO pm_events (event_id, event_time, source, entity_type, entity_id,"
            " metrics, schema_version) VALUES (%s, %s, 'x', 'cell', 'CELL-LATE', '{\"a\": 1}', 1)",
            (uuid.uuid4(), datetime.fromtimestamp(NOW - 20 * 3600, UTC)),
        )
    s.clock.advance(10 * 3600)
    assert s.api.rollup.retention() == 250
    assert raw_cells(s) == ["CELL-LATE", "CELL-NEW"]
    assert s.api.rollup.run()
    assert s.api.rollup.retention() == 1
    assert raw_cells(s) == ["CELL-NEW"]
    assert len(kpi(s)) == 252
    assert gauges(s)[("ecm_pm_retention_deleted_rows_total", frozenset())] == 251


def raw_cells(s: Served) -> list[str]:
    with psycopg.connect(s.db.url) as conn:
        return [r[0] for r in conn.execute("SELECT entity_id FROM pm_events ORDER BY 1")]


def test_roles_reader_reads_kpis_writer_and_api_stay_in_their_lane(served: Served) -> None:
    post(served, event())
    assert served.api.rollup.run()
    with psycopg.connect(served.db.reader_url, autocommit=True) as reader:
        assert reader.execute("SELECT count(*) FROM pm_kpi_5m_overall").fetchone() == (1,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            reader.execute("DELETE FROM pm_events")
    with (
        psycopg.connect(served.db.writer_url, autocommit=True) as writer,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        writer.execute("SELECT count(*) FROM pm_events")
    with psycopg.connect(served.api_url, autocommit=True) as api:
        # The API reads calls (issue 13) but never changes them.
        assert api.execute("SELECT count(*) FROM emergency_calls").fetchone() == (0,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            api.execute("DELETE FROM emergency_calls")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            api.execute("TRUNCATE pm_events")


def test_fresh_database_from_init_db_serves_the_api_as_its_login(
    serve_api: Callable[..., Served], empty_db: str, api_login: str
) -> None:
    """Migrated from nothing (database grants are not copied from a template): the ecm_api
    login stores and folds events there."""
    from db.migrate import migrate
    from db.roles import url_for

    migrate(empty_db)
    s = serve_api(url=url_for(empty_db, api_login, None))
    post(s, event("CELL-FRESH"))
    assert s.api.rollup.run()
    with psycopg.connect(empty_db) as conn:
        assert conn.execute("SELECT entity_id, samples FROM pm_kpi_5m").fetchall() == [
            ("CELL-FRESH", 1)
        ]


def test_a_backlog_is_folded_in_bounded_transactions_exactly_once(
    serve_api: Callable[..., Served],
) -> None:
    """Five posts of five events (five writing transactions), at most 7 rows per fold: one fold
    takes the first post only (a transaction is never split), a run catches up, every row once."""
    s = serve_api(max_fold_rows=7)
    for k in range(5):
        post(s, *[event(f"CELL-{k}", at=BUCKET + i, metrics=m(10 * k, 5, 1, 0)) for i in range(5)])
    with psycopg.connect(s.api_url) as conn:
        assert s.api.rollup.fold(conn) == (5, False)
    assert [r[1:3] for r in kpi(s)] == [("CELL-0", 5)]
    with psycopg.connect(s.db.url) as writer:
        # Committed while the backlog is caught up: counted too, once.
        writer.execute(
            "INSERT INTO pm_events (event_id, event_time, source, entity_type, entity_id,"
            " metrics, schema_version) VALUES (%s, %s, 'late', 'cell', 'CELL-9',"
            " '{\"dl_prb_util_pct\": 90}', 1)",
            (uuid.uuid4(), datetime.fromtimestamp(BUCKET, UTC)),
        )
    assert s.api.rollup.run()
    assert [r[1:4] for r in kpi(s)] == [
        ("CELL-0", 5, 0.0), ("CELL-1", 5, 10.0), ("CELL-2", 5, 20.0), ("CELL-3", 5, 30.0),
        ("CELL-4", 5, 40.0), ("CELL-9", 1, 90.0),
    ]  # fmt: skip
    with psycopg.connect(s.db.url) as conn:
        assert conn.execute("SELECT rows_folded FROM pm_rollup_state").fetchone() == (26,)
    # The run's own folds (the first fold above was called directly).
    assert gauges(s)[("ecm_pm_rollup_rows_total", frozenset())] == 21
