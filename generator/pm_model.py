"""Simulated RAN PM counters: one event per cell per granularity period, in the ECM API's shape.

Cells belong to the calls generator's towers (TOWER_n-Ck, `sectors` cells per tower), so one
scenario file drives both: a phase whose failure_prob is at least OUTAGE_FAILURE_PROB silences
its towers' cells (the tower is down), a phase with rate_multiplier > 1 loads them (congestion:
PRB utilisation and drop rate rise).

Values follow docs/DOMAIN.md: a daily shape per cell (residential, business,
transport, entertainment, mixed) with busy hours up to about 85% PRB utilisation, up to 300
connected users at full load, drop rate about 0.2% that climbs past 70% utilisation. The
event_id is a UUIDv5 of cell, period end and period length, so a resend is a duplicate.
"""

from __future__ import annotations

import uuid
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from ecm_common.domain import tower_name
from generator.scenario import Scenario

SCHEMA_VERSION = 1
SOURCE = "ecm-pmgen"
ENTITY_TYPE = "cell"
NAMESPACE = uuid.UUID("6f1c2d4e-8a3b-5c7d-9e0f-1a2b3c4d5e6f")
# A phase failing at least this share of calls is a tower outage: its cells go silent.
OUTAGE_FAILURE_PROB = 0.5
MAX_USERS = 300.0  # connected users of a 5/10 MHz cell at full load (docs/DOMAIN.md)

# Load (0..1 of the cell's busy hour) at each hour of the day, UTC.
# fmt: off
SHAPES: dict[str, tuple[float, ...]] = {
    "residential": (0.25, 0.18, 0.14, 0.12, 0.12, 0.15, 0.25, 0.40, 0.50, 0.50, 0.52, 0.55,
                    0.58, 0.58, 0.58, 0.62, 0.70, 0.80, 0.90, 0.97, 1.00, 0.95, 0.75, 0.45),
    "business":    (0.10, 0.08, 0.07, 0.07, 0.08, 0.12, 0.25, 0.55, 0.85, 0.97, 1.00, 0.98,
                    0.90, 0.95, 0.98, 0.95, 0.85, 0.65, 0.40, 0.28, 0.22, 0.18, 0.15, 0.12),
    "transport":   (0.10, 0.06, 0.05, 0.05, 0.10, 0.35, 0.80, 1.00, 0.95, 0.60, 0.45, 0.45,
                    0.50, 0.48, 0.45, 0.55, 0.80, 0.98, 0.90, 0.60, 0.40, 0.30, 0.22, 0.15),
    "entertainment": (0.45, 0.30, 0.18, 0.10, 0.08, 0.08, 0.10, 0.15, 0.20, 0.25, 0.30, 0.38,
                      0.45, 0.48, 0.50, 0.55, 0.62, 0.72, 0.85, 0.95, 1.00, 0.98, 0.85, 0.65),
    "mixed":       (0.22, 0.16, 0.13, 0.12, 0.12, 0.18, 0.35, 0.60, 0.72, 0.75, 0.78, 0.80,
                    0.80, 0.80, 0.80, 0.80, 0.82, 0.88, 0.90, 0.90, 0.90, 0.85, 0.65, 0.40),
}
# fmt: on
PROFILES = tuple(SHAPES)
_SHAPE = np.array([SHAPES[p] for p in PROFILES])


@dataclass(frozen=True)
class Cells:
    """The simulated cells: ids, tower index (0-based), daily profile and busy-hour level."""

    ids: tuple[str, ...]
    tower: npt.NDArray[np.int64]
    profile: npt.NDArray[np.int64]
    peak: npt.NDArray[np.float64]  # busy-hour DL PRB utilisation, percent
    ul_share: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.ids)


