"""Calls written straight into the test database (as its owner) for the calls and analytics
tests: a deterministic mix of towers, regions, latencies, statuses and reasons."""

from __future__ import annotations

import psycopg

from tests.api.conftest import NOW

TOWERS = 20
REGIONS = ("north", "south")

# Call i (1..n) is at NOW - i * spacing_s on TOWER_(i % 20 + 1); every 10th fails, alternately
# CORE_TIMEOUT and PSAP_BUSY; latency (i * 37) % 3000 + 20 ms.
INSERT_CALLS = """
INSERT INTO emergency_calls
       (call_uuid, "timestamp", caller_id, tower_id, latency_ms, status, failure_reason)
SELECT gen_random_uuid(), to_timestamp(%(now)s::float8 - i * %(spacing)s::float8), '+1555' || i,
       'TOWER_' || (i %% 20 + 1), (i * 37) %% 3000 + 20,
       CASE WHEN i %% 10 = 0 THEN 'FAILED' ELSE 'SUCCESS' END,
       CASE WHEN i %% 10 = 0
            THEN (ARRAY['CORE_TIMEOUT', 'PSAP_BUSY'])[(i / 10) %% 2 + 1] END
  FROM generate_series(%(first)s::int, %(last)s::int) AS i
"""


def add_towers(url: str) -> None:
    """TOWER_1..TOWER_20: odd ones north, even ones south."""
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO towers (tower_id, region) SELECT 'TOWER_' || i,"
            " CASE WHEN i % 2 = 1 THEN 'north' ELSE 'south' END FROM generate_series(1, 20) i"
        )


def add_calls(
    url: str, n: int, *, spacing_s: float = 1.0, first: int = 1, now: float = NOW
) -> None:
    """Calls first..first+n-1 (see INSERT_CALLS), then ANALYZE so plans see the real table."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            INSERT_CALLS,
            {"now": now, "spacing": spacing_s, "first": first, "last": first + n - 1},
        )
        conn.execute("ANALYZE emergency_calls")
