"""The write path seen from outside: signals, a database that goes away, a killed generator."""

from __future__ import annotations

import signal
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from stack.pgcluster import LocalCluster, free_port
from tests.fixtures.postgres import EcmDb
from tests.generator.helpers import (
    PAST_ISO,
    REPO,
    count_calls,
    gen_cmd,
    gen_env,
    parse_counts,
    query,
    rows,
    run_gen,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Fast retries and probes so an outage is noticed and recovered from quickly.
FAST = (
    "--flush-interval",
    "0.1",
    "--max-retries",
    "1",
    "--retry-base-delay",
    "0.05",
    "--retry-max-delay",
    "0.3",
)


def start_gen(*args: str, tmp: Path) -> subprocess.Popen[str]:
    """Start a generator in the background with its spool under tmp."""
    return subprocess.Popen(
        gen_cmd(
            *args, "--spool-dir", str(tmp / "spool"), "--dead-letter-file", str(tmp / "dl.jsonl")
        ),
        cwd=REPO,
        env=gen_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def spooled_bytes(tmp: Path) -> int:
    """Bytes in spool segments right now."""
    return sum(p.stat().st_size for p in (tmp / "spool").glob("*.spool"))


def scrape(port: int) -> dict[str, float]:
    """The generator's metrics as name -> value (counters by their sample name)."""
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {s.name: s.value for fam in text_string_to_metric_families(text) for s in fam.samples}


def now_iso() -> str:
    """The current time, as --start for a paced but reproducible run."""
    return datetime.now(UTC).isoformat()


def reference_rows(db: EcmDb, tmp: Path, n: int, *args: str) -> list[tuple[object, ...]]:
    """The first n calls of the same seeded stream, written by an undisturbed run."""
    proc = run_gen(*args, "--count", str(n), "--database-url", db.url, tmp=tmp / "ref")
    assert proc.returncode == 0, proc.stderr
    return rows(db.url)


def test_sigterm_flushes_and_reports(test_db: EcmDb, tmp_path: Path) -> None:
    proc = start_gen(
        "--rate",
        "400",
        "--flush-interval",
        "0.2",
        "--database-url",
        test_db.writer_url,
        tmp=tmp_path,
    )
    wait_until(lambda: count_calls(test_db.url) > 0, "first calls stored")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    counts = parse_counts(out)
    assert counts["generated"] > 0
    assert counts["written"] == counts["generated"] == count_calls(test_db.url)
    assert counts["spooled"] == counts["dead_lettered"] == 0
    assert "Traceback" not in err


def test_database_restart_mid_run_stores_every_call_once(
    own_cluster: LocalCluster, test_db: EcmDb, tmp_path: Path
) -> None:
    url = own_cluster.url()
    stream = ("--rate", "1000", "--seed", "11", "--start", now_iso(), *FAST)
    proc = start_gen(*stream, "--database-url", url, tmp=tmp_path)
    wait_until(lambda: count_calls(url) > 0, "first calls stored")
    own_cluster.stop()
    wait_until(lambda: spooled_bytes(tmp_path) > 0, "calls spooled while the database is down")
    own_cluster.start()
    stored_before = count_calls(url)
    wait_until(
        lambda: spooled_bytes(tmp_path) == 0 and count_calls(url) > stored_before, "spool replayed"
    )
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    counts = parse_counts(out)
    assert counts["spooled"] > 0 and counts["retries"] > 0
    got = rows(url)
    assert len(got) == counts["generated"]
    assert len({r[0] for r in got}) == len(got)
    assert got == reference_rows(test_db, tmp_path, counts["generated"], *stream)


def test_killed_while_spooling_then_restarted_loses_and_doubles_nothing(
    own_cluster: LocalCluster, test_db: EcmDb, tmp_path: Path
) -> None:
    url = own_cluster.url()
    port = free_port()
    start = now_iso()
    stream = ("--rate", "1000", "--seed", "12", "--start", start, *FAST)
    proc = start_gen(*stream, "--database-url", url, "--metrics-port", str(port), tmp=tmp_path)
    wait_until(lambda: count_calls(url) > 0, "first calls stored")
    own_cluster.stop()
    wait_until(lambda: spooled_bytes(tmp_path) > 50_000, "a good part of a second spooled")
    m = scrape(port)
    acknowledged = m["ecm_generator_calls_written_total"] + m["ecm_generator_calls_spooled_total"]
    proc.kill()
    proc.communicate(timeout=10)
    assert spooled_bytes(tmp_path) > 0

    own_cluster.start()
    # The next start replays the spool before it writes any new call.
    # New calls of the second run are stamped a day earlier, so the two runs are told apart.
    after = run_gen(
        "--count", "50", "--seed", "99", "--start", PAST_ISO, "--database-url", url, tmp=tmp_path
    )
    assert after.returncode == 0, after.stderr
    assert parse_counts(after.stdout)["written"] >= 50
    assert spooled_bytes(tmp_path) == 0
    first_run = rows(url, f"\"timestamp\" >= '{start}'")
    assert len(first_run) >= acknowledged
    assert len({r[0] for r in first_run}) == len(first_run)
    assert first_run == reference_rows(test_db, tmp_path, len(first_run), *stream)
    [(last_old, first_new, new)] = query(
        url,
        f"SELECT max(call_id) FILTER (WHERE \"timestamp\" >= '{start}'),"
        f" min(call_id) FILTER (WHERE \"timestamp\" < '{start}'),"
        f" count(*) FILTER (WHERE \"timestamp\" < '{start}') FROM emergency_calls",
    )
    assert new == 50
    assert last_old < first_new


def test_second_signal_exits_at_once_keeping_the_spool(
    own_cluster: LocalCluster, test_db: EcmDb, tmp_path: Path
) -> None:
    url = own_cluster.url()
    port = free_port()
    start = now_iso()
    stream = ("--rate", "1000", "--seed", "13", "--start", start, *FAST)
    proc = start_gen(*stream, "--database-url", url, "--metrics-port", str(port), tmp=tmp_path)
    wait_until(lambda: count_calls(url) > 0, "first calls stored")
    own_cluster.stop()
    wait_until(lambda: spooled_bytes(tmp_path) > 0, "calls spooled")
    m = scrape(port)
    acknowledged = m["ecm_generator_calls_written_total"] + m["ecm_generator_calls_spooled_total"]
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode in (0, 130), err  # 0 when the flush won the race with the 2nd signal
    assert "Traceback" not in err

    own_cluster.start()
    replay = run_gen("--count", "0", "--database-url", url, tmp=tmp_path)
    assert replay.returncode == 0, replay.stderr
    got = rows(url)
    assert len(got) >= acknowledged
    assert got == reference_rows(test_db, tmp_path, len(got), *stream)
