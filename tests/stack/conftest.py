"""Fixtures of the observability-stack tests: rendered configs and real Alertmanager processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from stack import promconfig
from stack.runner import Child, Supervisor
from tests.fixtures.postgres import PgServer
from tests.fixtures.tools import require_binary
from tests.stack.livestack import LiveStack, live_stack
from tests.stack.services import start_service

ROOT = Path(__file__).resolve().parents[2]


def env_example() -> dict[str, str]:
    """The variables .env.example sets, as a user's .env would."""
    out = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key] = value
    return out


@pytest.fixture
def example_urls() -> dict[str, str]:
    """The webhook URLs of .env.example."""
    env = env_example()
    return {name: env[name] for name in promconfig.WEBHOOK_ENV}


@pytest.fixture
def rendered_am(tmp_path: Path, example_urls: dict[str, str]) -> Path:
    """alertmanager.yml rendered with the example URLs."""
    return promconfig.render_alertmanager_config(tmp_path / "am", example_urls)


@pytest.fixture
def alertmanager(tmp_path: Path, example_urls: dict[str, str]) -> Iterator[Child]:
    """A real Alertmanager on a free port, with the committed config."""
    binary = require_binary("prometheus-alertmanager", "prometheus-alertmanager")
    config = promconfig.render_alertmanager_config(tmp_path / "am", example_urls)

    def argv(port: int) -> list[str]:
        return promconfig.alertmanager_command(
            config, tmp_path / "am-data", f"127.0.0.1:{port}", binary=binary
        )

    with Supervisor() as sup:
        yield start_service(sup, "alertmanager", argv, tmp_path, "/-/ready")


@pytest.fixture(scope="session")
def live(pg_server: PgServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    """The running stack, shared by the end-to-end and dashboard-query tests."""
    prometheus = require_binary("prometheus", "prometheus")
    alertmanager = require_binary("prometheus-alertmanager", "prometheus-alertmanager")
    with live_stack(pg_server, tmp_path_factory.mktemp("stack"), prometheus, alertmanager) as s:
        yield s
