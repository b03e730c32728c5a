"""A throwaway local PostgreSQL cluster (system or embedded binaries), for demos and tests."""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from ecm_common.errors import EcmError

log = logging.getLogger(__name__)

SUPERUSER = "ecm"
DEFAULT_DB = "ecm"


class ClusterError(EcmError):
    """The local cluster could not be created or started."""


def find_bindir() -> Path | None:
    """The directory holding initdb and pg_ctl: ECM_PG_BIN, Debian's layout, then PATH."""
    explicit = os.environ.get("ECM_PG_BIN")
    candidates = [explicit] if explicit else []
    candidates += sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]), reverse=True
    )
    candidates += sorted(glob.glob("/usr/pgsql-*/bin"), reverse=True)
    for cand in candidates:
        if cand and (Path(cand) / "initdb").is_file() and (Path(cand) / "pg_ctl").is_file():
            return Path(cand)
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def unprivileged_user() -> str | None:
    """PostgreSQL refuses to run as root: the account to run it as, or None when not root."""
    if os.geteuid() != 0:
        return None
    for name in (os.environ.get("ECM_PG_RUN_AS"), "postgres", "nobody"):
        if not name:
            continue
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise ClusterError(
        "running as root and no unprivileged account (postgres, nobody) to run PostgreSQL"
    )


class LocalCluster:
    """initdb, start, stop and URLs of one cluster living in its own directory."""

    def __init__(
        self,
        base_dir: Path | None = None,
        port: int | None = None,
        *,
        fast: bool = True,
        bindir: Path | None = None,
    ):
        bindir = bindir or find_bindir()
        if bindir is None:
            raise ClusterError(
                "no PostgreSQL server binaries found (initdb, pg_ctl): install PostgreSQL "
                "(Debian: apt-get install postgresql) or set ECM_DATABASE_URL"
            )
        self.bindir: Path = bindir
        self.base = Path(base_dir) if base_dir else Path(tempfile.mkdtemp(prefix="ecm-pg-"))
        self.data = self.base / "data"
        self.logfile = self.base / "postgres.log"
        self.port = port or free_port()
        self.fast = fast
        self.run_as = unprivileged_user()

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        try:
            proc = subprocess.run(
                cmd, user=self.run_as, capture_output=True, text=True, cwd=self.base, check=False
            )
        except OSError as exc:
            # e.g. the account we run the server as cannot reach binaries under a private home.
            as_user = f" as {self.run_as}" if self.run_as else ""
            raise ClusterError(f"cannot run {cmd[0]}{as_user}: {exc.strerror}") from None
        if proc.returncode != 0:
            raise ClusterError(f"{args[0]} failed: {(proc.stderr or proc.stdout).strip()[-800:]}")
        return proc

    def init(self) -> None:
        """Create the data directory unless it already exists."""
        self.base.mkdir(parents=True, exist_ok=True)
        if self.run_as:
            pw = pwd.getpwnam(self.run_as)
            os.chown(self.base, pw.pw_uid, pw.pw_gid)
        if (self.data / "PG_VERSION").exists():
            return
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        conf = [
            "listen_addresses = '127.0.0.1'",
            f"port = {self.port}",
            f"unix_socket_directories = '{self.base}'",
            "max_connections = 200",
            "log_min_messages = warning",
        ]
        if self.fast:
            # A throwaway cluster: durability is not wanted, speed is.
            conf += ["fsync = off", "synchronous_commit = off", "full_page_writes = off"]
        with open(self.data / "postgresql.auto.conf", "a", encoding="utf-8") as fh:
            fh.write("\n".join(conf) + "\n")

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        self.init()
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.logfile),
            "-w",
            "-t",
            "60",
            "-o",
            f"-p {self.port}",
            "start",
        )
        log.info("PostgreSQL started on 127.0.0.1:%d (data in %s)", self.port, self.data)

    def ensure_database(self, name: str = DEFAULT_DB) -> str:
        """Create a database unless it exists; returns its URL."""
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self, mode: str = "fast") -> None:
        """Stop the server; silent when it is not running."""
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(ClusterError):
                self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def destroy(self) -> None:
        """Stop the server and delete its directory."""
        self.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)

    def url(self, dbname: str = DEFAULT_DB, user: str = SUPERUSER) -> str:
        """A libpq URL for a database on this cluster."""
        return f"postgresql://{user}@127.0.0.1:{self.port}/{dbname}"

    def log_tail(self, lines: int = 40) -> str:
        """The end of the server log, for error messages."""
        try:
            return "\n".join(self.logfile.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
