"""Wiring: one connection pool, the engine, the outbox sender, the worker and the HTTP app."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from psycopg_pool import ConnectionPool

from ecm_common.clock import Clock, SystemClock
from ecm_common.db import CONNECT_TIMEOUT_S
from ecm_common.service import create_app, database_check
from pager.acklink import AckSigner
from pager.api import routers
from pager.channels import Channels
from pager.config import PagerSettings, Secrets
from pager.engine import Engine
from pager.metrics import PagerMetrics
from pager.outbox import OutboxSender
from pager.worker import Worker

log = logging.getLogger(__name__)

POOL_SIZE = 10
POOL_TIMEOUT_S = 10.0


@dataclass
class Pager:
    """A built pager: serve `app`; the worker runs while the app does."""

    app: FastAPI
    engine: Engine
    worker: Worker
    pool: ConnectionPool
    registry: CollectorRegistry


def build(
    settings: PagerSettings,
    secrets: Secrets,
    url: str,
    *,
    clock: Clock | None = None,
    registry: CollectorRegistry | None = None,
    run_worker: bool = True,
) -> Pager:
    """Everything the pager needs; nothing connects until the app starts."""
    clock = clock or SystemClock()
    registry = registry or CollectorRegistry()
    metrics = PagerMetrics(registry)
    pool = ConnectionPool(
        url,
        # Opened at start: a burst of webhooks never waits for new connections.
        min_size=POOL_SIZE,
        max_size=POOL_SIZE,
        timeout=POOL_TIMEOUT_S,
        kwargs={
            "autocommit": True,
            "application_name": "ecm-pager",
            "connect_timeout": CONNECT_TIMEOUT_S,
        },
        open=False,
    )
    signer = AckSigner.from_secret(secrets.ack_secret)
    engine = Engine(pool, settings, signer, clock, metrics)
    sender = OutboxSender(pool, settings, Channels(settings, secrets), clock, metrics)
    worker = Worker(engine, sender, metrics, clock, settings.tick)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool.open(wait=False)
        if run_worker:
            worker.start()
        try:
            yield
        finally:
            worker.stop()
            pool.close()

    app = create_app(
        "ecm-pager",
        registry=registry,
        settings=settings.http,
        ready_check=database_check(url, app="ecm-pager-readyz"),
        token=secrets.write_token,
        routers=routers(engine, signer, secrets.alertmanager_token),
        lifespan=lifespan,
    )
    return Pager(app, engine, worker, pool, registry)
