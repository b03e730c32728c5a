"""API settings: one name per option across YAML keys, ECM_* variables and flags.

The bearer token is no setting (settings are echoed in errors): it comes from ECM_API_TOKEN or
the file named by ECM_API_TOKEN_FILE.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, ClassVar

from pydantic import Field, model_validator

from ecm_common.config import DatabaseUrl, StrictModel
from ecm_common.durations import Seconds
from ecm_common.logs import LogFormat, LogLevel
from ecm_common.service import HttpSettings

DEFAULT_PORT = 9745
TOKEN_ENV = "ECM_API_TOKEN"
# The read scope: when set, GET /v1/... needs this token or the write token.
READ_TOKEN_ENV = "ECM_API_READ_TOKEN"
DAY_S = 86400.0
# A JSON event is about 300 bytes: 4 MiB holds a batch of MAX_BATCH_EVENTS with room to spare.
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
MAX_BODY_BYTES = 64 * 1024 * 1024
MAX_BATCH_EVENTS = 5000


class ApiHttpSettings(HttpSettings):
    """The shared HTTP options with the API's defaults."""

    listen_address: str = "0.0.0.0"
    port: Annotated[int, Field(ge=0, le=65535)] = DEFAULT_PORT
    max_body_bytes: Annotated[int, Field(ge=1024, le=MAX_BODY_BYTES)] = DEFAULT_MAX_BODY_BYTES


class ApiSettings(StrictModel):
    """Every API option; the same names are YAML keys, ECM_<NAME> variables and --flags."""

    flat: ClassVar[tuple[str, ...]] = ("http",)

    database_url: DatabaseUrl = None
    http: ApiHttpSettings = Field(default_factory=ApiHttpSettings)
    # Events one request may carry (413 above).
    max_batch_events: Annotated[int, Field(ge=1, le=100_000)] = MAX_BATCH_EVENTS
    # event_time bounds: a week back (a spool replayed after a long outage), 5 minutes ahead
    # (clock skew); anything else is a broken clock or a unit error, refused per event.
    max_event_age: Seconds = Field(7 * DAY_S, gt=0, le=365 * DAY_S)
    max_future_skew: Seconds = Field(300.0, ge=0, le=DAY_S)
    # Waiting for a pooled connection and each statement; past it the answer is 503.
    db_timeout: Seconds = Field(5.0, gt=0, le=600)
    pool_size: Annotated[int, Field(ge=1, le=64)] = 4
    # The rollup job: how often new events are folded into pm_kpi_5m and the gauges refreshed.
    rollup_interval: Seconds = Field(10.0, ge=1, le=3600)
    # Raw events one fold takes at most (a run folds up to 20 times): a backlog after a stall
    # is caught up in bounded transactions instead of one that outlasts the statement timeout.
    max_fold_rows: Annotated[int, Field(ge=1, le=10_000_000)] = 200_000
    # The senders' granularity period: silence is counted in periods (900 s like vendor files).
    pm_period: Seconds = Field(900.0, ge=1, le=DAY_S)
    # The KPI gauges average the 5-minute buckets of this trailing window.
    kpi_window: Seconds = Field(900.0, ge=300, le=DAY_S)
    top_n: Annotated[int, Field(ge=0, le=100)] = 10
    # Raw events older than raw_retention are deleted, retention_batch_rows per statement;
    # the rollups live rollup_retention.
    raw_retention: Seconds = Field(14 * DAY_S, ge=DAY_S, le=3650 * DAY_S)
    rollup_retention: Seconds = Field(400 * DAY_S, ge=DAY_S, le=3650 * DAY_S)
    retention_interval: Seconds = Field(300.0, ge=10, le=DAY_S)
    retention_batch_rows: Annotated[int, Field(ge=100, le=1_000_000)] = 10_000
    # Alert rules at run time (/v1/rules): the directory Prometheus reads rules from (the user
    # rules file is written there), the Prometheus to reload, promtool (default: on PATH), and
    # where docs/runbooks/ is served. No rules_dir: rules can be read, not changed.
    rules_dir: Path | None = None
    prometheus_url: Annotated[str, Field(pattern=r"^https?://[^\s]{1,200}$")] | None = None
    promtool: str | None = None
    runbook_base_url: Annotated[str, Field(min_length=1, max_length=300)] = "docs/runbooks"
    log_level: LogLevel = "INFO"
    log_format: LogFormat = "text"

    @model_validator(mode="after")
    def _retention_keeps_what_is_accepted(self) -> ApiSettings:
        if self.raw_retention < self.max_event_age:
            raise ValueError("raw_retention must be at least max_event_age")
        if self.rollup_retention < self.raw_retention:
            raise ValueError("rollup_retention must be at least raw_retention")
        return self
