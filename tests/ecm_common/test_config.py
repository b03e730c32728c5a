"""Loading configuration: bounded YAML, one error line naming the key, secrets never shown."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import ClassVar

import pytest
from pydantic import Field

from ecm_common.config import (
    MAX_FILE_BYTES,
    DatabaseUrl,
    StrictModel,
    check_listen,
    env_values,
    load_config,
    read_yaml,
)
from ecm_common.errors import ConfigError

LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)


class Limits(StrictModel):
    """A group of options that users see at the top level."""

    low: float = 1.0
    high: float = Field(default=2.0, le=100)


class Settings(StrictModel):
    """Options with a flattened group, as the exporter's thresholds."""

    flat: ClassVar[tuple[str, ...]] = ("limits",)

    database_url: DatabaseUrl = None
    rate: float = Field(5.0, gt=0)
    limits: Limits = Field(default_factory=Limits)


def yaml_file(tmp_path: Path, data: str | bytes) -> Path:
    path = tmp_path / "c.yml"
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ("rate: 1\nrate: 2\n", "line 2, column 1: duplicate key 'rate'"),
        ("outer:\n  x: 1\n  x: 2\n", "duplicate key 'x'"),
        (LAUGHS, "aliases (*name) are not allowed"),
        ("base: &b {rate: 1}\nother: {<<: *b}\n", "aliases"),
        ("x: " + "[" * 40 + "]" * 40 + "\n", "nested deeper than 32"),
        ("x: [" + ",".join(["1"] * 100_001) + "]\n", "more than 100000 values"),
        (b"rate: 5\xff\n", "not UTF-8"),
        ("x: 0000-01-01\n", "cannot be read"),
        ("? [a, b]\n: 1\n", "unhashable"),
        ("x: [\n", "not valid YAML"),
        ("- 1\n- 2\n", "expected a mapping"),
        ("#" * (MAX_FILE_BYTES + 1), "larger than 256 KiB"),
    ],
)
def test_bad_yaml_is_one_config_error_naming_the_file(
    data: str | bytes, needle: str, tmp_path: Path
) -> None:
    path = yaml_file(tmp_path, data)
    with pytest.raises(ConfigError) as exc:
        read_yaml(path)
    text = str(exc.value)
    assert needle in text and str(path) in text
    assert "\n" not in text and len(text) < 300


def test_an_endless_file_is_not_read_whole(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="larger than"):
        read_yaml("/dev/zero")


def test_errors_name_the_key_and_shorten_the_value() -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(Settings, flags={"rate": "x" * 10_000}, environ={})
    assert str(exc.value).startswith("command line: key 'rate':")
    assert len(str(exc.value)) < 250


def test_non_finite_numbers_are_refused_everywhere() -> None:
    for value in ("inf", "-inf", "nan", float("inf")):
        with pytest.raises(ConfigError, match="finite"):
            load_config(Settings, flags={"rate": value}, environ={})
        with pytest.raises(ConfigError, match="key 'low': Input should be a finite number"):
            load_config(Settings, flags={"low": value}, environ={})


@pytest.mark.parametrize(
    "url",
    [
        "mysql://u:hunter2@h/db",
        "postgresql://u:hunter2@h:notaport/db",
        "postgresql://u:hunter2@h:99999/db",
        "host=h password=hunter2 bogus=1",
        "hunter2",
        "postgresql://u:hunter2@h/db" + "x" * 5000,
    ],
)
def test_a_bad_database_url_is_named_never_shown(url: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(Settings, environ={"ECM_DATABASE_URL": url})
    assert str(exc.value).startswith("environment: key 'database_url':")
    assert "hunter2" not in str(exc.value)
    # On the command line any value carrying a password is refused before its form is read.
    with pytest.raises(ConfigError) as exc:
        load_config(Settings, flags={"database_url": url}, environ={})
    assert str(exc.value).startswith("command line: ")
    assert "hunter2" not in str(exc.value)


@pytest.mark.parametrize(
    "url", ["postgresql://u:pw@h:5432/db", "postgres://h/db", "host=h port=5432 dbname=ecm"]
)
def test_good_database_urls_pass(url: str) -> None:
    assert load_config(Settings, environ={"ECM_DATABASE_URL": url}).database_url == url


@pytest.mark.parametrize(
    "url", ["postgresql://u:pw@h:5432/db", "host=h password=pw", "postgresql://h/db?password=pw"]
)
def test_a_password_is_refused_on_the_command_line_only(url: str) -> None:
    """`ps` shows every user a process's arguments; the environment and files are private."""
    with pytest.raises(ConfigError, match="--database-url carries a password") as exc:
        load_config(Settings, flags={"database_url": url}, environ={})
    assert "pw" not in str(exc.value).replace("password", "")
    assert load_config(Settings, environ={"ECM_DATABASE_URL": url}).database_url == url


def test_grouped_options_keep_their_top_level_names(tmp_path: Path) -> None:
    """YAML keys, ECM_* variables and flags name the group's fields directly."""
    path = yaml_file(tmp_path, "low: 3\n")
    s = load_config(Settings, file=path, flags={"high": "50"}, environ={"ECM_RATE": "2"})
    assert (s.rate, s.limits.low, s.limits.high) == (2.0, 3.0, 50.0)
    assert env_values(Settings, {"ECM_HIGH": "7", "ECM_LIMITS": "x"}) == {"high": "7"}
    with pytest.raises(ConfigError) as exc:
        load_config(Settings, flags={"high": "500"}, environ={})
    assert str(exc.value).startswith("command line: key 'high':")
    with pytest.raises(ConfigError, match="unknown key 'limits'"):
        load_config(Settings, file=yaml_file(tmp_path, "limits: {low: 3}\n"), environ={})


def test_a_taken_port_is_a_config_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"metrics_port: cannot listen on 127.0.0.1:{port}"):
            check_listen("127.0.0.1", port, "metrics_port")
