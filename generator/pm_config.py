"""Options of `ecm-generator pm`: one name across YAML, ECM_* environment and flags.

The API token is no option (options are echoed in errors): ECM_API_TOKEN or ECM_API_TOKEN_FILE,
as the API reads it.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from ecm_common.config import StrictModel
from ecm_common.durations import Seconds
from ecm_common.logs import LogFormat, LogLevel
from ecm_common.slo_pm import VENDOR_PERIOD_S
from generator.config import MAX_TOWERS

MAX_CELLS = 1_000_000
DEFAULT_API_URL = "http://127.0.0.1:9745"


class PmSettings(StrictModel):
    """Every option of the PM generator."""

    api_url: Annotated[str, Field(pattern=r"^https?://[^\s]{1,2000}$")] = DEFAULT_API_URL
    towers: Annotated[int, Field(ge=1, le=MAX_TOWERS)] = 50
    sectors: Annotated[int, Field(ge=1, le=12)] = 3
    # Default: towers x sectors.
    cells: Annotated[int | None, Field(ge=1, le=MAX_CELLS)] = None
    period: Seconds = Field(VENDOR_PERIOD_S, ge=1, le=86400)
    # Events per second at most (spreads a large period's events); None: as fast as the API takes.
    rate: Annotated[float | None, Field(gt=0, le=1_000_000)] = None
    batch_size: Annotated[int, Field(ge=1, le=5000)] = 500
    count: Annotated[int | None, Field(ge=1)] = None
    duration: Seconds | None = Field(None, gt=0)
    scenario: Annotated[str | None, Field(min_length=1, max_length=4096)] = None
    seed: Annotated[int, Field(ge=0, le=2**63 - 1)] = 0
    request_timeout: Seconds = Field(10.0, gt=0, le=600)
    max_retries: Annotated[int, Field(ge=0, le=100)] = 5
    retry_base_delay: Seconds = Field(0.2, gt=0, le=600)
    retry_max_delay: Seconds = Field(5.0, gt=0, le=600)
    # Where batches wait while the API is down (default: $XDG_STATE_HOME/ecm-generator/pm-spool).
    pm_spool_dir: Annotated[str | None, Field(min_length=1, max_length=4096)] = None
    # Events held in memory when the spool cannot be written; past it the oldest are dropped.
    max_backlog: Annotated[int, Field(ge=1, le=10_000_000)] = 200_000
    log_level: LogLevel = "INFO"
    log_format: LogFormat = "text"

    @model_validator(mode="after")
    def _cells_fit_towers(self) -> PmSettings:
        if self.cells is not None and self.cells > self.towers * self.sectors:
            raise ValueError("cells must be at most towers x sectors")
        if self.retry_base_delay > self.retry_max_delay:
            raise ValueError("retry_base_delay must be at most retry_max_delay")
        return self

    @property
    def n_cells(self) -> int:
        """The number of cells simulated."""
        return self.cells if self.cells is not None else self.towers * self.sectors
