"""The ECM API and the PM generator in the local run: the API on its own login with a random
bearer token (in a file of the state directory, given to both through the environment), its
period matched to the generator's so that silence is judged in the generator's periods."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ecm_common.db import URL_ENV
from ecm_common.durations import format_duration
from stack.runner import Child

if TYPE_CHECKING:
    from stack.config import StackConfig

TOKEN_ENV = "ECM_API_TOKEN"
# Where the API writes the user rules file; the local Prometheus reads *.yml there too.
USER_RULES = Path("prometheus") / "user-rules"


@dataclass(frozen=True)
class LocalApi:
    """Where the local API answers and the file holding its token."""

    url: str
    token_file: Path


def children(
    cfg: StackConfig, state: Path, db_url: str, python: str
) -> tuple[Child, Child, LocalApi]:
    """The API child (ready on /readyz), the PM generator child, and where the API is."""
    url = f"http://127.0.0.1:{cfg.api_port}"
    token = secrets.token_urlsafe(24)
    token_file = state / "api-token"
    token_file.touch(mode=0o600)
    token_file.write_text(token + "\n", encoding="utf-8")
    period = format_duration(cfg.pm_period)
    common = ["--log-format", cfg.log_format, "--log-level", cfg.log_level]
    rules_dir = state / USER_RULES
    rules_dir.mkdir(parents=True, exist_ok=True)
    rules = ["--rules-dir", str(rules_dir),
             "--prometheus-url", f"http://127.0.0.1:{cfg.prometheus_port}"]  # fmt: skip
    api = Child(
        "api",
        [python, "-m", "api", "--port", str(cfg.api_port), "--listen-address", "127.0.0.1",
         "--pm-period", period, *rules, *common],
        state / "api.log",
        env={URL_ENV: db_url, TOKEN_ENV: "", TOKEN_ENV + "_FILE": str(token_file)},
        url=url,
        ready_path="/readyz",
    )  # fmt: skip
    # The calls generator's scenario, if any: its outages silence cells, its surges load them.
    scenario = ["--scenario", cfg.scenario] if cfg.scenario else []
    pm = Child(
        "pm-generator",
        [python, "-m", "generator", "pm", "--api-url", url, "--towers", str(cfg.towers),
         "--period", period, "--pm-spool-dir", str(state / "pm-spool"), *scenario, *common],
        state / "pm-generator.log",
        env={TOKEN_ENV: "", TOKEN_ENV + "_FILE": str(token_file)},
    )  # fmt: skip
    return api, pm, LocalApi(url, token_file)
