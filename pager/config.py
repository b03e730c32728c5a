"""Pager settings and escalation policies, validated at load: one YAML file (--config), ECM_*
variables and flags for the scalar options; secrets only from the environment or files.

Checked before anything runs: every service names a defined policy, the default and the
monitoring service exist, each level has one to MAX_TARGETS well-formed targets.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import Field, SecretStr, field_validator, model_validator

from ecm_common.config import DatabaseUrl, StrictModel, load_config
from ecm_common.durations import Seconds
from ecm_common.logs import LogFormat, LogLevel
from ecm_common.service import HttpSettings, load_token

DEFAULT_PORT = 9744
DEFAULT_LEVEL_TIMEOUT_S = 15 * 60.0
# How often the Watchdog really arrives: Alertmanager re-sends a still-firing group only on a
# group_interval tick, and only when repeat_interval has passed since the last send. With the
# committed heartbeat route (group_interval 1m, repeat_interval 1m) the tick one minute after a
# send finds a few milliseconds less than 1m elapsed and skips, so the Watchdog comes about
# every 2 minutes, not every minute. 5 minutes is two missed deliveries plus slack.
DEFAULT_WATCHDOG_SILENCE_S = 5 * 60.0
MAX_SERVICES = 10_000
MAX_POLICIES = 1000
MAX_LEVELS = 20
MAX_TARGETS = 20
MAX_REPEAT = 100
Channel = Literal["email", "sms", "webhook"]
CHANNELS: tuple[Channel, ...] = ("email", "sms", "webhook")
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}$"
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}$")
_SMS = re.compile(r"^\+[1-9][0-9]{6,14}$")
_URL = re.compile(r"^https?://[^\s/]+(/\S*)?$")
# Secrets: environment variables (or NAME_FILE), never YAML keys or flags.
WRITE_TOKEN_ENV = "ECM_PAGER_TOKEN"
ALERTMANAGER_TOKEN_ENV = "ECM_PAGER_ALERTMANAGER_TOKEN"
ACK_SECRET_ENV = "ECM_PAGER_ACK_SECRET"
SMTP_PASSWORD_ENV = "ECM_PAGER_SMTP_PASSWORD"
SMS_TOKEN_ENV = "ECM_PAGER_SMS_TOKEN"


# Without a config file: one level paging an example address (README shows a real file).
SAMPLE_POLICY: dict[str, Any] = {"levels": [{"targets": [{"email": "oncall@example.org"}]}]}
V = TypeVar("V")


class Target(StrictModel):
    """One recipient: exactly one of email, sms (E.164 number) or webhook (http(s) URL)."""

    email: str | None = None
    sms: str | None = None
    webhook: str | None = None

    @model_validator(mode="after")
    def _one(self) -> Target:
        given = [c for c in CHANNELS if getattr(self, c) is not None]
        if len(given) != 1:
            raise ValueError("a target is exactly one of email, sms or webhook")
        value = str(getattr(self, given[0]))
        pattern = {"email": _EMAIL, "sms": _SMS, "webhook": _URL}[given[0]]
        if len(value) > 2048 or not pattern.match(value):
            expected = {
                "email": "an address like oncall@example.org",
                "sms": "an E.164 number like +15550100",
                "webhook": "an http:// or https:// URL",
            }[given[0]]
            raise ValueError(f"{given[0]} target: expected {expected}")
        return self

    @property
    def channel(self) -> Channel:
        """email, sms or webhook."""
        return next(c for c in CHANNELS if getattr(self, c) is not None)

    @property
    def address(self) -> str:
        """The address, number or URL."""
        return str(getattr(self, self.channel))


class Level(StrictModel):
    """One escalation step: everyone in targets is notified at once."""

    targets: Annotated[tuple[Target, ...], Field(min_length=1, max_length=MAX_TARGETS)]
    timeout: Seconds = Field(DEFAULT_LEVEL_TIMEOUT_S, gt=0)


class Policy(StrictModel):
    """Ordered levels; after the last one times out, the levels run again `repeat` more times."""

    levels: Annotated[tuple[Level, ...], Field(min_length=1, max_length=MAX_LEVELS)]
    repeat: int = Field(0, ge=0, le=MAX_REPEAT)


class ServiceSpec(StrictModel):
    """A monitored service and the policy that pages for it."""

    policy: str = Field(pattern=_NAME)


class PagerHttp(HttpSettings):
    """HTTP options with the pager's own port."""

    port: Annotated[int, Field(ge=0, le=65535)] = DEFAULT_PORT
    # Alertmanager's payload for a large group: 10,000 alerts of a few hundred bytes each.
    max_body_bytes: Annotated[int, Field(ge=0)] = 8 * 1024 * 1024


