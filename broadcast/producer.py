"""Campaigns: create one with its messages in one transaction (COPY), or cancel one.

A campaign is stored whole or not at all: the campaign row, every message and the counters
commit together, so a failed run leaves nothing half-made behind and says so.
"""

from __future__ import annotations

import logging
import random
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import psycopg

from broadcast import queries, sms
from broadcast.config import MAX_COUNT, ProduceSettings
from broadcast.queue import add_counts, ts
from ecm_common.errors import ConfigError, EcmError

log = logging.getLogger(__name__)

PRODUCER = ""  # sender_id of the rows the producer and `cancel` count
COPY_CHUNK = 10_000
MAX_RECIPIENTS_BYTES = 32 * MAX_COUNT


class CampaignExists(ConfigError):
    """A campaign with this name already exists."""


class NoSuchCampaign(ConfigError):
    """No campaign has this name."""


class ProduceFailed(EcmError):
    """The campaign could not be stored; nothing of it was kept."""

    exit_code = 4


@dataclass(frozen=True)
class Campaign:
    """What was created."""

    campaign_id: int
    name: str
    total: int
    encoding: str
    segments: int


def read_recipients(path: str) -> list[str]:
    """E.164 numbers, one a line (blank and # lines skipped); ConfigError names the line."""
    p = Path(path)
    try:
        if p.stat().st_size > MAX_RECIPIENTS_BYTES:
            raise ConfigError(f"{p}: recipients file is larger than {MAX_RECIPIENTS_BYTES} bytes")
        with p.open(encoding="utf-8") as f:
            out = []
            for lineno, line in enumerate(f, 1):
                number = line.strip()
                if not number or number.startswith("#"):
                    continue
                try:
                    out.append(sms.check_number(number))
                except ValueError as exc:
                    raise ConfigError(f"{p}, line {lineno}: {exc}") from None
                if len(out) > MAX_COUNT:
                    raise ConfigError(f"{p}: more than {MAX_COUNT} recipients")
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read recipients: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: recipients file is not UTF-8 text") from None
    if not out:
        raise ConfigError(f"{p}: no recipients in the file")
    return out


class Progress:
    """A one-line progress display on a terminal, redrawn at most every percent."""

    def __init__(self, total: int, out: TextIO | None, label: str) -> None:
        self.total, self.out, self.label = total, out, label
        self._shown = -1

    def update(self, done: int) -> None:
        """Redraw when the percentage changed."""
        if self.out is None:
            return
        pct = 100 * done // max(self.total, 1)
        if pct != self._shown:
            self._shown = pct
            filled = pct // 5
            bar = "#" * filled + "." * (20 - filled)
            self.out.write(f"\r{self.label} [{bar}] {pct:3d}% {done}/{self.total}")
            if done >= self.total:
                self.out.write("\n")
            self.out.flush()


def _rows(
    campaign_id: int, numbers: Iterator[str], priority: int, now: float
) -> Iterator[tuple[int, str, int, object]]:
    created = ts(now)
    for number in numbers:
        yield (campaign_id, number, priority, created)


def produce(
    conn: psycopg.Connection,
    s: ProduceSettings,
    now: float,
    recipients: list[str] | None = None,
    progress: Progress | None = None,
) -> Campaign:
    """Create a campaign of s.count messages (or one per listed recipient)."""
    encoded = sms.encode(s.text)
    name = s.campaign or f"campaign-{ts(now).strftime('%Y%m%dT%H%M%S.%f')}"
    rng = random.Random(s.seed)
    total = len(recipients) if recipients is not None else s.count

    def numbers() -> Iterator[str]:
        if recipients is not None:
            yield from recipients
            return
        left = total
        while left:
            chunk = min(left, COPY_CHUNK)
            yield from sms.random_numbers(rng, chunk)
            left -= chunk

    try:
        with conn.transaction():
            if conn.execute(
                "SELECT 1 FROM broadcast_campaigns WHERE name = %s", (name,)
            ).fetchone():
                raise CampaignExists(f"campaign {name!r} already exists")
            row = conn.execute(
                queries.INSERT_CAMPAIGN,
                {
                    "name": name,
                    "body": s.text,
                    "encoding": encoded.encoding,
                    "segments": encoded.segments,
                    "priority": s.priority,
                    "total": total,
                    "max_attempts": s.max_attempts,
                    "now": ts(now),
                },
            ).fetchone()
            assert row is not None
            campaign_id = int(row[0])
            done = 0
            with conn.cursor().copy(queries.COPY_MESSAGES) as copy:
                for r in _rows(campaign_id, numbers(), s.priority, now):
                    copy.write_row(r)
                    done += 1
                    if progress is not None and done % COPY_CHUNK == 0:
                        progress.update(done)
    except psycopg.errors.UniqueViolation:
        raise CampaignExists(f"campaign {name!r} already exists") from None
    except psycopg.OperationalError as exc:
        raise ProduceFailed(f"campaign {name!r} not stored (nothing was kept): {exc}") from None
    if progress is not None:
        progress.update(total)
    log.info("campaign %s: %d messages queued", name, total)
    return Campaign(campaign_id, name, total, encoded.encoding, encoded.segments)


def cancel(conn: psycopg.Connection, name: str, now: float) -> int:
    """Cancel a campaign: its pending messages will not be sent; how many were cancelled."""
    with conn.transaction():
        row = conn.execute(queries.CAMPAIGN_BY_NAME, {"name": name}).fetchone()
        if row is None:
            raise NoSuchCampaign(f"no campaign named {name!r}")
        campaign_id = int(row[0])
        conn.execute(queries.CANCEL_CAMPAIGN, {"campaign": campaign_id, "now": ts(now)})
        n = conn.execute(queries.CANCEL_PENDING, {"campaign": campaign_id, "now": ts(now)}).rowcount
        add_counts(conn, PRODUCER, now, [(campaign_id, "cancelled", n, 0.0)])
    log.info("campaign %s cancelled: %d pending messages will not be sent", name, n)
    return n


def progress_for(total: int, flag: bool | None, err: TextIO = sys.stderr) -> Progress | None:
    """A progress bar on stderr for large campaigns on a terminal, or when asked for."""
    show = flag if flag is not None else (total >= 50_000 and err.isatty())
    return Progress(total, err, "queued") if show else None
