"""The quick benchmark still runs end to end: its table and files, never its timings."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from stack.pgcluster import find_bindir
from tests.fixtures.tools import in_ci

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
HEADER = ["#", "measure", "ECM", "baseline (same run)", "ratio", "goal", "result"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def cells(line: str) -> list[str]:
    """The cells of one Markdown table line."""
    return [c.strip() for c in line.strip().strip("|").split("|")]


@pytest.fixture(scope="module")
def quick_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """One `python -m bench --quick` into a temporary directory, shared by the tests."""
    if find_bindir() is None:
        reason = "no PostgreSQL server binaries (Debian package 'postgresql')"
        if in_ci():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    out = tmp_path_factory.mktemp("bench")
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--output-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    return proc, out


def table_rows(stdout: str) -> list[list[str]]:
    """The printed table's rows below the header and rule."""
    lines = [ln for ln in stdout.splitlines() if ln.startswith("|")]
    assert lines, f"no table printed:\n{stdout}"
    assert cells(lines[0]) == HEADER
    assert set(lines[1]) <= {"|", "-"}
    return [cells(ln) for ln in lines[2:]]


def test_quick_benchmark_prints_one_complete_table(
    quick_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    proc, _ = quick_run
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = table_rows(proc.stdout)
    assert all(len(r) == len(HEADER) for r in rows)
    assert {r[0] for r in rows} == {str(n) for n in range(1, 12)}
    assert {r[6] for r in rows} <= {"met", "NOT met", "-"}
    # Two window sizes x two tower counts in the quick run, each with its direct baseline.
    steady = [r for r in rows if r[0] == "2" and r[1].startswith("steady refresh")]
    assert len(steady) == 4
    assert all(r[3].startswith("direct exact queries:") for r in steady)
    # Accuracy is correctness, not speed: the published p95 is within 1% of percentile_cont.
    accuracy = [r for r in rows if r[0] == "2" and r[1].startswith("published p95")]
    assert len(accuracy) == 4
    assert all(r[6] == "met" for r in accuracy), accuracy
    # Per tower count: scraped with gzip as Prometheus does, and as plain text.
    scrapes = [r for r in rows if r[0] == "4" and "parallel" not in r[1]]
    assert len(scrapes) == 4
    # On the most towers, 1, 10 and 50 parallel scrapers; every scrape answered in full.
    loaded = [r for r in rows if r[0] == "4" and "parallel" in r[1]]
    assert [r[1].split(" parallel")[0].rsplit(" ", 1)[-1] for r in loaded] == ["1", "10", "50"]
    assert all("500 towers, gzip (0 failed)" in r[1] for r in loaded), loaded
    assert [r[5] != "-" for r in loaded] == [False, False, True]  # judged at 50 clients
    assert sum("gzip (as Prometheus scrapes)" in r[1] for r in scrapes) == 2
    assert sum("plain text" in r[1] for r in scrapes) == 2
    assert all(r[5] == "-" for r in scrapes if "plain text" in r[1])  # the goal is judged on gzip
    memory = [r for r in rows if r[0] == "5"]
    assert len(memory[0][2].split(" / ")) == 3  # start, middle, end


def test_quick_benchmark_storms_the_pager(
    quick_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    """Section 7: a paced storm and a burst; nothing lost and one incident per service in both."""
    proc, _ = quick_run
    assert proc.returncode == 0, proc.stderr[-2000:]
    storm = [r for r in table_rows(proc.stdout) if r[0] == "7"]
    assert len(storm) == 4
    stored, handler, first_page, burst = storm
    # Correctness, not speed: judged even in the quick run.
    assert stored[2] == "600 of 600 stored, 20 incidents for 20 services, 0 failed posts"
    assert stored[6] == "met"
    assert " / " in handler[2] and handler[5].startswith("p99 under")
    assert first_page[2].endswith("(20 incidents)")
    assert "600 of 600 stored, 20 incidents for 20 services" in burst[2]
    assert burst[3].startswith("raw INSERT of the same rows:")
    assert float(burst[4]) > 0


def test_quick_benchmark_writes_report_and_plot(
    quick_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    proc, out = quick_run
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = (out / "BENCHMARKS.md").read_text(encoding="utf-8")
    assert re.search(r"^\|\s*#\s*\|\s*measure", report, re.M)
    assert "Command: `python -m bench --quick" in report
    assert re.search(r"Date: \d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC", report)
    assert re.search(r"Machine: \d+ CPUs .*GiB memory, PostgreSQL \d+", report)
    plot_row = next(r for r in table_rows(proc.stdout) if r[0] == "6")
    if importlib.util.find_spec("matplotlib") is None:
        assert plot_row[2].startswith("not written: matplotlib is not installed")
    else:
        assert (out / "bench-refresh.png").read_bytes().startswith(PNG_MAGIC)
        assert "![refresh cost](bench-refresh.png)" in report


def test_quick_benchmark_has_the_pm_rows(
    quick_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    """Section 8: API ingest beside raw COPY (judged), the batch p99, the KPI query per size
    beside the raw-table query, and its growth (judged: flat)."""
    proc, _ = quick_run
    assert proc.returncode == 0, proc.stderr[-2000:]
    pm = [r for r in table_rows(proc.stdout) if r[0] == "8"]
    assert len(pm) == 5, pm
    ingest, p99, *kpi, growth = pm
    assert "batches of 1,000" in ingest[1] and ingest[2].endswith("events/s")
    assert ingest[3].startswith("one raw COPY of the same rows:")
    assert ingest[5] == ">= 0.25 of COPY" and ingest[6] in {"met", "NOT met"}
    assert p99[1].endswith("p99") and p99[2].endswith(" ms") and p99[3].startswith("median:")
    assert all(r[3].startswith("the same KPI from raw pm_events:") for r in kpi)
    assert growth[5].startswith("flat") and growth[6] in {"met", "NOT met"}


def test_quick_benchmark_has_the_national_scale_rows(
    quick_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    """Section 9: per tower count, series beside the budget, steady refresh and rebuild beside
    the direct queries, RSS beside query-exporter (not run quick), gzip scrape p99; then memory."""
    proc, _ = quick_run
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [r for r in table_rows(proc.stdout) if r[0] == "9"]
    assert len(rows) == 2 * 5 + 2, rows
    series = [r for r in rows if r[1].startswith("series published")]
    assert len(series) == 2
    for r in series:
        # Published within the documented budget: the ratio is at most 1.
        assert r[3].startswith("documented budget:")
        assert float(r[4].split()[0]) <= 1.0
    steady = [r for r in rows if r[1].startswith("steady refresh")]
    assert all("self-metric" in r[1] and r[3].startswith("direct exact queries:") for r in steady)
    rebuild = [r for r in rows if r[1].startswith("start-up rebuild")]
    assert all(r[4].startswith("rebuild/direct") for r in rebuild)
    rss = [r for r in rows if r[1].startswith("resident memory")]
    assert all(r[2].endswith("MiB") and r[3].startswith("query-exporter") for r in rss)
    scrape = [r for r in rows if r[1].startswith("scrape median / p99, gzip")]
    assert all(r[5] == "p99 < 10 ms" and r[6] in {"met", "NOT met"} for r in scrape)
    assert rows[-1][1].startswith("exporter RSS start / middle / end")
    assert rows[-1][5].startswith("flat")
    # A real Prometheus scraped the exporter: its head series within the budget.
    (head,) = [r for r in rows if r[1].startswith("Prometheus head series")]
    assert head[3].startswith("budget + 5 scrape series:") and head[6] == "met", head


def test_quick_benchmark_has_the_sms_broadcast_rows(
    quick_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    """Section 10: the queue with 1, 2 and 4 senders beside raw UPDATEs (judged), 4 senders
    against 1 at a real send time (judged), the p95 latencies, and every message once."""
    proc, _ = quick_run
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [r for r in table_rows(proc.stdout) if r[0] == "10"]
    assert len(rows) == 4, rows
    queue, scaling, latency, once = rows
    assert queue[1].endswith("with 1 / 2 / 4 senders") and len(queue[2].split(" / ")) == 3
    assert queue[3].startswith("raw UPDATEs of the same rows:") and float(queue[4]) > 0
    assert queue[5] == ">= 0.3 of raw (4 senders)" and queue[6] in {"met", "NOT met"}
    assert scaling[3].startswith("1 sender:") and scaling[5] == ">= 3.5"
    assert scaling[6] in {"met", "NOT met"}
    assert latency[2].count(" ms") == 2
    # Correctness, not speed: judged even in the quick run.
    assert once[2] == "6,500 of 6,500" and once[6] == "met"


def test_quick_benchmark_has_the_api_calls_rows(
    quick_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    """Section 11 at two sizes: keyset page 1 and page 1,000 (judged: flat) beside OFFSET in SQL;
    summaries over 30 days and 24 hours from the rollups (judged: p99) beside percentile_cont;
    the summary's growth from the smaller size to the larger (judged: flat)."""
    proc, _ = quick_run
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [r for r in table_rows(proc.stdout) if r[0] == "11"]
    assert len(rows) == 9, rows
    for size, part in (("110,000", rows[0:4]), ("220,000", rows[4:8])):
        page1, page1000, *summaries = part
        assert page1[1] == f"GET /v1/calls page 1, {size} calls" and page1[2].endswith(" ms")
        assert page1000[3].startswith("page 1,000 by OFFSET in SQL:")
        assert page1000[5] == "<= 1.5x page 1" and page1000[6] in {"met", "NOT met"}
        spans = [s[1].split(" over ")[1].split(" (")[0] for s in summaries]
        assert spans == ["30 days", "24 hours"]
        assert all(f"{size} calls" in s[1] for s in summaries)
        assert all(s[3].startswith("the same from raw calls (percentile_cont):") for s in summaries)
        assert all(s[5] == "p99 < 50 ms" and s[6] in {"met", "NOT met"} for s in summaries)
    growth = rows[8]
    assert growth[1] == "summary over 30 days, median at 220,000 against 110,000 calls"
    assert growth[4].endswith("x for 2x the calls") and growth[6] in {"met", "NOT met"}
