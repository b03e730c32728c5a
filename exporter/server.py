"""The exporter's HTTP side: /metrics serves the exposition prepared at refresh, plain or gzip."""

from __future__ import annotations

from collections.abc import Callable

from ecm_common.metrics_http import App, MetricsServer, metrics_app

__all__ = ["MetricsServer", "make_app"]

TITLE = "ECM emergency-call exporter"


def make_app(
    exposition: Callable[[], bytes],
    status: Callable[[], str],
    exposition_gzip: Callable[[], bytes] | None = None,
) -> App:
    """The app over the cached exposition (plain, gzip) and a status line; never the database."""
    return metrics_app(TITLE, exposition, status, exposition_gzip)