def make_cells(n_cells: int, sectors: int) -> Cells:
    """n_cells cells, `sectors` per tower in order: TOWER_1-C1, TOWER_1-C2, ..."""
    idx = np.arange(n_cells, dtype=np.int64)
    tower = idx // sectors
    ids = tuple(
        f"{tower_name(int(t) + 1)}-C{int(i % sectors) + 1}" for i, t in zip(idx, tower, strict=True)
    )
    # A hash of the id, not the random stream: a cell keeps its character across runs and seeds.
    h = np.array([zlib.crc32(c.encode()) for c in ids], dtype=np.int64)
    profile = h % len(PROFILES)
    u = ((h >> 8) % 1000) / 1000.0
    peak = 55.0 + 30.0 * u  # 55..85% in the busy hour
    ul_share = 0.45 + 0.15 * (((h >> 18) % 1000) / 1000.0)
    return Cells(ids, tower, profile, peak, ul_share)


def event_id(cell: str, period_end: float, period_s: float) -> uuid.UUID:
    """UUIDv5 of cell, period end and period length: the same period of a cell, the same id."""
    return uuid.uuid5(NAMESPACE, f"{cell}|{int(period_end)}|{int(period_s)}")


class PmModel:
    """Counters of every cell for any period, deterministic in (seed, period end)."""

    def __init__(
        self,
        cells: Cells,
        period_s: float,
        *,
        seed: int = 0,
        scenario: Scenario | None = None,
        origin: float = 0.0,
    ) -> None:
        self.cells = cells
        self.period_s = period_s
        self.seed = seed
        self.scenario = scenario
        self.origin = origin  # wall time the scenario's time 0 stands for

    def effects(self, at: float) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.float64]]:
        """Per cell at wall time `at`: silent (tower down) and load multiplier."""
        n = len(self.cells)
        silent = np.zeros(n, dtype=np.bool_)
        mult = np.ones(n)
        if self.scenario is None:
            return silent, mult
        t = at - self.origin
        n_towers = int(self.cells.tower.max()) + 1 if n else 0
        for phase, towers in zip(self.scenario.phases, self.scenario.targets, strict=True):
            if not phase.start <= t < phase.end:
                continue
            hit = np.zeros(max(n_towers, 1), dtype=np.bool_)
            hit[[i for i in towers if i < n_towers]] = True
            on = hit[self.cells.tower]
            e = phase.effects
            if e.failure_prob is not None and e.failure_prob >= OUTAGE_FAILURE_PROB:
                silent |= on
            mult[on] *= e.rate_multiplier
        return silent, mult

    def period(self, period_end: float) -> list[dict[str, Any]]:
        """The events of the period ending at period_end (silent cells send none)."""
        c = self.cells
        n = len(c)
        rng = np.random.default_rng([self.seed, int(period_end)])
        mid = period_end - self.period_s / 2
        hour = (mid % 86400.0) / 3600.0
        h0 = int(hour) % 24
        frac = hour - int(hour)
        shape = _SHAPE[c.profile, h0] * (1 - frac) + _SHAPE[c.profile, (h0 + 1) % 24] * frac
        silent, mult = self.effects(mid)
        dl = np.clip(c.peak * shape * mult + rng.normal(0, 3, n), 0.5, 99.5)
        ul = np.clip(dl * c.ul_share + rng.normal(0, 2, n), 0.2, 99.5)
        users = np.maximum(0.0, MAX_USERS * dl / 100 * rng.uniform(0.8, 1.2, n))
        over = np.maximum(0.0, dl - 70.0) / 30.0
        drop = np.clip(0.2 + 2.5 * over**2 + rng.gamma(2.0, 0.05, n), 0.0, 100.0)
        when = datetime.fromtimestamp(period_end, UTC).isoformat().replace("+00:00", "Z")
        out = []
        for i in np.flatnonzero(~silent):
            cell = c.ids[i]
            out.append(
                {
                    "event_id": str(event_id(cell, period_end, self.period_s)),
                    "schema_version": SCHEMA_VERSION,
                    "source": SOURCE,
                    "event_time": when,
                    "entity_type": ENTITY_TYPE,
                    "entity_id": cell,
                    "metrics": {
                        "dl_prb_util_pct": round(float(dl[i]), 2),
                        "ul_prb_util_pct": round(float(ul[i]), 2),
                        "rrc_conn_avg": round(float(users[i]), 1),
                        "drop_rate_pct": round(float(drop[i]), 3),
                    },
                }
            )
        return out
