"""Every SQL statement the benchmark runs; values are always bound parameters."""

from __future__ import annotations

from typing import Final

# Synthetic calls with the skew of real traffic (see the domain notes): log-normal setup latency,
# median 1.8 s (connected phones) or 2.8 s (30% idle phones), sigma 0.35; 2% failures, a quarter
# of them core timeouts that land at the 10 s timer; busy towers far busier than quiet ones.
POPULATE: Final = """
INSERT INTO emergency_calls
    (call_uuid, "timestamp", caller_id, tower_id, latency_ms, status, failure_reason)
SELECT gen_random_uuid(),
       %(end)s::timestamptz - r.u_time * %(span_s)s * interval '1 second',
       'CALLER_' || (1 + floor(r.u_caller * 1000000))::int,
       'TOWER_' || (1 + floor(%(towers)s * r.u_tower * r.u_tower))::int,
       CASE WHEN r.u_fail < 0.005 THEN 10000
            ELSE round(exp(ln(CASE WHEN r.u_idle < 0.3 THEN 2800 ELSE 1800 END)
                 + 0.35 * sqrt(-2 * ln(1 - r.u_z1)) * cos(2 * pi() * r.u_z2)))::int END,
       CASE WHEN r.u_fail < 0.02 THEN 'FAILED' ELSE 'SUCCESS' END,
       CASE WHEN r.u_fail < 0.005 THEN 'CORE_TIMEOUT'
            WHEN r.u_fail < 0.009 THEN 'IMS_UNREACHABLE'
            WHEN r.u_fail < 0.012 THEN 'PSAP_BUSY'
            WHEN r.u_fail < 0.015 THEN 'PSAP_UNAVAILABLE'
            WHEN r.u_fail < 0.017 THEN 'EMERGENCY_REG_REQUIRED'
            WHEN r.u_fail < 0.02 THEN 'RADIO_LINK_FAILURE' END
FROM (SELECT random() AS u_time, random() AS u_caller, random() AS u_tower, random() AS u_fail,
             random() AS u_idle, random() AS u_z1, random() AS u_z2
      FROM generate_series(1, %(n)s)) AS r
"""

# Towers TOWER_1..N in regions REGION_1..R, contiguous blocks as the generator assigns them.
UPSERT_TOWERS: Final = """
INSERT INTO towers (tower_id, region)
SELECT 'TOWER_' || i, 'REGION_' || ((i - 1) * %(regions)s / %(towers)s + 1)
FROM generate_series(1, %(towers)s) AS i
ON CONFLICT (tower_id) DO NOTHING
"""

TRUNCATE: Final = "TRUNCATE emergency_calls, towers"
TRUNCATE_CALLS: Final = "TRUNCATE emergency_calls"
VACUUM_ANALYZE: Final = "VACUUM ANALYZE emergency_calls"
DB_NOW: Final = "SELECT now()"
SERVER_VERSION: Final = "SHOW server_version"

# The exact window values a naive exporter recomputes on every refresh, for one window.
DIRECT_OVERALL: Final = """
SELECT count(*), count(*) FILTER (WHERE status = 'FAILED'), avg(latency_ms),
       percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms)
FROM emergency_calls WHERE "timestamp" > %(since)s AND "timestamp" <= %(until)s
"""
DIRECT_PER_TOWER: Final = """
SELECT tower_id, count(*), count(*) FILTER (WHERE status = 'FAILED'),
       percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms)
FROM emergency_calls WHERE "timestamp" > %(since)s AND "timestamp" <= %(until)s
GROUP BY tower_id
"""
DIRECT_PER_REASON: Final = """
SELECT failure_reason, count(*)
FROM emergency_calls
WHERE "timestamp" > %(since)s AND "timestamp" <= %(until)s AND status = 'FAILED'
GROUP BY failure_reason
"""
DIRECT_QUERIES: Final = (DIRECT_OVERALL, DIRECT_PER_TOWER, DIRECT_PER_REASON)

# Exact references for the accuracy check: every row of the table (all inside the window).
EXACT_P95_ALL: Final = (
    "SELECT percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms), count(*) FROM emergency_calls"
)
EXACT_P95_PER_TOWER: Final = """
SELECT tower_id, percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms), count(*)
FROM emergency_calls GROUP BY tower_id
"""

# Writer benchmark: the rows as pre-built binary COPY bytes, and the load of those bytes.
WRITER_COLUMNS: Final = (
    'call_uuid, "timestamp", caller_id, tower_id, latency_ms, status, failure_reason'
)
COPY_OUT_BINARY: Final = (
    f"COPY (SELECT {WRITER_COLUMNS} FROM emergency_calls ORDER BY call_id)"
    " TO STDOUT (FORMAT binary)"
)
COPY_IN_BINARY: Final = f"COPY emergency_calls ({WRITER_COLUMNS}) FROM STDIN (FORMAT binary)"
COUNT_CALLS: Final = "SELECT count(*) FROM emergency_calls"

# The same window values as configured for the generic SQL exporter. Its parameters arrive as
# named binds (:window, :seconds), one execution per window.
QE_OVERALL: Final = """
SELECT CAST(:window AS text) AS "window", count(*) AS qe_window_calls,
       count(*) FILTER (WHERE status = 'FAILED') AS qe_window_failed_calls,
       coalesce(avg(latency_ms), 0) / 1000.0 AS qe_window_latency_avg_seconds,
       coalesce(percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms), 0) / 1000.0
           AS qe_window_latency_p95_seconds
FROM emergency_calls WHERE "timestamp" > now() - make_interval(secs => CAST(:seconds AS int))
"""
QE_PER_TOWER: Final = """
SELECT CAST(:window AS text) AS "window", tower_id AS tower, count(*) AS qe_tower_window_calls,
       count(*) FILTER (WHERE status = 'FAILED') AS qe_tower_window_failed_calls,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) / 1000.0
           AS qe_tower_window_latency_p95_seconds
FROM emergency_calls WHERE "timestamp" > now() - make_interval(secs => CAST(:seconds AS int))
GROUP BY tower_id
"""
QE_PER_REASON: Final = """
SELECT CAST(:window AS text) AS "window", failure_reason AS reason,
       count(*) AS qe_window_reason_failed_calls
FROM emergency_calls
WHERE "timestamp" > now() - make_interval(secs => CAST(:seconds AS int)) AND status = 'FAILED'
GROUP BY failure_reason
"""
