"""Options of the local run."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from ecm_common.config import DatabaseUrl, StrictModel
from ecm_common.durations import Seconds
from ecm_common.logs import LogFormat, LogLevel
from generator.config import MAX_RATE, MAX_TOWERS
from stack.pgbinaries import PostgresChoice

Port = Annotated[int, Field(ge=1, le=65535)]


class StackConfig(StrictModel):
    """Options of the local run: one name each in YAML, ECM_* environment and flags."""

    database_url: DatabaseUrl = None
    postgres: PostgresChoice = "auto"
    rate: Annotated[float, Field(gt=0, le=MAX_RATE)] = 5.0
    failure_prob: Annotated[float, Field(ge=0, le=1)] = 0.005
    towers: Annotated[int, Field(ge=1, le=MAX_TOWERS)] = 50
    scenario: Annotated[str | None, Field(min_length=1, max_length=4096)] = None
    exporter_port: Port = 9742
    generator_metrics_port: Port = 9743
    prometheus_port: Port = 9090
    alertmanager_port: Port = 9093
    sink_port: Port = 9099
    pager_port: Port = 9744
    api_port: Port = 9745
    # The SMS broadcast sender's /metrics (0: no sender) and the demo campaign queued at start.
    broadcast_port: Annotated[int, Field(ge=0, le=65535)] = 9746
    broadcast_messages: Annotated[int, Field(ge=0, le=100_000)] = 1000
    # The PM generator's granularity period in the local run (vendors use 15 minutes).
    pm_period: Seconds = Field(10.0, ge=1, le=86400)
    with_prometheus: bool = True
    state_dir: Annotated[str | None, Field(min_length=1, max_length=4096)] = None
    log_level: LogLevel = "INFO"
    log_format: LogFormat = "text"
