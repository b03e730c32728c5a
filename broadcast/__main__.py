"""ecm-broadcast: SMS emergency alerts through a PostgreSQL queue (produce, sender, monitor)."""

from __future__ import annotations

import logging
import os
import random
import signal
import socket
import sys
import threading
from types import FrameType

import psycopg

from broadcast.cli import PROG, parse
from broadcast.config import (
    CancelSettings,
    Common,
    MonitorSettings,
    ProduceSettings,
    SenderSettings,
)
from broadcast.metrics import CampaignCollector, SenderMetrics
from broadcast.progress import Snapshot, snapshot
from ecm_common.cli import run
from ecm_common.clock import SystemClock
from ecm_common.config import check_listen
from ecm_common.db import connect, database_url, describe
from ecm_common.errors import DatabaseUnavailable, EcmError
from ecm_common.logs import setup_logging

log = logging.getLogger(__name__)


class SchemaMissing(EcmError):
    """The broadcast tables are not there (migration 0005 not applied)."""

    exit_code = 3


class SenderFailed(EcmError):
    """The database refused a sender's statement for a reason other than an outage."""


def _open(s: Common, app: str) -> psycopg.Connection:
    """An autocommit connection, after checking the broadcast tables exist."""
    conn = connect(database_url(s.database_url), autocommit=True, app=app)
    try:
        row = conn.execute("SELECT to_regclass('broadcast_messages') IS NOT NULL").fetchone()
    except psycopg.Error as exc:
        conn.close()
        raise DatabaseUnavailable(f"cannot read the database: {describe(exc)}") from None
    if not row or not row[0]:
        conn.close()
        raise SchemaMissing(
            "the broadcast tables do not exist: run 'ecm-generator init-db' as the database owner"
        )
    return conn


def _on_stop(stop: threading.Event) -> None:
    def handler(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def _produce(s: ProduceSettings) -> int:
    from broadcast.producer import produce, progress_for, read_recipients

    recipients = read_recipients(s.recipients) if s.recipients else None
    total = len(recipients) if recipients is not None else s.count
    with _open(s, "ecm-broadcast-producer") as conn:
        c = produce(conn, s, SystemClock().time(), recipients, progress_for(total, s.progress))
    print(
        f"{PROG}: campaign {c.name}: {c.total} messages queued "
        f"({c.segments} {c.encoding} segment(s) each)"
    )
    return 0


def _cancel(s: CancelSettings) -> int:
    from broadcast.producer import cancel

    with _open(s, "ecm-broadcast-cancel") as conn:
        n = cancel(conn, s.campaign, SystemClock().time())
    print(f"{PROG}: campaign {s.campaign} cancelled: {n} pending messages will not be sent")
    return 0


def _sender(s: SenderSettings) -> int:
    from broadcast.pool import run_pool
    from broadcast.sender import Sender

    url = database_url(s.database_url)
    _open(s, "ecm-broadcast-sender").close()
    base_id = s.sender_id or f"{socket.gethostname()}-{os.getpid()}"
    if s.senders > 1:
        for i in range(s.senders):
            if s.metrics_port:
                check_listen(s.metrics_listen_address, s.metrics_port + i, "metrics_port")
        return run_pool(s, url, base_id)
    stop = threading.Event()
    _on_stop(stop)
    metrics = SenderMetrics()
    server = None
    if s.metrics_port:
        metrics.registry.register(CampaignCollector(lambda: _read_progress(s)))
        server = metrics.serve(s.metrics_port, s.metrics_listen_address, lambda: "sending")
    rng = random.Random(s.seed)
    sender = Sender(url, s, base_id, clock=SystemClock(), rng=rng, metrics=metrics, stop=stop)
    try:
        counts = sender.run()
    except psycopg.Error as exc:
        # Outages are retried inside the loop; this is anything else (a grant, the schema).
        raise SenderFailed(f"sender {base_id} stopped: {describe(exc)}") from None
    finally:
        if server is not None:
            server.stop()
    print(f"{PROG}: sender {base_id}: {counts.summary()}", flush=True)
    return 0


def _read_progress(s: Common) -> Snapshot:
    with connect(database_url(s.database_url), autocommit=True, app="ecm-broadcast-metrics") as c:
        return snapshot(c)


def _monitor(s: MonitorSettings) -> int:
    from broadcast.monitor import watch

    conn = _open(s, "ecm-broadcast-monitor")
    stop = threading.Event()
    _on_stop(stop)

    def read() -> Snapshot:
        try:
            return snapshot(conn, s.campaign)
        except psycopg.Error as exc:
            raise DatabaseUnavailable(f"cannot read progress: {describe(exc)}") from None

    try:
        watch(
            read,
            sys.stdout,
            clock=SystemClock(),
            interval=s.interval,
            once=s.once,
            as_json=s.json_output,
            stop=stop,
        )
    finally:
        conn.close()
    return 0


def _main(argv: list[str]) -> int:
    command, s = parse(argv)
    setup_logging(s.log_level, s.log_format)
    if command == "produce":
        return _produce(s)
    if command == "cancel":
        return _cancel(s)
    if command == "sender":
        if s.metrics_port and s.senders == 1:
            check_listen(s.metrics_listen_address, s.metrics_port, "metrics_port")
        return _sender(s)
    return _monitor(s)


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point."""
    args = sys.argv[1:] if argv is None else argv
    return run(lambda: _main(args), PROG)


if __name__ == "__main__":
    sys.exit(main())
