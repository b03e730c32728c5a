"""The write path seen from outside: signals, a database that goes away, a killed generator."""

from __future__ import annotations

import resource
import signal
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from generator.spool import Spool
from stack.pgcluster import LocalCluster, free_port
from tests.fixtures.postgres import EcmDb
from tests.generator.helpers import (
    PAST_ISO,
    REPO,
    calls,
    count_calls,
    flip,
    gen_cmd,
    gen_env,
    parse_counts,
    query,
    rows,
    run_gen,
    spool_of,
    uuids,
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
    # 4 (ended with calls in the spool) when the flush won the race with the 2nd signal.
    assert proc.returncode in (4, 130), err
    if proc.returncode == 130:
        assert "call(s) held in memory were not stored" in err
    assert "Traceback" not in err

    own_cluster.start()
    replay = run_gen("--count", "0", "--database-url", url, tmp=tmp_path)
    assert replay.returncode == 0, replay.stderr
    got = rows(url)
    assert len(got) >= acknowledged
    assert got == reference_rows(test_db, tmp_path, len(got), *stream)


def unreachable_url() -> str:
    """A database URL nothing answers on (a stopped server, as the client sees it)."""
    return f"postgresql://ecm@127.0.0.1:{free_port()}/ecm"


def error_counts(stderr: str) -> dict[str, int]:
    """The counts of the one error line a run that did not store everything ends with."""
    [line] = [x for x in stderr.splitlines() if x.startswith("ecm-generator: error:")]
    return parse_counts(line)


def limit_file_size(limit: int) -> Callable[[], None]:
    """A preexec_fn: no file of the child may grow past limit bytes (a full disk)."""
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def test_full_spool_disk_during_an_outage_stops_and_counts_the_loss(tmp_path: Path) -> None:
    proc = subprocess.run(
        gen_cmd(
            "--count",
            "1000000",
            "--rate",
            "10000",
            "--start",
            PAST_ISO,
            "--batch-size",
            "500",
            "--queue-size",
            "5000",
            *FAST,
            "--database-url",
            unreachable_url(),
            "--spool-dir",
            str(tmp_path / "spool"),
            "--dead-letter-file",
            str(tmp_path / "dl.jsonl"),
        ),
        cwd=REPO,
        env=gen_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        preexec_fn=limit_file_size(200_000),
    )
    assert proc.returncode == 5, proc.stderr
    assert "Traceback" not in proc.stderr
    counts = error_counts(proc.stderr)
    assert counts["lost"] > 0 and counts["in_spool"] > 0
    assert counts["generated"] == counts["spooled"] + counts["lost"]
    assert counts["in_spool"] == counts["spooled"]
    # It stopped accepting calls instead of buffering them: at most the queue and a batch lost.
    assert counts["generated"] < 1_000_000 and counts["lost"] <= 5000 + 500
    assert f"{counts['lost']} call(s) were lost" in proc.stderr
    assert "File too large" in proc.stderr
    assert str(tmp_path / "spool") in proc.stderr
    assert Spool(tmp_path / "spool").rows_waiting() == counts["in_spool"]


def test_run_ending_while_the_database_is_down_exits_4(tmp_path: Path) -> None:
    proc = run_gen(
        "--count",
        "50",
        "--start",
        PAST_ISO,
        *FAST,
        "--database-url",
        unreachable_url(),
        tmp=tmp_path,
    )
    assert proc.returncode == 4, proc.stderr
    assert "50 call(s) wait in the spool" in proc.stderr
    counts = error_counts(proc.stderr)
    assert (counts["generated"], counts["spooled"], counts["in_spool"]) == (50, 50, 50)
    assert (counts["written"], counts["lost"]) == (0, 0)


def test_start_while_the_database_is_down_then_drain_the_spool_when_it_returns(
    own_cluster: LocalCluster, tmp_path: Path
) -> None:
    url = own_cluster.url()
    earlier = calls(300, seed=21)
    Spool(tmp_path / "spool").append(earlier)
    own_cluster.stop()
    proc = start_gen(
        "--rate", "200", "--start", now_iso(), *FAST, "--database-url", url, tmp=tmp_path
    )
    wait_until(lambda: spooled_bytes(tmp_path) > 20_000, "new calls spooled behind the old ones")
    own_cluster.start()
    wait_until(lambda: spooled_bytes(tmp_path) == 0, "the spool drained")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    counts = parse_counts(out)
    assert counts["spooled"] > 0 and counts["in_spool"] == counts["lost"] == 0
    assert counts["written"] == counts["generated"] + 300 == count_calls(url)
    stored = {r[0].bytes for r in query(url, "SELECT call_uuid FROM emergency_calls")}
    assert set(uuids(earlier)) <= stored
    assert query(url, "SELECT count(*) FROM towers") == [(50,)]


def test_refused_writes_stop_the_run_with_exit_6(test_db: EcmDb, tmp_path: Path) -> None:
    with psycopg.connect(test_db.url, autocommit=True) as conn:
        conn.execute("REVOKE INSERT ON emergency_calls FROM ecm_writer")
    proc = run_gen(
        "--rate",
        "100",
        "--start",
        now_iso(),
        *FAST,
        "--database-url",
        test_db.writer_url,
        tmp=tmp_path,
    )
    assert proc.returncode == 6, proc.stderr
    assert "permission denied for table emergency_calls (SQLSTATE 42501)" in proc.stderr
    counts = error_counts(proc.stderr)
    assert counts["retries"] == 0 and counts["in_spool"] == counts["generated"] > 0


def test_damaged_spool_record_is_quarantined_and_the_run_exits_5(
    test_db: EcmDb, tmp_path: Path
) -> None:
    _, segment, starts = spool_of(tmp_path, calls(100, 1), calls(100, 2), calls(100, 3))
    flip(segment, starts[1] + 300)
    proc = run_gen("--count", "0", "--database-url", test_db.writer_url, tmp=tmp_path)
    assert proc.returncode == 5, proc.stderr
    assert "1 damaged spool record(s) were not replayed" in proc.stderr
    counts = error_counts(proc.stderr)
    assert (counts["written"], counts["corrupt"], counts["lost"]) == (200, 1, 0)
    assert count_calls(test_db.url) == 200
    assert len(list((tmp_path / "spool" / "quarantine").iterdir())) == 1


def test_backfill_into_the_future_is_refused(tmp_path: Path) -> None:
    proc = run_gen(
        "backfill",
        "--from",
        "1h",
        "--to",
        "2999-01-01",
        "--database-url",
        unreachable_url(),
        tmp=tmp_path,
    )
    assert proc.returncode == 2
    [line] = proc.stderr.strip().splitlines()
    assert "in the future" in line
