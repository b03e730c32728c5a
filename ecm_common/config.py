"""Layered configuration: defaults < YAML file < ECM_* environment < command-line flags.

Every input is bounded: YAML files in bytes and nesting, without aliases (a tiny file cannot
expand into gigabytes) and without duplicate keys; numbers are finite; an error message names
the source and the key, shows at most a short excerpt of the bad value and never a secret.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, TypeVar

import psycopg
import yaml
from psycopg.conninfo import conninfo_to_dict
from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError, model_validator

from ecm_common.db import redact
from ecm_common.errors import ConfigError
from ecm_common.net import check_free

ENV_PREFIX = "ECM_"
MAX_FILE_BYTES = 256 * 1024
MAX_DEPTH = 32
MAX_NODES = 100_000
MAX_SHOWN = 80
MAX_ERRORS = 3
MAX_URL = 4096
# Keys whose values are never echoed: they may hold a password.
_SECRET_KEY = re.compile(r"url|password|dsn", re.IGNORECASE)
_PORTS = re.compile(r"\d{1,5}(,\d{1,5})*")

M = TypeVar("M", bound="StrictModel")
# Names of sub-model fields whose own fields are options at the top level (see StrictModel.flat).
_FLATTENED: set[str] = set()


class StrictModel(BaseModel):
    """A frozen model that rejects unknown keys and non-finite numbers.

    A model may group options in sub-models listed in `flat`: their fields keep their
    top-level names for users (YAML keys, ECM_* variables, flags) while the code reads
    the group as one object.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    flat: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        """Remember the grouped fields, so error messages can name the user's key."""
        super().__pydantic_init_subclass__(**kwargs)
        _FLATTENED.update(cls.flat)

    @model_validator(mode="before")
    @classmethod
    def _nest_flat(cls, data: Any) -> Any:
        if not cls.flat or not isinstance(data, dict):
            return data
        out = dict(data)
        for name in cls.flat:
            sub = cls.model_fields[name].annotation
            assert isinstance(sub, type) and issubclass(sub, StrictModel)
            given = out.pop(name, None)
            inner: dict[str, Any] = {}
            if isinstance(given, BaseModel):
                inner.update(given.model_dump(exclude_unset=True))
            elif isinstance(given, dict):
                inner.update(given)
            elif given is not None:
                out[name] = given
                continue
            for key in option_names(sub):
                if key in out:
                    inner[key] = out.pop(key)
            if inner or given is not None:
                out[name] = inner
        return out


def option_names(model: type[BaseModel]) -> list[str]:
    """The user-facing option names of a model, grouped sub-models flattened."""
    flat = getattr(model, "flat", ())
    out: list[str] = []
    for name, field in model.model_fields.items():
        if name in flat and isinstance(field.annotation, type):
            out += option_names(field.annotation)
        else:
            out.append(name)
    return out


def shorten(value: object, limit: int = MAX_SHOWN) -> str:
    """repr() of a value cut to about limit characters, for error messages."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def one_line(text: str, limit: int = MAX_SHOWN) -> str:
    """Text on one line (whitespace runs become one space), cut to about limit characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _check_database_url(value: str | None) -> str | None:
    """The URL's form only (postgresql://... or key=value); the message never shows it."""
    if value is None:
        return None
    if len(value) > MAX_URL:
        raise ValueError(f"a database URL must be at most {MAX_URL} characters")
    try:
        info = conninfo_to_dict(value)
    except (psycopg.Error, UnicodeError, ValueError):
        raise ValueError(
            "expected a libpq URL (postgresql://user@host:5432/db) or key=value string"
        ) from None
    if "://" in value and not re.match(r"^postgres(ql)?://", value):
        raise ValueError("expected a URL starting with postgresql://")
    port = str(info.get("port", "5432"))
    if not _PORTS.fullmatch(port) or any(int(p) > 65535 for p in port.split(",")):
        raise ValueError("the port of the database URL must be a number up to 65535")
    return value


# A libpq connection string whose form is checked at load (the server is not contacted).
DatabaseUrl = Annotated[str | None, AfterValidator(_check_database_url)]


