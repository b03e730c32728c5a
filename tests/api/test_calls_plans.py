"""Every query of the calls routes uses an index on a table with enough rows: EXPLAIN, as the
reader role, shows no sequential scan of emergency_calls for any filter combination (and the
towers page reads no raw calls at all)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from psycopg import sql

from api import calls_sql
from tests.api.calls_data import add_calls, add_towers
from tests.api.conftest import NOW
from tests.fixtures.postgres import EcmDb

pytestmark = pytest.mark.integration

ROWS = 120_000
PARAMS: dict[str, Any] = {
    "from": datetime.fromtimestamp(NOW - 7200, UTC),
    "to": datetime.fromtimestamp(NOW - 3600, UTC),
    "tower": "TOWER_7",
    "status": "FAILED",
    "reason": "PSAP_BUSY",
    "after": True,
    "after_ts": datetime.fromtimestamp(NOW - 5000, UTC),
    "after_id": 5000,
    "limit": 101,
    "id": 77,
    "after_tower": "TOWER_1",
    "region": "north",
    "since": datetime.fromtimestamp(NOW - 3600, UTC),
}


def plan(conn: psycopg.Connection, query: str | sql.Composed) -> str:
    text = sql.SQL("EXPLAIN ") + (sql.SQL(query) if isinstance(query, str) else query)
    return "\n".join(r[0] for r in conn.execute(text, PARAMS).fetchall())


def test_no_query_scans_the_calls_table(test_db: EcmDb) -> None:
    add_towers(test_db.url)
    add_calls(test_db.url, ROWS, spacing_s=0.5)
    shapes = [
        [n for n in combo if n is not None]
        for combo in itertools.product(*[(None, n) for n in calls_sql.FILTERS])
    ]
    queries: list[str | sql.Composed] = [
        calls_sql.calls_page(f) for f in shapes if not {"status", "reason"} <= set(f)
    ]
    queries += [calls_sql.ONE_CALL, calls_sql.TOWER_KNOWN]
    with psycopg.connect(test_db.url) as conn:
        conn.execute("SET ROLE ecm_reader")
        for query in queries:
            text = plan(conn, query)
            assert "Seq Scan on emergency_calls" not in text, text
            assert "emergency_calls" in text
        # The towers page reads the rollups, not the calls.
        assert "emergency_calls" not in plan(conn, calls_sql.TOWERS_PAGE)
