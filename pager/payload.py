"""Alertmanager's webhook payload (version 4), as the pager accepts it: the fields it reads are
required and bounded, fields it does not read are ignored (a newer Alertmanager may add some)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_ALERTS = 10_000
MAX_LABELS = 64
MAX_LABEL_CHARS = 1024
# Alertmanager's fingerprints are 16 hex digits; some forks use longer hashes.
FINGERPRINT = r"^[0-9a-fA-F]{1,64}$"


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, allow_inf_nan=False)


def _bounded(value: dict[str, str]) -> dict[str, str]:
    if len(value) > MAX_LABELS:
        raise ValueError(f"at most {MAX_LABELS} entries")
    for key, text in value.items():
        if len(key) > MAX_LABEL_CHARS or len(text) > MAX_LABEL_CHARS:
            raise ValueError(f"names and values of at most {MAX_LABEL_CHARS} characters")
    return value


class Alert(_Lenient):
    """One alert instance of the group."""

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime
    endsAt: datetime | None = None
    fingerprint: Annotated[str, Field(pattern=FINGERPRINT)]

    _labels = field_validator("labels", "annotations")(_bounded)

    @property
    def alertname(self) -> str:
        """The alertname label (empty when missing)."""
        return self.labels.get("alertname", "")

    @property
    def summary(self) -> str:
        """What a person reads first: the summary annotation, else the alert's name."""
        return (self.annotations.get("summary") or self.alertname or "alert")[:500]


class Webhook(_Lenient):
    """The body of one POST from Alertmanager."""

    version: Literal["4"]
    groupKey: Annotated[str, Field(max_length=8192)]
    status: Literal["firing", "resolved"]
    receiver: Annotated[str, Field(max_length=1024)] = ""
    alerts: Annotated[list[Alert], Field(max_length=MAX_ALERTS)]