# libyaml when installed (ten times faster); the checks below hold for both.
_BASE_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BASE_LOADER):  # type: ignore[valid-type,misc]
    """A safe loader whose mappings refuse duplicate keys: a second 'rate:' is an error."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        """The mapping, after checking that no key repeats."""
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                dup = key in seen
            except TypeError:
                continue  # unhashable: SafeLoader reports it below
            if dup:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping",
                    node.start_mark,
                    f"duplicate key {shorten(key, 40)}",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)  # type: ignore[no-any-return]


def _refuse(source: str, event: yaml.Event, problem: str) -> ConfigError:
    mark = event.start_mark
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    return ConfigError(f"{source}: not valid YAML{where}: {problem}")


def _check_events(text: str, source: str) -> None:
    """Refuse aliases (billion laughs), deep nesting and too many nodes before building."""
    depth = nodes = 0
    for event in yaml.parse(text, Loader=_BASE_LOADER):
        if isinstance(event, yaml.AliasEvent):
            raise _refuse(source, event, "aliases (*name) are not allowed")
        if isinstance(event, yaml.NodeEvent):
            nodes += 1
            if nodes > MAX_NODES:
                raise _refuse(source, event, f"more than {MAX_NODES} values")
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise _refuse(source, event, f"nested deeper than {MAX_DEPTH} levels")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def parse_yaml(text: str, source: str) -> Any:
    """The document in text, or ConfigError naming the source, the line and the problem."""
    try:
        _check_events(text, source)
        return yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = one_line(exc.problem or exc.context or "syntax error")
        raise ConfigError(f"{source}: not valid YAML{where}: {problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {one_line(str(exc))}") from None
    except (ValueError, OverflowError, RecursionError) as exc:
        # Tagged values such as a timestamp with year 0 fail while being built.
        raise ConfigError(f"{source}: a value cannot be read: {one_line(str(exc))}") from None


def read_text(
    path: str | Path, what: str = "configuration file", limit: int = MAX_FILE_BYTES
) -> str:
    """A UTF-8 text file of at most limit bytes, or ConfigError naming the file."""
    p = Path(path)
    try:
        with p.open("rb") as f:
            data = f.read(limit + 1)
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read {what}: {exc.strerror or exc}") from None
    if len(data) > limit:
        size = f"{limit // 1024} KiB" if limit >= 1024 and not limit % 1024 else f"{limit} bytes"
        raise ConfigError(f"{p}: {what} is larger than {size}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: {what} is not UTF-8 text (byte {exc.start})") from None


def read_yaml(path: str | Path, what: str = "configuration file") -> dict[str, Any]:
    """Read a YAML mapping from a file, or raise ConfigError naming the file."""
    data = parse_yaml(read_text(path, what), str(path))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of option names to values at the top level")
    return data


def env_values(
    model: type[StrictModel], environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Values from ECM_<OPTION> environment variables for the model's options."""
    env = os.environ if environ is None else environ
    out: dict[str, str] = {}
    for name in option_names(model):
        key = ENV_PREFIX + name.upper()
        if key in env and env[key] != "":
            out[name] = env[key]
    return out


def _key(loc: tuple[int | str, ...]) -> str:
    parts = list(loc)
    while parts and parts[0] in _FLATTENED:
        parts.pop(0)
    return ".".join(str(p) for p in parts)[:MAX_SHOWN]


def describe_error(exc: ValidationError, source: str) -> str:
    """One line naming the source, the key and what was expected; secrets never shown."""
    parts = []
    errors = exc.errors()
    for err in errors[:MAX_ERRORS]:
        key = _key(err["loc"])
        msg = one_line(
            str(err["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, "), 200
        )
        if err["type"] == "extra_forbidden":
            parts.append(f"unknown key {shorten(key)}")
            continue
        got = err.get("input")
        shown = ""
        if not _SECRET_KEY.search(key) and isinstance(got, str | int | float | bool):
            shown = f" (got {shorten(got)})"
        parts.append(f"key '{key}': {msg}{shown}" if key else f"{msg}")
    if len(errors) > MAX_ERRORS:
        parts.append(f"and {len(errors) - MAX_ERRORS} more")
    return f"{source}: " + "; ".join(parts)


def load_config(
    model: type[M],
    *,
    file: str | Path | None = None,
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> M:
    """Merge the layers and validate; any problem is one ConfigError naming where it came from."""
    layers: list[tuple[str, dict[str, Any]]] = []
    if file is not None:
        layers.append((str(file), read_yaml(file)))
    layers.append(("environment", env_values(model, environ)))
    cli = {k: v for k, v in (flags or {}).items() if v is not None}
    refuse_secret_flags(cli)
    layers.append(("command line", cli))
    merged: dict[str, Any] = {}
    for source, values in layers:
        # A group's name is no option: users name its fields directly.
        for key in values:
            if key in model.flat:
                raise ConfigError(f"{source}: unknown key {shorten(key)}")
        # Validate each layer alone first so the error names the layer that holds the bad value.
        validate(model, {**_defaults(model), **values}, source)
        merged.update(values)
    return validate(model, merged, "configuration")


def refuse_secret_flags(flags: Mapping[str, Any]) -> None:
    """ConfigError for a password given on the command line, where `ps` shows it to every user."""
    for key, value in flags.items():
        if isinstance(value, str) and redact(value) != value:
            flag = "--" + key.replace("_", "-")
            raise ConfigError(
                f"command line: {flag} carries a password, which any user of this machine can "
                f"read in the process list; give it in {ENV_PREFIX}{key.upper()}, a "
                "configuration file or ~/.pgpass (PGPASSWORD) instead"
            )


def validate(model: type[M], data: Any, source: str) -> M:
    """model_validate with one ConfigError line naming the source on failure."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_error(exc, source)) from None
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def _defaults(model: type[StrictModel]) -> dict[str, Any]:
    """Field defaults, so a layer can be validated on its own."""
    return {
        name: field.get_default(call_default_factory=True)
        for name, field in model.model_fields.items()
        if not field.is_required() and name not in model.flat
    }


def check_listen(address: str, port: int, option: str) -> None:
    """ConfigError when address:port cannot be bound (in use, not ours), checked before a run."""
    check_free(address, port, option)
