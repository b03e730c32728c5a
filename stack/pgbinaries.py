"""Which PostgreSQL the local run starts: the machine's server binaries, else pgserver's wheel."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from stack.pgcluster import ClusterError, find_bindir

PostgresChoice = Literal["auto", "system", "embedded"]

EMBEDDED_PACKAGE = "pgserver"
EMBEDDED_HINT = "pip install -e '.[embedded]' (make demo does)"
SYSTEM_HINT = "apt-get install postgresql, or set ECM_PG_BIN"


@dataclass(frozen=True)
class ServerBinaries:
    """The bin directory to start a cluster from, and the line that says which and why."""

    bindir: Path
    why: str


def embedded_bindir() -> Path | None:
    """pgserver's bundled bin directory; found without importing pgserver, whose import has side
    effects (a lock file under the user's runtime directory)."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    bindir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    return bindir if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file() else None


def server_version(bindir: Path) -> str:
    """'PostgreSQL 16.2' from `postgres --version`, or 'PostgreSQL' when it cannot tell."""
    try:
        out = subprocess.run(
            [str(bindir / "postgres"), "--version"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "PostgreSQL"
    m = re.search(r"\(PostgreSQL\) (\S+)", out)  # "postgres (PostgreSQL) 15.18 (Debian ...)"
    return f"PostgreSQL {m.group(1)}" if m else "PostgreSQL"


def choose(mode: PostgresChoice, *, system: Path | None, embedded: Path | None) -> ServerBinaries:
    """System binaries first (auto), the embedded server when there are none; or as asked."""
    if mode != "embedded" and system is not None:
        asked = " (asked for: system)" if mode == "system" else ""
        return ServerBinaries(
            system, f"system binaries at {system}, {server_version(system)}{asked}"
        )
    if mode != "system" and embedded is not None:
        reason = "no server binaries found" if mode == "auto" else "asked for: embedded"
        version = importlib.metadata.version(EMBEDDED_PACKAGE)
        return ServerBinaries(
            embedded, f"embedded pgserver {version}, {server_version(embedded)} ({reason})"
        )
    if mode == "system":
        raise ClusterError(
            "no PostgreSQL server binaries found (initdb, pg_ctl): "
            f"{SYSTEM_HINT}, or use --postgres auto or set ECM_DATABASE_URL"
        )
    if mode == "embedded":
        raise ClusterError(
            f"the embedded PostgreSQL ({EMBEDDED_PACKAGE}) is not installed: {EMBEDDED_HINT}, "
            "or set ECM_DATABASE_URL"
        )
    raise ClusterError(
        "no PostgreSQL server binaries found (initdb, pg_ctl) and the embedded PostgreSQL "
        f"({EMBEDDED_PACKAGE}) is not installed: {SYSTEM_HINT}; or {EMBEDDED_HINT}; "
        "or set ECM_DATABASE_URL"
    )


def find(mode: PostgresChoice) -> ServerBinaries:
    """Look on this machine for the binaries the mode allows and choose among them."""
    return choose(
        mode,
        system=find_bindir() if mode != "embedded" else None,
        embedded=embedded_bindir() if mode != "system" else None,
    )
