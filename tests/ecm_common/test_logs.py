"""setup_logging's handler masks connection-string passwords in every record."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from ecm_common.logs import LogFormat, setup_logging

URL = "postgresql://ecm:hunter2@db:5432/ecm"


@pytest.fixture
def restore_root() -> Iterator[None]:
    """Put the root logger and the exception hooks back as pytest had them."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    hooks = sys.excepthook, threading.excepthook
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    sys.excepthook, threading.excepthook = hooks


def _log_everything() -> None:
    # A child logger: filters on a parent logger would not see its records; the handler's do.
    log = logging.getLogger("ecm_tests.deep.child")
    log.info("connecting to %s", URL)
    log.warning("retrying host=db password=hunter2 dbname=ecm")
    log.error("bad format %d", URL)
    try:
        raise RuntimeError(f"cannot connect to {URL}")
    except RuntimeError:
        log.exception("writer died")


@pytest.mark.usefixtures("restore_root")
@pytest.mark.parametrize("fmt", ["text", "json"])
def test_no_password_reaches_the_log(fmt: LogFormat, capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("INFO", fmt)
    _log_everything()
    err = capsys.readouterr().err
    assert "hunter2" not in err
    assert "postgresql://ecm:***@db:5432/ecm" in err
    assert "password=***" in err
    assert "RuntimeError: cannot connect to postgresql://ecm:***@db" in err
    if fmt == "json":
        lines = [json.loads(line) for line in err.splitlines()]
        assert [d["message"] for d in lines][:2] == [
            "connecting to postgresql://ecm:***@db:5432/ecm",
            "retrying host=db password=*** dbname=ecm",
        ]
        assert "Traceback" in lines[-1]["exception"]


SETUP = f"""
import threading
from ecm_common.logs import setup_logging
setup_logging()
def boom():
    raise RuntimeError("cannot connect to {URL}")
"""
CRASHES = {
    "main": "boom()",
    "thread": "threading.Thread(target=boom, name='writer').start()",
}


@pytest.mark.parametrize("where", sorted(CRASHES))
def test_a_crash_traceback_is_masked_too(where: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SETUP + CRASHES[where]], capture_output=True, text=True, timeout=30
    )
    assert "Traceback" in proc.stderr
    assert "RuntimeError: cannot connect to postgresql://ecm:***@db" in proc.stderr
    assert "hunter2" not in proc.stderr
