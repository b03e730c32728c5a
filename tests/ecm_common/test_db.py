"""Connection strings: passwords masked in every form, and never in a connection error."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ecm_common.db import check_url, connect, database_url, redact
from ecm_common.errors import ConfigError, DatabaseUnavailable
from stack.pgcluster import free_port

REDACTED = [
    ("postgresql://u:hunter2@h:5432/db", "postgresql://u:***@h:5432/db"),
    ("postgres://:hunter2@h/db", "postgres://:***@h/db"),
    # Unencoded '@' and '/' in the password: masked up to the host.
    ("postgresql://u:hun@ter2@h/db", "postgresql://u:***@h/db"),
    ("postgresql://u:hun/ter2@h/db", "postgresql://u:***@h/db"),
    (
        "postgresql://h/db?user=u&password=hunter2&sslmode=require",
        "postgresql://h/db?user=u&password=***&sslmode=require",
    ),
    ("postgresql://h/db?sslpassword=hunter2", "postgresql://h/db?sslpassword=***"),
    ("host=h password=hunter2 dbname=x", "host=h password=*** dbname=x"),
    ("host=h password = 'hun ter2' dbname=x", "host=h password = *** dbname=x"),
    (r"host=h password='it\'s hunter2' dbname=x", "host=h password=*** dbname=x"),
    ("PGPASSWORD=hunter2 psql", "PGPASSWORD=*** psql"),
    ("input_value={'password': 'hunter2'}", "input_value={'password': ***}"),
    (
        "unrecognized arguments: --generator-password hunter2 --rate 5",
        "unrecognized arguments: --generator-password *** --rate 5",
    ),
    ("--exporter-password=hunter2", "--exporter-password=***"),
    ("got 'postgresql://u:hunter2@h/db' for key", "got 'postgresql://u:***@h/db' for key"),
]
UNTOUCHED = [
    "postgresql://u@h/db",
    "postgresql://h:5432/db?sslmode=require",
    'password authentication failed for user "u"',
    "--exporter-password-file /run/secrets/reader",
]


@pytest.mark.parametrize(("text", "shown"), REDACTED)
def test_redact_masks_every_form(text: str, shown: str) -> None:
    assert redact(text) == shown


@pytest.mark.parametrize("text", UNTOUCHED)
def test_redact_leaves_text_without_passwords_alone(text: str) -> None:
    assert redact(text) == text


# Long texts shaped to make a careless pattern backtrack for minutes; none holds a password.
ADVERSARIAL = {
    "dashes": "-" * 100_000,
    "schemes": "postgresql://" * 8_000,
    "query keys": "?password" * 10_000,
    "flags": "--a-" * 25_000,
    "scheme chars": "a." * 50_000,
}


@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_redact_reads_long_texts_in_one_pass(name: str) -> None:
    assert redact(ADVERSARIAL[name]) == ADVERSARIAL[name]


# URLs libpq cannot parse: its message quotes a piece of the password.
UNPARSEABLE = [
    ("postgresql://u:sec ret@127.0.0.1/db", ("sec ret",)),
    ("host=127.0.0.1 password=hun ter2", ("hun", "ter2")),
    ("postgresql://u:hun%zzter2@127.0.0.1/db", ("hun%zzter2", "hun", "ter2")),
    ("postgresql://u:hunter2@[::1/db", ("hunter2",)),
]


@pytest.mark.parametrize(("url", "pieces"), UNPARSEABLE)
def test_an_unparseable_url_is_a_config_error_without_its_password(
    url: str, pieces: tuple[str, ...]
) -> None:
    for attempt in (check_url, connect):
        with pytest.raises(ConfigError, match="database URL is not valid") as err:
            attempt(url)
        for piece in pieces:
            assert piece not in str(err.value)


@pytest.mark.parametrize(
    "template",
    [
        "postgresql://ecm:hunter2@127.0.0.1:{port}/ecm",
        "postgresql://ecm@127.0.0.1:{port}/ecm?password=hunter2",
        "host=127.0.0.1 port={port} user=ecm password=hunter2 dbname=ecm",
    ],
)
def test_a_refused_connection_names_the_server_not_the_password(template: str) -> None:
    url = template.format(port=free_port())
    with pytest.raises(DatabaseUnavailable) as err:
        connect(url)
    message = str(err.value)
    assert "hunter2" not in message
    assert "***" in message
    assert "Connection refused" in message


def test_database_url_refuses_garbage_without_echoing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECM_DATABASE_URL", "hunter2")
    with pytest.raises(ConfigError) as err:
        database_url()
    assert "hunter2" not in str(err.value)
    with pytest.raises(ConfigError, match="longer than"):
        database_url("postgresql://h/" + "x" * 5000)


COMMANDS = [
    ["exporter", "--check-only"],
    ["exporter", "--once"],
    ["generator", "init-db"],
    ["generator", "--check-only"],
    # An unknown flag is echoed back by the argument parser.
    ["generator", "--generator-password", "hunter2"],
]
BAD_URLS = [
    "postgresql://ecm:hunter2@127.0.0.1:{port}/ecm",
    "host=127.0.0.1 port={port} password=hunt er2",
]


@pytest.mark.parametrize("url", BAD_URLS)
@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_commands_never_print_the_password(command: list[str], url: str) -> None:
    env = {**os.environ, "ECM_DATABASE_URL": url.format(port=free_port())}
    proc = subprocess.run(
        [sys.executable, "-m", *command], capture_output=True, text=True, timeout=60, env=env
    )
    shown = proc.stdout + proc.stderr
    assert "Traceback" not in shown
    for piece in ("hunter2", "hunt", "er2"):
        assert piece not in shown
