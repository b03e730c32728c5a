"""Layered configuration: defaults < YAML file < ECM_* environment < command-line flags."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from ecm_common.errors import ConfigError

ENV_PREFIX = "ECM_"

M = TypeVar("M", bound="StrictModel")


class StrictModel(BaseModel):
    """A frozen model that rejects unknown keys: the validated view the rest of the code reads."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping from a file, or raise ConfigError naming the file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read configuration file: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}".replace("\n", " ")) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping of option names to values at the top level")
    return data


def env_values(
    model: type[StrictModel], environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Values from ECM_<FIELD> environment variables for the model's fields."""
    env = os.environ if environ is None else environ
    out: dict[str, str] = {}
    for name in model.model_fields:
        key = ENV_PREFIX + name.upper()
        if key in env and env[key] != "":
            out[name] = env[key]
    return out


def describe_error(exc: ValidationError, source: str) -> str:
    """One line naming the source, the key and what was expected."""
    parts = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            parts.append(f"unknown key '{key}'")
        else:
            got = err.get("input")
            parts.append(f"key '{key}': {err['msg']} (got {got!r})")
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
    layers.append(("command line", {k: v for k, v in (flags or {}).items() if v is not None}))
    merged: dict[str, Any] = {}
    for source, values in layers:
        # Validate each layer alone first so the error names the layer that holds the bad value.
        try:
            model.model_validate({**_defaults(model), **values})
        except ValidationError as exc:
            raise ConfigError(describe_error(exc, source)) from None
        merged.update(values)
    try:
        return model.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(describe_error(exc, "configuration")) from None


def _defaults(model: type[StrictModel]) -> dict[str, Any]:
    """Field defaults, so a layer can be validated on its own."""
    return {
        name: field.get_default(call_default_factory=True)
        for name, field in model.model_fields.items()
        if not field.is_required()
    }
