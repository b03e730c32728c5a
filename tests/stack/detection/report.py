"""`make detect`: the detection and reset times of every scenario, measured in promtool on the
committed rules with the committed timings, written as a table into docs/DETECTION.md.

    python -m tests.stack.detection.report            # print the table
    python -m tests.stack.detection.report --write    # and replace it in docs/DETECTION.md
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.stack.detection import promtest, timing

DOC = promtest.ROOT / "docs" / "DETECTION.md"
BEGIN, END = "<!-- detect:begin -->", "<!-- detect:end -->"


def table(rows: list[tuple[promtest.Case, dict[tuple[str, str], tuple[float, float]]]]) -> str:
    """Markdown: per scenario and alert, when Prometheus first fired it and last held it."""
    out = [
        "| scenario | alert | severity | listed | fires after the start "
        "| last firing after the end |",
        "|---|---|---|---|---|---|",
    ]
    for case, got in rows:
        if not got:
            out.append(f"| {case.name} | (none) | | | | |")
        for (alert, severity), (first, last) in sorted(got.items()):
            listed = "yes" if alert in case.listed else "no"
            out.append(
                f"| {case.name} | {alert} | {severity} | {listed} "
                f"| {first:+.0f} s | {last:+.0f} s |"
            )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """Measure every scenario; print the table, or write it into docs/DETECTION.md."""
    ap = argparse.ArgumentParser(prog="python -m tests.stack.detection.report", description=__doc__)
    ap.add_argument("--write", action="store_true", help="replace the table in docs/DETECTION.md")
    ns = ap.parse_args(argv)
    promtool = shutil.which("promtool")
    if promtool is None:
        print("detect: error: promtool not found (Debian package 'prometheus')", file=sys.stderr)
        return 2
    t = timing.load()
    files = sorted(promtest.SCENARIOS.glob("*.yaml"))
    with tempfile.TemporaryDirectory() as tmp:

        def one(path: Path) -> tuple[promtest.Case, dict[tuple[str, str], tuple[float, float]]]:
            case = promtest.scenario_case(path, t)
            return case, promtest.measure(promtool, case, t, Path(tmp) / f"{path.stem}.yml")

        with ThreadPoolExecutor(2) as pool:
            rows = list(pool.map(one, files))
    text = table(rows)
    print(text)
    if ns.write:
        write_section(BEGIN, END, text)
        print(f"wrote {DOC}", file=sys.stderr)
    return 0


def write_section(begin: str, end: str, text: str) -> None:
    """Replace what stands between two markers of docs/DETECTION.md."""
    head, rest = DOC.read_text().split(begin, 1)
    _, tail = rest.split(end, 1)
    DOC.write_text(f"{head}{begin}\n{text}\n{end}{tail}")


if __name__ == "__main__":
    sys.exit(main())
