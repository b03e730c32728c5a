"""The one home of the RAN PM thresholds (docs/DOMAIN.md, "Thresholds"): PRB utilisation
over 85% for two periods warns and over 95% is critical; drop rate over 1% warns and over 2%
is critical; a cell with no event for two periods is silent, and a tower's worth of silent cells
at once pages.

The API's KPI gauges, the rule builder (stack/rules_pm.py) and the dashboard builder
(stack/dashboards_pm.py) read PM_SLO; tests/stack check that the committed files agree.
"""

from __future__ import annotations

from dataclasses import dataclass

from ecm_common.errors import ConfigError
from ecm_common.slo import check_pair

# 15 minutes: the granularity period of vendor PM files (PT900S, 3GPP TS 32.435).
VENDOR_PERIOD_S = 900.0


@dataclass(frozen=True)
class PmSlo:
    """PM thresholds as ratios 0..1 (the events carry percentages; 85% is 0.85)."""

    warn_prb_util_ratio: float = 0.85
    alert_prb_util_ratio: float = 0.95
    warn_drop_ratio: float = 0.01
    alert_drop_ratio: float = 0.02
    # A cell is silent after this many granularity periods without an event.
    silent_periods: int = 2
    # Three sectors per site: this many silent cells at once looks like a tower down.
    tower_cells: int = 3

    def __post_init__(self) -> None:
        """Refuse thresholds that could never classify anything sensibly."""
        check_pair("prb_util_ratio", self.warn_prb_util_ratio, self.alert_prb_util_ratio, top=1.0)
        check_pair("drop_ratio", self.warn_drop_ratio, self.alert_drop_ratio, top=1.0)
        if self.silent_periods < 1 or self.tower_cells < 1:
            raise ConfigError("pm slo silent_periods and tower_cells must be >= 1")


PM_SLO = PmSlo()