class PagerSettings(StrictModel):
    """Every pager option; scalar ones are also ECM_<NAME> variables and --flags."""

    flat: ClassVar[tuple[str, ...]] = ("http",)

    database_url: DatabaseUrl = None
    http: PagerHttp = Field(default_factory=PagerHttp)
    public_url: str = Field(f"http://127.0.0.1:{DEFAULT_PORT}", pattern=_URL.pattern)
    service_label: str = Field("service", pattern=r"^[a-zA-Z_][a-zA-Z0-9_]{0,99}$")
    default_service: str = Field("ecm", pattern=_NAME)
    monitoring_service: str = Field("ecm-monitoring", pattern=_NAME)
    watchdog_alertname: str = Field("EcmWatchdog", pattern=r"^[a-zA-Z_][a-zA-Z0-9_]{0,199}$")
    watchdog_silence: Seconds = Field(DEFAULT_WATCHDOG_SILENCE_S, gt=0)
    ack_timeout: Seconds = Field(30 * 60.0, gt=0)
    ack_link_ttl: Seconds = Field(24 * 3600.0, gt=0)
    tick: Seconds = Field(1.0, gt=0, le=60)
    send_attempts: int = Field(6, ge=1, le=100)
    send_backoff: Seconds = Field(10.0, gt=0, le=3600)
    send_timeout: Seconds = Field(10.0, gt=0, le=120)
    smtp_host: str | None = Field(None, max_length=255)
    smtp_port: int = Field(25, ge=1, le=65535)
    smtp_starttls: bool = False
    smtp_user: str | None = Field(None, max_length=255)
    smtp_from: str = Field("ecm-pager@localhost", pattern=_EMAIL.pattern)
    sms_gateway_url: str | None = Field(None, pattern=_URL.pattern)
    policies: dict[str, Policy] = Field(
        default_factory=lambda: {"default": Policy.model_validate(SAMPLE_POLICY)}
    )
    services: dict[str, ServiceSpec] = Field(
        default_factory=lambda: {
            "ecm": ServiceSpec(policy="default"),
            "ecm-monitoring": ServiceSpec(policy="default"),
        }
    )
    log_level: LogLevel = "INFO"
    log_format: LogFormat = "text"

    @field_validator("policies")
    @classmethod
    def _policy_names(cls, value: dict[str, Policy]) -> dict[str, Policy]:
        return _check_names(value, MAX_POLICIES)

    @field_validator("services")
    @classmethod
    def _service_names(cls, value: dict[str, ServiceSpec]) -> dict[str, ServiceSpec]:
        return _check_names(value, MAX_SERVICES)

    @model_validator(mode="after")
    def _references(self) -> PagerSettings:
        for name, spec in self.services.items():
            if spec.policy not in self.policies:
                raise ValueError(f"service {name!r} names policy {spec.policy!r}, not defined")
        for option in ("default_service", "monitoring_service"):
            if getattr(self, option) not in self.services:
                raise ValueError(f"{option} {getattr(self, option)!r} is not in services")
        uses_sms = any(
            t.channel == "sms"
            for p in self.policies.values()
            for lv in p.levels
            for t in lv.targets
        )
        if uses_sms and not self.sms_gateway_url:
            raise ValueError("a policy has sms targets: set sms_gateway_url")
        return self

    def policy_of(self, service: str) -> Policy:
        """The policy of a service; an unknown one (config changed) gets the default's."""
        spec = self.services.get(service) or self.services[self.default_service]
        return self.policies[spec.policy]

    def service_for(self, labels: Mapping[str, str]) -> str:
        """The service an alert belongs to: its service label when known, else the default."""
        name = labels.get(self.service_label, "")
        return name if name in self.services else self.default_service


def _check_names(value: dict[str, V], limit: int) -> dict[str, V]:
    if len(value) > limit:
        raise ValueError(f"at most {limit} entries")
    for name in value:
        if not re.match(_NAME, str(name)):
            raise ValueError(f"{str(name)[:40]!r} is not a name (letters, digits, _.:-)")
    return value


@dataclass(frozen=True)
class Secrets:
    """Tokens and passwords, from ECM_PAGER_* variables or their _FILE twins."""

    write_token: SecretStr | None
    alertmanager_token: SecretStr | None
    ack_secret: SecretStr | None
    smtp_password: SecretStr | None
    sms_token: SecretStr | None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Secrets:
        """Read every secret; a bad file is one ConfigError naming the variable."""
        return cls(
            write_token=load_token(WRITE_TOKEN_ENV, environ),
            alertmanager_token=load_token(ALERTMANAGER_TOKEN_ENV, environ),
            ack_secret=load_token(ACK_SECRET_ENV, environ),
            smtp_password=load_token(SMTP_PASSWORD_ENV, environ),
            sms_token=load_token(SMS_TOKEN_ENV, environ),
        )


def load_settings(
    *,
    file: str | Path | None = None,
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> PagerSettings:
    """Merge defaults < YAML < ECM_* < flags and validate, one ConfigError on any problem."""
    return load_config(PagerSettings, file=file, flags=flags, environ=environ)
