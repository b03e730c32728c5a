"""The ECM API app: the shared factory (ecm_common.service) plus the PM, calls and analytics
routes and their jobs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from api.analytics import analytics_router
from api.call_rollup import CallRollup
from api.calls import calls_router
from api.config import ApiSettings
from api.metrics import CallRollupMetrics, IngestMetrics, KpiCollector
from api.pm_events import Bounds
from api.pm_ingest import Ingest
from api.pm_jobs import CALL_ROLLUP_JOB, start_jobs, stop_jobs
from api.pm_rollup import Rollup, RollupSettings
from api.pm_routes import pm_router
from api.pm_store import Store
from api.reader import Reader
from api.rules_api import Rules, rules_router
from api.rules_render import RulesFile
from ecm_common.clock import Clock, SystemClock
from ecm_common.service import create_app, database_check
from ecm_common.service_auth import any_bearer_token
from ecm_common.slo_pm import PM_SLO, PmSlo

NAME = "ecm-api"


@dataclass
class Api:
    """The app and the parts tests drive directly (the rollup, without the scheduler)."""

    app: FastAPI
    rollup: Rollup
    metrics: IngestMetrics
    call_rollup: CallRollup


def build(
    settings: ApiSettings,
    url: str,
    registry: CollectorRegistry,
    *,
    token: SecretStr | None = None,
    read_token: SecretStr | None = None,
    clock: Clock | None = None,
    jobs: bool = True,
    slo: PmSlo = PM_SLO,
) -> Api:
    """The API on this registry; jobs=False leaves the rollup to the caller (tests)."""
    clock = clock or SystemClock()
    metrics = IngestMetrics(registry)
    kpis = KpiCollector(slo.silent_periods * settings.pm_period)
    registry.register(kpis)
    store = Store(url, pool_size=settings.pool_size, timeout_s=settings.db_timeout)
    reader = Reader(url, pool_size=settings.pool_size, timeout_s=settings.db_timeout)
    bounds = Bounds(settings.max_batch_events, settings.max_event_age, settings.max_future_skew)
    rollup = Rollup(
        url,
        RollupSettings(
            kpi_window_s=settings.kpi_window,
            pm_period_s=settings.pm_period,
            top_n=settings.top_n,
            raw_retention_s=settings.raw_retention,
            rollup_retention_s=settings.rollup_retention,
            retention_batch_rows=settings.retention_batch_rows,
            statement_timeout_s=max(settings.db_timeout, 60.0),
            max_fold_rows=settings.max_fold_rows,
        ),
        slo,
        metrics,
        kpis,
        clock,
    )

    call_rollup = CallRollup(
        url,
        statement_timeout_s=max(settings.db_timeout, 60.0),
        max_fold_rows=settings.max_fold_rows,
        metrics=CallRollupMetrics(registry),
        clock=clock,
    )

    rules_file = (
        RulesFile(
            settings.rules_dir, prometheus_url=settings.prometheus_url, promtool=settings.promtool
        )
        if settings.rules_dir is not None
        else None
    )
    rules = Rules(
        url,
        timeout_s=settings.db_timeout,
        file=rules_file,
        runbook_base_url=settings.runbook_base_url,
    )

    # The read scope: the read token or the write token; no read token leaves reads open.
    guard = [any_bearer_token(read_token, token)] if read_token else []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await store.open()
        await reader.open()
        await anyio.to_thread.run_sync(rules.sync)
        sched = (
            start_jobs(
                rollup,
                settings.rollup_interval,
                settings.retention_interval,
                extra=[(CALL_ROLLUP_JOB, call_rollup.run, settings.rollup_interval)],
            )
            if jobs
            else None
        )
        try:
            yield
        finally:
            if sched is not None:
                stop_jobs(sched, rollup)
            call_rollup.close()
            await store.close()
            await reader.close()

    app = create_app(
        NAME,
        registry=registry,
        settings=settings.http,
        ready_check=database_check(url, app="ecm-api-readyz"),
        token=token,
        routers=[
            pm_router(Ingest(store, bounds, metrics, clock)),
            calls_router(reader, clock, guard),
            analytics_router(reader, call_rollup, clock, guard),
            rules_router(rules, reader, guard),
        ],
        lifespan=lifespan,
    )
    return Api(app, rollup, metrics, call_rollup)
