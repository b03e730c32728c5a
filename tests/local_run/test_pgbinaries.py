"""Which PostgreSQL the local run starts, and the line that tells the user why."""

from __future__ import annotations

from pathlib import Path

import pytest

from stack.pgbinaries import PostgresChoice, choose
from stack.pgcluster import ClusterError
from tests.local_run.run import require_embedded


def bindir(tmp_path: Path) -> Path:
    """A directory standing for system server binaries."""
    d = tmp_path / "pg" / "bin"
    d.mkdir(parents=True)
    return d


def test_auto_prefers_the_system_binaries(tmp_path: Path) -> None:
    system = bindir(tmp_path)
    chosen = choose("auto", system=system, embedded=require_embedded())
    assert chosen.bindir == system
    assert chosen.why.startswith(f"system binaries at {system}")


def test_auto_without_system_binaries_falls_back_to_the_embedded_server() -> None:
    embedded = require_embedded()
    chosen = choose("auto", system=None, embedded=embedded)
    assert chosen.bindir == embedded
    assert chosen.why.startswith("embedded pgserver ")
    assert "PostgreSQL 1" in chosen.why
    assert chosen.why.endswith("(no server binaries found)")


def test_embedded_when_asked_even_with_system_binaries(tmp_path: Path) -> None:
    embedded = require_embedded()
    chosen = choose("embedded", system=bindir(tmp_path), embedded=embedded)
    assert chosen.bindir == embedded
    assert chosen.why.endswith("(asked for: embedded)")


@pytest.mark.parametrize(
    ("mode", "hints"),
    [
        ("system", ["apt-get install postgresql", "ECM_DATABASE_URL"]),
        ("embedded", ["pip install -e '.[embedded]'", "ECM_DATABASE_URL"]),
        (
            "auto",
            ["apt-get install postgresql", "pip install -e '.[embedded]'", "ECM_DATABASE_URL"],
        ),
    ],
)
def test_nothing_to_start_says_what_to_install(mode: PostgresChoice, hints: list[str]) -> None:
    with pytest.raises(ClusterError) as err:
        choose(mode, system=None, embedded=None)
    message = str(err.value)
    assert "\n" not in message
    for hint in hints:
        assert hint in message
