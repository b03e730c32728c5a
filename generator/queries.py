"""Every SQL statement the generator runs; values are always bound parameters."""

from __future__ import annotations

from generator.encode import COLUMNS

COPY_CALLS = f"COPY emergency_calls ({COLUMNS}) FROM STDIN (FORMAT BINARY)"
COPY_CALLS_TEXT = f"COPY emergency_calls ({COLUMNS}) FROM STDIN"

# A retried batch goes through a staging table so rows an earlier attempt stored are skipped.
CREATE_STAGE = (
    "CREATE TEMP TABLE IF NOT EXISTS ecm_generator_stage ("
    ' call_uuid uuid, "timestamp" timestamptz, caller_id text, latency_ms integer,'
    " tower_id text, status text, failure_reason text) ON COMMIT DELETE ROWS"
)
COPY_STAGE = f"COPY ecm_generator_stage ({COLUMNS}) FROM STDIN (FORMAT BINARY)"
INSERT_FROM_STAGE = (
    f"INSERT INTO emergency_calls ({COLUMNS})"
    f" SELECT {COLUMNS} FROM ecm_generator_stage"
    " ON CONFLICT (call_uuid) DO NOTHING"
)

UPSERT_TOWERS = (
    "INSERT INTO towers (tower_id, weight)"
    " SELECT * FROM unnest(%s::text[], %s::double precision[])"
    " ON CONFLICT (tower_id) DO UPDATE SET weight = EXCLUDED.weight"
    " WHERE towers.weight IS DISTINCT FROM EXCLUDED.weight"
)
