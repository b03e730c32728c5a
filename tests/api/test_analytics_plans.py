"""The analytics queries read the rollups only: EXPLAIN of a 30-day question shows no raw calls,
and a one-hour question reads the rollups through an index, on tables with 30 days of minutes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg import sql

from api import analytics_sql as q
from api.analytics import levels
from tests.api.calls_data import add_calls
from tests.api.conftest import NOW
from tests.fixtures.postgres import EcmDb

pytestmark = pytest.mark.integration

END = datetime.fromtimestamp(NOW, UTC)
FILL = """
INSERT INTO call_rollup_1m_total (minute, calls, failed, latency_sum, hist_bucket, hist_calls)
SELECT to_timestamp({end} - m * 60), 10, 1, 5000, ARRAY[100, 200]::smallint[], ARRAY[5, 5]
  FROM generate_series(1, 43200) m;
INSERT INTO call_rollup_1m (minute, tower_id, calls, failed, latency_sum, hist_bucket, hist_calls)
SELECT to_timestamp({end} - m * 60), 'TOWER_' || t, 10, 1, 5000,
       ARRAY[100, 200]::smallint[], ARRAY[5, 5]
  FROM generate_series(1, 43200) m, generate_series(1, 4) t;
INSERT INTO call_rollup_coarse_total (grain, start, calls, failed, latency_sum, hist_bucket,
       hist_calls)
SELECT g, to_timestamp({end} - m * g), 10, 1, 5000, ARRAY[100, 200]::smallint[], ARRAY[5, 5]
  FROM generate_series(1, 720) m, (VALUES (3600), (86400)) AS v(g) WHERE m * g <= 30 * 86400;
INSERT INTO call_reasons_1m (minute, tower_id, failure_reason, calls)
SELECT to_timestamp({end} - m * 60), 'TOWER_' || t, 'PSAP_BUSY', 1
  FROM generate_series(1, 43200) m, generate_series(1, 4) t;
ANALYZE call_rollup_1m_total, call_rollup_1m, call_rollup_coarse_total, call_reasons_1m;
"""
QUERIES = {
    "summary": q.SUMMARY_ALL,
    "summary tower": q.SUMMARY_TOWER,
    "series": q.SERIES_ALL,
    "series tower": q.SERIES_TOWER,
    "series p95": q.SERIES_HIST_ALL,
    "series p95 tower": q.SERIES_HIST_TOWER,
    "reasons": q.REASONS_ALL,
    "reasons tower": q.REASONS_TOWER,
    **{f"towers by {o}": q.towers_ranked(o) for o in q.TOWER_ORDERS},
}


def plans(conn: psycopg.Connection, span: timedelta) -> dict[str, str]:
    params: dict[str, Any] = {
        **levels(END - span, END),
        "from": END - span,
        "to": END,
        "tower": "TOWER_2",
        "step": timedelta(minutes=5),
        "limit": 10,
        "min_calls": 1,
    }
    out = {}
    for name, query in QUERIES.items():
        rows = conn.execute(sql.SQL("EXPLAIN ") + sql.SQL(query), params).fetchall()
        out[name] = "\n".join(r[0] for r in rows)
    return out


def test_analytics_never_read_raw_calls_and_short_ranges_use_an_index(test_db: EcmDb) -> None:
    add_calls(test_db.url, 100_000, spacing_s=20.0)
    with psycopg.connect(test_db.url, autocommit=True) as conn:
        for statement in FILL.format(end=int(NOW)).split(";"):
            if statement.strip():
                conn.execute(statement.encode())
        conn.execute("SET ROLE ecm_reader")
        for name, text in plans(conn, timedelta(days=30)).items():
            assert "emergency_calls" not in text, (name, text)
            assert "call_r" in text, (name, text)
        for name, text in plans(conn, timedelta(hours=1)).items():
            assert "Seq Scan" not in text, (name, text)
