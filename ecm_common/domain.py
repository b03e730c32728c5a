"""Domain vocabulary shared by the generator and the exporter (sources: docs/DOMAIN.md)."""

from __future__ import annotations

from typing import Final

SUCCESS: Final = "SUCCESS"
FAILED: Final = "FAILED"
STATUSES: Final = (SUCCESS, FAILED)

# Failure causes and the SIP signal each stands for.
FAILURE_REASONS: Final[dict[str, str]] = {
    "IMS_UNREACHABLE": "P-CSCF/E-CSCF not reachable (SIP 503)",
    "CORE_TIMEOUT": "no final answer before the emergency timer (SIP 408 or local timer)",
    "PSAP_BUSY": "answering point busy (SIP 486/600)",
    "PSAP_UNAVAILABLE": "answering point temporarily unavailable (SIP 480)",
    "EMERGENCY_REG_REQUIRED": "emergency registration required (SIP 380 Alternative Service)",
    "RADIO_LINK_FAILURE": "radio link dropped before setup completed",
}
REASONS: Final = tuple(FAILURE_REASONS)


def tower_name(index: int) -> str:
    """The id of the index-th tower, 1-based, as the seed names them (TOWER_5)."""
    return f"TOWER_{index}"
