"""The delays a page goes through, read from the committed configuration (never restated)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ecm_common.durations import parse_duration
from exporter.config import ExporterSettings

ROOT = Path(__file__).resolve().parents[3]
PROMETHEUS_YML = ROOT / "prometheus" / "prometheus.yml"
ALERTMANAGER_YML = ROOT / "alertmanager" / "alertmanager.yml"
# The goals of issue 10: a page within 2 minutes of the start, resolved within 5 of the end.
DETECT_WITHIN_S = 120
RESOLVE_WITHIN_S = 300
# The generator writes a batch at least every --flush-interval (1 s by default).
WRITE_DELAY_S = 1.0


def _seconds(text: str) -> float:
    return parse_duration(text)


@dataclass(frozen=True)
class Timing:
    """Exporter refresh, scrape and evaluation intervals; Alertmanager's delay for a group."""

    refresh_s: float
    scrape_s: float
    eval_s: float
    notify_s: float  # the longest of group_wait and group_interval on the call routes

    @property
    def fire_deadline_s(self) -> float:
        """Prometheus must fire this soon after the start for the page to arrive in time."""
        return DETECT_WITHIN_S - self.notify_s

    @property
    def resolve_deadline_s(self) -> float:
        """Prometheus must resolve this soon after the end for the receiver to hear in time."""
        return RESOLVE_WITHIN_S - self.notify_s


def _call_routes(route: dict[str, Any], inherited: dict[str, str]) -> list[dict[str, str]]:
    """Timers of the root and of every route that is not the Watchdog's heartbeat route."""
    keys = ("group_wait", "group_interval")
    timers = {**inherited, **{k: route[k] for k in keys if k in route}}
    out = [timers]
    for child in route.get("routes", []):
        if any("EcmWatchdog" in m for m in child.get("matchers", [])):
            continue
        out += _call_routes(child, timers)
    return out


def load() -> Timing:
    """The timing the committed prometheus.yml, alertmanager.yml and exporter defaults give."""
    prom = yaml.safe_load(PROMETHEUS_YML.read_text())["global"]
    am = yaml.safe_load(ALERTMANAGER_YML.read_text())["route"]
    defaults = {"group_wait": "30s", "group_interval": "5m"}  # Alertmanager's own defaults
    notify = max(_seconds(v) for timers in _call_routes(am, defaults) for v in timers.values())
    return Timing(
        refresh_s=float(ExporterSettings.model_validate({}).interval),
        scrape_s=_seconds(prom.get("scrape_interval", "1m")),
        eval_s=_seconds(prom.get("evaluation_interval", "1m")),
        notify_s=notify,
    )
