"""The one results table, docs/BENCHMARKS.md and the refresh-cost plot."""

from __future__ import annotations

import argparse
import logging
import os
import platform
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench import data
from bench.refresh import RefreshPoint

log = logging.getLogger(__name__)

HEADER = ("#", "measure", "ECM", "baseline (same run)", "ratio", "goal", "result")


@dataclass(frozen=True)
class Row:
    """One line of the results table."""

    section: str
    measure: str
    ecm: str
    baseline: str = "-"
    ratio: str = "-"
    goal: str = "-"
    result: str = "-"

    def cells(self) -> tuple[str, ...]:
        """The row's cells in HEADER order."""
        return (self.section, self.measure, self.ecm, self.baseline, self.ratio, self.goal,
                self.result)  # fmt: skip


def verdict(ok: bool) -> str:
    """How a goal came out."""
    return "met" if ok else "NOT met"


def table(rows: list[Row]) -> str:
    """A Markdown table padded to line up in a terminal too."""
    cells = [HEADER, *(r.cells() for r in rows)]
    widths = [max(len(c[i]) for c in cells) for i in range(len(HEADER))]

    def line(c: tuple[str, ...]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(HEADER), rule, *(line(c) for c in cells[1:])])


@dataclass(frozen=True)
class Machine:
    """What the figures were measured on."""

    cpus: int
    memory_gib: float
    cpu_model: str
    postgres: str
    python: str

    def describe(self) -> str:
        """One line."""
        return (
            f"{self.cpus} CPUs ({self.cpu_model}), {self.memory_gib:.1f} GiB memory, "
            f"PostgreSQL {self.postgres} (throwaway local cluster, fsync off), "
            f"Python {self.python}"
        )


def machine(postgres: str) -> Machine:
    """This machine's CPU count and model, memory, and the server version."""
    model = platform.processor() or "unknown CPU"
    mem_kib = 0
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            model = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")),
                         model)  # fmt: skip
        with open("/proc/meminfo", encoding="utf-8") as fh:
            mem_kib = next(int(ln.split()[1]) for ln in fh if ln.startswith("MemTotal"))
    except (OSError, StopIteration):
        pass
    return Machine(
        cpus=os.cpu_count() or 0,
        memory_gib=mem_kib / 1024 / 1024,
        cpu_model=model,
        postgres=postgres,
        python=platform.python_version(),
    )


def markdown(
    rows: list[Row], mach: Machine, command: str, notes: list[str], plot: str | None
) -> str:
    """The whole BENCHMARKS.md document."""
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "# ECM benchmarks",
        "",
        "Measured by the benchmark suite (`bench/`); every figure is a ratio or is printed beside",
        "its baseline, measured in the same run. Regenerate with the command below.",
        "",
        f"- Command: `{command}`",
        f"- Date: {when}",
        f"- Machine: {mach.describe()}",
        "",
        table(rows),
        "",
        "## How each figure is measured",
        "",
        *[f"- {n}" for n in notes],
    ]
    if plot:
        parts += ["", "## Refresh cost against window size", "", f"![refresh cost]({plot})"]
    return "\n".join(parts) + "\n"


def plot(points: list[RefreshPoint], path: Path) -> str | None:
    """Refresh cost against window rows, log axes; None (and why) when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install -e '.[bench]')"
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
    for towers in sorted({p.towers for p in points}):
        pts = sorted((p for p in points if p.towers == towers), key=lambda p: p.rows)
        xs = [p.rows for p in pts]
        ax.plot(xs, [p.steady_s * 1e3 for p in pts], "o-", label=f"ECM refresh, {towers} towers")
        ax.plot(xs, [p.direct_s * 1e3 for p in pts], "s--",
                label=f"direct exact queries, {towers} towers")  # fmt: skip
        ax.plot(xs, [p.rebuild_s * 1e3 for p in pts], "^:", alpha=0.6,
                label=f"ECM start-up rebuild, {towers} towers")  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("rows in the longest window (1h)")
    ax.set_ylabel("milliseconds per refresh")
    ax.set_title("Refresh cost against window size")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return None


def run_alone(
    prog: str,
    doc: str | None,
    argv: Sequence[str] | None,
    rows_of: Callable[[str, bool], list[Row]],
) -> int:
    """`python -m bench.<section> [--quick]`: one section on a throwaway cluster, its table
    printed; rows_of(database URL, quick) runs it."""
    p = argparse.ArgumentParser(prog=prog, description=doc)
    p.add_argument("--quick", action="store_true", help="small sizes, seconds long")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
    with data.throwaway_database() as db:
        print(table(rows_of(db.url, args.quick)))
    return 0
