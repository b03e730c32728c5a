"""Every shipped scenario parses and, backfilled, shows the effect it claims (checked with SQL)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from tests.fixtures.postgres import EcmDb
from tests.generator.helpers import PAST, SCENARIOS, count_calls, query, rows, run_gen

pytestmark = pytest.mark.integration

RATE = "20"  # calls/s of history: enough calls per tower and phase for the ratios to settle


def seconds(text: str) -> float:
    """The test's own reading of the durations used in scenario files (10m, 90s, 1h)."""
    m = re.fullmatch(r"(\d+)([smh])", str(text))
    assert m, text
    return int(m.group(1)) * {"s": 1, "m": 60, "h": 3600}[m.group(2)]


def phase_window(doc: dict[str, Any], name: str) -> tuple[str, str]:
    """SQL timestamp bounds of a phase, from the scenario file read here."""
    ph = next(p for p in doc["phases"] if p["name"] == name)
    start = PAST + timedelta(seconds=seconds(ph["start"]))
    return start.isoformat(), (start + timedelta(seconds=seconds(ph["duration"]))).isoformat()


def overall(url: str, lo: str, hi: str) -> tuple[int, float, float]:
    """Calls, failure ratio and p95 latency (ms) of every call between lo and hi."""
    [(n, ratio, p95)] = query(
        url,
        "SELECT count(*), avg((status = 'FAILED')::int)::float,"
        " percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms)"
        ' FROM emergency_calls WHERE "timestamp" >= %s AND "timestamp" < %s',
        (lo, hi),
    )
    return int(n), float(ratio or 0), float(p95 or 0)


def per_tower(url: str, lo: str, hi: str) -> dict[str, tuple[int, float]]:
    """Tower -> (calls, failure ratio) between lo and hi."""
    return {
        str(t): (int(n), float(r))
        for t, n, r in query(
            url,
            "SELECT tower_id, count(*), avg((status = 'FAILED')::int)::float FROM emergency_calls"
            ' WHERE "timestamp" >= %s AND "timestamp" < %s GROUP BY 1',
            (lo, hi),
        )
    }


def top_reason(url: str, lo: str, hi: str) -> tuple[str, float]:
    """The most common failure reason between lo and hi and its share of the failures."""
    got = query(
        url,
        "SELECT failure_reason, count(*) FROM emergency_calls WHERE status = 'FAILED'"
        ' AND "timestamp" >= %s AND "timestamp" < %s GROUP BY 1 ORDER BY 2 DESC',
        (lo, hi),
    )
    total = sum(int(n) for _, n in got)
    return str(got[0][0]), int(got[0][1]) / total


def before(doc: dict[str, Any]) -> tuple[str, str]:
    """The quiet stretch before the first phase."""
    first = min(seconds(p["start"]) for p in doc["phases"])
    return PAST.isoformat(), (PAST + timedelta(seconds=first)).isoformat()


def check_baseline(url: str, doc: dict[str, Any]) -> None:
    n, ratio, p95 = overall(url, PAST.isoformat(), (PAST + timedelta(hours=1)).isoformat())
    assert n > 50_000 and ratio < 0.01 and 2500 < p95 < 4000


def check_tower_outage(url: str, doc: dict[str, Any]) -> None:
    towers = per_tower(url, *phase_window(doc, "tower-3-down"))
    assert towers["TOWER_3"][1] > 0.05
    others = [(n, r) for t, (n, r) in towers.items() if t != "TOWER_3"]
    assert sum(n * r for n, r in others) / sum(n for n, _ in others) < 0.01
    assert all(r < 0.05 for n, r in others if n >= 200)
    assert per_tower(url, *before(doc))["TOWER_3"][1] < 0.01


def check_core_timeout(url: str, doc: dict[str, Any]) -> None:
    lo, hi = phase_window(doc, "core-timeouts")
    _, ratio, p95 = overall(url, lo, hi)
    assert 0.10 < ratio < 0.20 and p95 >= 8000
    assert top_reason(url, lo, hi)[0] == "CORE_TIMEOUT"
    assert overall(url, *before(doc))[1] < 0.01


def check_ims(url: str, doc: dict[str, Any]) -> None:
    lo, hi = phase_window(doc, "ims-down")
    _, ratio, p95 = overall(url, lo, hi)
    assert ratio > 0.5 and p95 < 8000
    reason, share = top_reason(url, lo, hi)
    assert reason == "IMS_UNREACHABLE" and share > 0.95


def check_psap_busy(url: str, doc: dict[str, Any]) -> None:
    lo, hi = phase_window(doc, "psap-saturated")
    assert 0.05 < overall(url, lo, hi)[1] < 0.12
    assert top_reason(url, lo, hi)[0] == "PSAP_BUSY"


def check_latency(url: str, doc: dict[str, Any]) -> None:
    _, ratio, p95 = overall(url, *phase_window(doc, "slow-setup"))
    assert ratio < 0.01 and p95 > 8000
    assert overall(url, *before(doc))[2] < 4000


