"""The pager's background loop, every `tick`: escalate what is due, send the outbox, check the
dead man's switch, and take the database snapshot /metrics shows.

A failure (database down, a bug in one step) becomes a log line and `ecm_pager_database_up 0`,
never the end of the loop: the next tick tries again.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from datetime import UTC, datetime

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from ecm_common.clock import Clock
from ecm_common.db import describe
from pager import queries as q
from pager.engine import Engine
from pager.metrics import PagerMetrics, Snapshot
from pager.outbox import OutboxSender

log = logging.getLogger(__name__)

SEND_PER_TICK = 200


class Worker:
    """Runs tick() in a thread until stop()."""

    def __init__(
        self,
        engine: Engine,
        sender: OutboxSender,
        metrics: PagerMetrics,
        clock: Clock,
        tick_s: float,
    ) -> None:
        self.engine = engine
        self.sender = sender
        self.metrics = metrics
        self.clock = clock
        self.tick_s = tick_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pager-worker", daemon=True)

    def start(self) -> None:
        """Start the loop (the first tick runs at once)."""
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Ask the loop to end and wait for it."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def _run(self) -> None:
        log.info("pager worker started: tick every %g s", self.tick_s)
        while not self._stop.is_set():
            self.tick()
            self.clock.wait(self.tick_s, self._stop)
        log.info("pager worker stopped")

    def tick(self) -> bool:
        """One pass; False when the database could not be reached."""
        try:
            self.engine.escalate_due()
            self.engine.check_silence()
            self.sender.send_due(SEND_PER_TICK)
            self.metrics.publish(snapshot(self.engine.pool, self.engine, self.clock))
            return True
        except (psycopg.Error, PoolTimeout) as exc:
            log.warning("pager tick failed, will retry: %s", describe(exc))
        except Exception:
            log.exception("pager tick failed, will retry")
        # The last good figures stay, marked stale: database down, last tick time unchanged.
        self.metrics.publish(replace(self.metrics.snapshot_collector.current(), database_up=False))
        return False


def snapshot(pool: ConnectionPool, engine: Engine, clock: Clock) -> Snapshot:
    """Open incidents, outbox depth and the Watchdog's age, read now."""
    now = datetime.fromtimestamp(clock.time(), UTC)
    with pool.connection() as conn:
        opened = {(r[0], r[1]): int(r[2]) for r in conn.execute(q.OPEN_BY_STATE).fetchall()}
        depth_row = conn.execute(q.OUTBOX_DEPTH).fetchone()
        beat = conn.execute(q.LAST_HEARTBEAT, (engine.settings.watchdog_alertname,)).fetchone()
    depth, oldest = (depth_row[0], depth_row[1]) if depth_row else (0, None)
    return Snapshot(
        open_incidents=opened,
        outbox_depth=int(depth),
        outbox_oldest_age_s=max((now - oldest).total_seconds(), 0.0) if oldest else 0.0,
        watchdog_age_s=max((now - beat[0]).total_seconds(), 0.0) if beat else None,
        database_up=True,
        taken_at=clock.time(),
    )
