"""Options of the local run."""

from __future__ import annotations

from ecm_common.config import StrictModel


class StackConfig(StrictModel):
    """Options of the local run."""

    database_url: str | None = None
    rate: float = 5.0
    failure_prob: float = 0.02
    towers: int = 50
    scenario: str | None = None
    exporter_port: int = 9742
    generator_metrics_port: int = 9743
    prometheus_port: int = 9090
    alertmanager_port: int = 9093
    with_prometheus: bool = True
    state_dir: str | None = None
    log_level: str = "INFO"
    log_format: str = "text"