def check_surge(url: str, doc: dict[str, Any]) -> None:
    lo, hi = phase_window(doc, "surge")
    calm = overall(url, *before(doc))[0] / seconds("10m")
    busy = overall(url, lo, hi)[0] / seconds("15m")
    assert 3.5 < busy / calm < 4.5
    assert 0.01 < overall(url, *phase_window(doc, "busy-answering-points"))[1] < 0.05


def check_regional(url: str, doc: dict[str, Any]) -> None:
    towers = per_tower(url, *phase_window(doc, "answering-points-busy"))
    down = [t for t, (_, r) in towers.items() if r > 0.5]
    assert len(down) == 10  # a fifth of 50 towers
    assert overall(url, *phase_window(doc, "region-down"))[1] > 0.05


def check_nationwide(url: str, doc: dict[str, Any]) -> None:
    lo, hi = phase_window(doc, "core-down")
    assert overall(url, lo, hi)[1] > 0.9
    assert all(r > 0.8 for n, r in per_tower(url, lo, hi).values() if n >= 50)


def check_config_error(url: str, doc: dict[str, Any]) -> None:
    w1 = {
        t for t, (_, r) in per_tower(url, *phase_window(doc, "rollout-wave-1")).items() if r > 0.3
    }
    lo2, _ = phase_window(doc, "rollout-wave-2")
    _, hi1 = phase_window(doc, "rollout-wave-1")
    w2 = {t for t, (_, r) in per_tower(url, lo2, hi1).items() if r > 0.5}
    assert len(w2) == 30 and w1 <= w2
    assert top_reason(url, lo2, hi1)[0] == "IMS_UNREACHABLE"


def check_db_limit(url: str, doc: dict[str, Any]) -> None:
    lo, hi = phase_window(doc, "handoff-limit")
    assert 0.25 < overall(url, lo, hi)[1] < 0.35
    assert top_reason(url, lo, hi)[0] == "PSAP_UNAVAILABLE"


def check_blackout(url: str, doc: dict[str, Any]) -> None:
    assert overall(url, *phase_window(doc, "silence"))[0] <= 1
    assert overall(url, *before(doc))[0] > 5000


CHECKS: dict[str, Callable[[str, dict[str, Any]], None]] = {
    "baseline": check_baseline,
    "tower-outage": check_tower_outage,
    "core-timeout-burst": check_core_timeout,
    "ims-outage": check_ims,
    "psap-busy": check_psap_busy,
    "latency-degradation": check_latency,
    "traffic-surge": check_surge,
    "regional-disaster": check_regional,
    "nationwide-core-outage": check_nationwide,
    "configuration-error-outage": check_config_error,
    "database-connection-limit": check_db_limit,
    "call-blackout": check_blackout,
}


def test_every_shipped_scenario_has_a_check() -> None:
    assert sorted(p.stem for p in SCENARIOS.glob("*.yaml")) == sorted(CHECKS)


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_scenario_produces_its_effect(name: str, test_db: EcmDb, tmp_path: Path) -> None:
    path = SCENARIOS / f"{name}.yaml"
    doc = yaml.safe_load(path.read_text())
    assert doc["description"] and isinstance(doc["alerts"], list)
    end = PAST + timedelta(seconds=seconds(doc["duration"]))
    proc = run_gen(
        "backfill",
        "--from",
        PAST.isoformat(),
        "--to",
        end.isoformat(),
        "--scenario",
        str(path),
        "--rate",
        RATE,
        "--seed",
        "3",
        "--database-url",
        test_db.writer_url,
        tmp=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "rows/s" in proc.stderr and "ETA" in proc.stderr
    CHECKS[name](test_db.url, doc)


@pytest.mark.parametrize("scenario", [None, "regional-disaster"])
def test_same_seed_same_rows(scenario: str | None, test_db: EcmDb, tmp_path: Path) -> None:
    args = [
        "--rate",
        "50",
        "--speed",
        "100",
        "--count",
        "3000",
        "--seed",
        "21",
        "--start",
        PAST.isoformat(),
        "--database-url",
        test_db.url,
    ]
    if scenario:
        args += ["--scenario", str(SCENARIOS / f"{scenario}.yaml")]
    first = run_gen(*args, tmp=tmp_path)
    assert first.returncode == 0, first.stderr
    got = rows(test_db.url)
    with psycopg.connect(test_db.url) as conn:
        conn.execute("TRUNCATE emergency_calls")
    assert count_calls(test_db.url) == 0
    again = run_gen(*args, tmp=tmp_path)
    assert again.returncode == 0, again.stderr
    assert len(got) == 3000 and rows(test_db.url) == got
    other = run_gen(*[a if a != "21" else "22" for a in args], tmp=tmp_path)
    assert other.returncode == 0, other.stderr
    assert len({r[0] for r in rows(test_db.url)}) == 6000  # another seed, other calls
