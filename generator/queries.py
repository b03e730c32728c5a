"""Every SQL statement the generator runs; values are always bound parameters."""

from __future__ import annotations

from generator.encode import COLUMNS

COPY_CALLS = f"COPY emergency_calls ({COLUMNS}) FROM STDIN (FORMAT BINARY)"
COPY_CALLS_TEXT = f"COPY emergency_calls ({COLUMNS}) FROM STDIN"

# The unique index that makes a retried batch harmless; any other violation is a real refusal.
IDEMPOTENCY_KEY = "emergency_calls_call_uuid_key"

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
EMPTY_STAGE = "DELETE FROM ecm_generator_stage"

# Session limits of the writer's connection (milliseconds, as text): a hung statement or a lock
# wait fails after the write timeout and takes the retry/spool path.
SET_TIMEOUTS = (
    "SELECT set_config('statement_timeout', %(ms)s, false),"
    " set_config('lock_timeout', %(ms)s, false)"
)

UPSERT_TOWERS = (
    "INSERT INTO towers (tower_id, weight, region)"
    " SELECT * FROM unnest(%s::text[], %s::double precision[], %s::text[])"
    " ON CONFLICT (tower_id) DO UPDATE SET weight = EXCLUDED.weight, region = EXCLUDED.region"
    " WHERE (towers.weight, towers.region) IS DISTINCT FROM (EXCLUDED.weight, EXCLUDED.region)"
)
