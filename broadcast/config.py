"""Broadcast options: one name across YAML, ECM_* environment and flags, validated at load.

Precedence, lowest first: defaults < YAML file < the seed's variables (MESSAGE_COUNT,
SENDER_MEAN_TIME, SENDER_FAILURE_RATE, SENDER_COUNT, MONITOR_INTERVAL) < ECM_* variables <
flags. The seed's names are kept so its .env files work unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import Field, field_validator

from broadcast import sms
from ecm_common.config import DatabaseUrl, StrictModel, load_config, validate
from ecm_common.durations import Seconds
from ecm_common.logs import LogFormat, LogLevel

MAX_COUNT = 10_000_000
MAX_SENDERS = 64
MAX_WINDOW = 1000
MAX_BATCH = 1000
MAX_MEAN_TIME_S = 60.0
MAX_LEASE_S = 3600.0
MAX_NAME = 100
DEFAULT_TEXT = "ECM emergency alert TEST. This is a test of the alert system. No action is needed."
DEFAULT_METRICS_PORT = 9746

# The seed's variable -> option.
SEED_ENV: dict[str, str] = {
    "MESSAGE_COUNT": "count",
    "SENDER_MEAN_TIME": "mean_time",
    "SENDER_FAILURE_RATE": "failure_rate",
    "SENDER_COUNT": "senders",
    "MONITOR_INTERVAL": "interval",
}

Port = Annotated[int, Field(ge=0, le=65535)]


class Common(StrictModel):
    """Options every subcommand takes."""

    database_url: DatabaseUrl = None
    log_level: LogLevel = "INFO"
    log_format: LogFormat = "text"


class ProduceSettings(Common):
    """Options of `produce`: one campaign of `count` messages."""

    count: int = Field(1000, ge=1, le=MAX_COUNT)
    campaign: str | None = Field(None, min_length=1, max_length=MAX_NAME)
    text: str = Field(DEFAULT_TEXT, min_length=1, max_length=1600)
    recipients: str | None = Field(None, min_length=1, max_length=4096)
    priority: int = Field(5, ge=0, le=9)
    max_attempts: int = Field(3, ge=1, le=20)
    seed: int | None = Field(None, ge=0, le=2**63 - 1)
    progress: bool | None = None

    @field_validator("text")
    @classmethod
    def _segments(cls, value: str) -> str:
        sms.encode(value)
        return value


class SenderSettings(Common):
    """Options of `sender`: one simulated SMSC connection, or `senders` of them."""

    mean_time: float = Field(0.1, ge=0, le=MAX_MEAN_TIME_S)
    failure_rate: float = Field(0.2, ge=0, le=1)
    window: int = Field(20, ge=1, le=MAX_WINDOW)
    batch_size: int = Field(50, ge=1, le=MAX_BATCH)
    rate_limit: float | None = Field(None, gt=0, le=1e6)
    lease: Seconds = Field(30.0, ge=0.05, le=MAX_LEASE_S)
    poll_interval: Seconds = Field(1.0, ge=0.01, le=60)
    retry_base_delay: Seconds = Field(1.0, ge=0, le=3600)
    retry_max_delay: Seconds = Field(60.0, ge=0, le=3600)
    senders: int = Field(1, ge=1, le=MAX_SENDERS)
    sender_id: str | None = Field(None, min_length=1, max_length=MAX_NAME - 4)
    seed: int | None = Field(None, ge=0, le=2**63 - 1)
    until_empty: bool = False
    metrics_port: Port = DEFAULT_METRICS_PORT
    metrics_listen_address: str = Field("0.0.0.0", min_length=1, max_length=255)


class MonitorSettings(Common):
    """Options of `monitor`."""

    interval: Seconds = Field(5.0, ge=0.1, le=3600)
    once: bool = False
    json_output: bool = False
    campaign: str | None = Field(None, min_length=1, max_length=MAX_NAME)


class CancelSettings(Common):
    """Options of `cancel`."""

    # Required (a positional argument); a default so each layer validates alone.
    campaign: str = Field("", max_length=MAX_NAME)


def seed_values(model: type[StrictModel], environ: Mapping[str, str]) -> dict[str, Any]:
    """The seed's variables that name an option of model and no ECM_* variable overrides."""
    out: dict[str, Any] = {}
    for var, option in SEED_ENV.items():
        if option not in model.model_fields or not environ.get(var):
            continue
        if environ.get("ECM_" + option.upper()):
            continue
        validate(model, {option: environ[var]}, f"environment variable {var}")
        out[option] = environ[var]
    return out


def settings(
    model: type[Common],
    flags: Mapping[str, Any],
    file: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Any:
    """Merge defaults, the YAML file, the seed's variables, ECM_* variables and flags."""
    env = os.environ if environ is None else environ
    given = {k: v for k, v in flags.items() if v is not None}
    merged = {**seed_values(model, env), **given}
    return load_config(model, file=file, flags=merged, environ=env)
