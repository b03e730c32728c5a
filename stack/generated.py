"""Files the builders generate (rules, dashboards): write them, or say which are out of date."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path


def stale(files: Mapping[str, str], out_dir: Path) -> list[str]:
    """Names whose committed file differs from the rendering (missing ones included)."""
    return [
        name
        for name, text in files.items()
        if not (out_dir / name).is_file() or (out_dir / name).read_text(encoding="utf-8") != text
    ]


def write_or_check(files: Mapping[str, str], out_dir: Path, *, check: bool, target: str) -> int:
    """With check: 1 and a line per stale file (fix: `make <target>`); else write them all, 0."""
    if check:
        names = stale(files, out_dir)
        for name in names:
            print(f"{out_dir / name} is not up to date: run `make {target}`", file=sys.stderr)
        return 1 if names else 0
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (out_dir / name).write_text(text, encoding="utf-8")
        print(f"wrote {out_dir / name}")
    return 0
