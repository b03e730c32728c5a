"""Running the generator as a user does: a subprocess with flags, output captured."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = REPO / "scenarios"
# A fixed origin in the past: every call is due at once, so runs take no wall time.
PAST = "2026-01-01T00:00:00+00:00"


def gen_env(**extra: str) -> dict[str, str]:
    """The environment for a generator subprocess (no inherited ECM_* settings)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECM_")}
    env.update(extra)
    return env


def gen_cmd(*args: str) -> list[str]:
    """argv running ``python -m generator``."""
    return [sys.executable, "-m", "generator", *args]


def run_gen(
    *args: str, tmp: Path, timeout: float = 60, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run the generator to completion with its spool and dead letters under tmp."""
    return subprocess.run(
        gen_cmd(
            *args, "--spool-dir", str(tmp / "spool"), "--dead-letter-file", str(tmp / "dl.jsonl")
        ),
        cwd=REPO,
        env=gen_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def query(url: str, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    """Rows of one query."""
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()


def parse_counts(stdout: str) -> dict[str, int]:
    """The counts of the generator's last line: generated=N written=N ..."""
    line = stdout.strip().splitlines()[-1]
    inner = line[line.index("(") + 1 : line.rindex(")")]
    return {k: int(v) for k, v in (part.split("=") for part in inner.split())}
