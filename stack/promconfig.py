"""Prometheus and Alertmanager configs for the local run and the tests, rendered from the
committed files (prometheus/prometheus.yml, alertmanager/alertmanager.yml) with local addresses.

Only addresses, paths, timers and the webhook URLs change: the jobs, rules, routes and
inhibitions are the committed ones, so docker-compose and the local run behave alike.

Filling the webhook URLs has one implementation, this one: docker-compose runs it too, in its
one-shot `alertmanager-config` service (`python -m stack.promconfig alertmanager --out-dir DIR`).
"""

from __future__ import annotations

import argparse
import copy
import logging
import os
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from ecm_common import cli
from ecm_common.config import read_yaml
from ecm_common.errors import ConfigError
from stack.yamlout import dump_yaml

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS_DIR = ROOT / "prometheus"
ALERTMANAGER_DIR = ROOT / "alertmanager"
PROMETHEUS_YML = PROMETHEUS_DIR / "prometheus.yml"
ALERTMANAGER_YML = ALERTMANAGER_DIR / "alertmanager.yml"
RULES_DIR = PROMETHEUS_DIR / "rules"
TEMPLATES_DIR = ALERTMANAGER_DIR / "templates"

JOBS = (
    "ecm-exporter",
    "ecm-generator",
    "prometheus",
    "alertmanager",
    "ecm-pager",
    "ecm-api",
    "ecm-broadcast",
)
WEBHOOK_ENV = ("ECM_PAGER_WEBHOOK_URL", "ECM_TICKETS_WEBHOOK_URL", "ECM_HEARTBEAT_WEBHOOK_URL")
TIMERS = ("group_wait", "group_interval", "repeat_interval")
# The receivers that post to the pager, and the variable holding the token it expects from
# Alertmanager (sent as `Authorization: Bearer`, read by Alertmanager from a credentials file).
PAGER_RECEIVERS = ("pager", "heartbeat")
PAGER_TOKEN_ENV = "ECM_PAGER_ALERTMANAGER_TOKEN"
PAGER_TOKEN_FILE = "pager-alertmanager-token"
_PLACEHOLDER = re.compile(r"\$\{([A-Z0-9_]+)\}")


def render_prometheus_config(
    out_dir: Path,
    targets: Mapping[str, str | None],
    alertmanager: str | None,
    *,
    rule_files: Sequence[Path] | None = None,
    scrape_interval: str | None = None,
    evaluation_interval: str | None = None,
    source: Path = PROMETHEUS_YML,
) -> Path:
    """Write out_dir/prometheus.yml: the committed config with these host:port targets.

    targets maps every job name (JOBS) to its address, or None to leave that job out;
    alertmanager is the Alertmanager host:port (None: no alerting). Rule files default to
    the committed prometheus/rules/*.yml.
    """
    cfg = read_yaml(source)
    unknown = set(targets) - {j["job_name"] for j in cfg.get("scrape_configs", [])}
    if unknown:
        raise ConfigError(f"{source}: no scrape job named {', '.join(sorted(unknown))}")
    jobs = []
    for job in cfg.get("scrape_configs", []):
        name = job["job_name"]
        if name not in targets:
            raise ConfigError(f"no address given for scrape job {name!r} of {source}")
        address = targets[name]
        if address is None:
            continue
        job = copy.deepcopy(job)
        # Compose finds scaled services by DNS; locally every target has a known port.
        job.pop("dns_sd_configs", None)
        job["static_configs"] = [{"targets": [address]}]
        jobs.append(job)
    cfg["scrape_configs"] = jobs
    if alertmanager is None:
        cfg.pop("alerting", None)
    else:
        cfg["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
    rules = rule_files if rule_files is not None else sorted(RULES_DIR.glob("*.yml"))
    cfg["rule_files"] = [str(Path(p).resolve()) for p in rules]
    glob_ = cfg.setdefault("global", {})
    if scrape_interval:
        glob_["scrape_interval"] = scrape_interval
        # The timeout may not exceed the interval.
        glob_["scrape_timeout"] = scrape_interval
    if evaluation_interval:
        glob_["evaluation_interval"] = evaluation_interval
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / "prometheus.yml"
    out.write_text(_header(source) + dump_yaml(cfg), encoding="utf-8")
    log.debug("rendered %s", out)
    return out


def webhook_urls_from_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The webhook URLs set in the environment (names in WEBHOOK_ENV), unset ones left out."""
    env = os.environ if environ is None else environ
    return {name: env[name] for name in WEBHOOK_ENV if env.get(name)}


def render_alertmanager_config(
    out_dir: Path,
    webhook_urls: Mapping[str, str] | None = None,
    *,
    timers: Mapping[str, str] | None = None,
    templates_dir: Path | None = TEMPLATES_DIR,
    source: Path = ALERTMANAGER_YML,
    credentials_files: Mapping[str, str] | None = None,
) -> Path:
    """Write out_dir/alertmanager.yml: the committed config with its ${...} URLs filled in.

    credentials_files maps receiver names to a file holding the bearer token their webhooks
    send (the pager's; Alertmanager reads the file, so the token is in no config).

    webhook_urls maps placeholder names (ECM_PAGER_WEBHOOK_URL, ...) to URLs; None reads them
    from the environment. templates_dir replaces the committed template folder (None keeps it,
    as docker-compose does). timers (group_wait, group_interval, repeat_interval) replace the
    committed values wherever the root route or a sub-route sets them, for fast tests.
    """
    urls = webhook_urls_from_env() if webhook_urls is None else dict(webhook_urls)
    for name, url in urls.items():
        _check_url(name, url)
    cfg = read_yaml(source)
    missing: list[str] = []
    cfg = _fill(cfg, urls, missing)
    if missing:
        names = ", ".join(sorted(set(missing)))
        raise ConfigError(f"{source}: set {names} to the webhook URL(s) (see .env.example)")
    if templates_dir is not None:
        cfg["templates"] = [str(templates_dir.resolve() / "*.tmpl")]
    for key, value in (timers or {}).items():
        if key not in TIMERS:
            raise ConfigError(f"unknown Alertmanager timer {key!r}: expected one of {TIMERS}")
        _set_timer(cfg["route"], key, value, root=True)
    for receiver in cfg.get("receivers", []):
        path = (credentials_files or {}).get(receiver.get("name"))
        for hook in receiver.get("webhook_configs", []) if path else []:
            hook["http_config"] = {"authorization": {"credentials_file": str(path)}}
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / "alertmanager.yml"
    # Whole or not at all: Alertmanager may be (re)reading the file.
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(_header(source) + dump_yaml(cfg), encoding="utf-8")
    tmp.replace(out)
    log.debug("rendered %s", out)
    return out


def _check_url(name: str, url: str) -> None:
    """A webhook URL must be http(s) with a host; the error names the variable, not the value
    (a URL may carry a credential)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in url):
        raise ConfigError(f"{name} must be an http:// or https:// URL with a host")


def _fill(node: Any, urls: Mapping[str, str], missing: list[str]) -> Any:
    """node with every ${NAME} in its strings replaced from urls; unknown names go to missing."""
    if isinstance(node, dict):
        return {k: _fill(v, urls, missing) for k, v in node.items()}
    if isinstance(node, list):
        return [_fill(v, urls, missing) for v in node]
    if isinstance(node, str):

        def sub(m: re.Match[str]) -> str:
            if m.group(1) not in urls:
                missing.append(m.group(1))
                return m.group(0)
            return urls[m.group(1)]

        return _PLACEHOLDER.sub(sub, node)
    return node


def _set_timer(route: dict[str, Any], key: str, value: str, *, root: bool) -> None:
    if root or key in route:
        route[key] = value
    for child in route.get("routes", []):
        _set_timer(child, key, value, root=False)


def _header(source: Path) -> str:
    return f"# Rendered from {source} by stack/promconfig.py: edit that file, not this one.\n"


def prometheus_command(
    config: Path,
    data_dir: Path,
    listen: str,
    *,
    binary: str = "prometheus",
    retention: str = "2d",
    extra_args: Sequence[str] = (),
) -> list[str]:
    """Command line of a local Prometheus on config, keeping its TSDB in data_dir."""
    return [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={data_dir}",
        f"--storage.tsdb.retention.time={retention}",
        f"--web.listen-address={listen}",
        f"--web.external-url=http://{listen}/",
        "--web.enable-lifecycle",
        "--log.level=warn",
        *extra_args,
    ]


def alertmanager_command(
    config: Path,
    data_dir: Path,
    listen: str,
    *,
    binary: str = "prometheus-alertmanager",
) -> list[str]:
    """Command line of a local, unclustered Alertmanager on config, state in data_dir."""
    return [
        binary,
        f"--config.file={config}",
        f"--storage.path={data_dir}",
        f"--web.listen-address={listen}",
        f"--web.external-url=http://{listen}/",
        # No gossip port: a single local instance must not grab 9094 or look for peers.
        "--cluster.listen-address=",
        "--log.level=warn",
    ]


def _write_pager_token(out_dir: Path, seen_as: str) -> dict[str, str]:
    """The pager's token from the environment into out_dir; receiver -> its path as seen_as."""
    token = os.environ.get(PAGER_TOKEN_ENV, "").strip()
    if not token:
        return {}
    out_dir.mkdir(parents=True, exist_ok=True)
    # Readable by Alertmanager's own user in its container, which shares only this volume.
    fd = os.open(out_dir / PAGER_TOKEN_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return {name: f"{seen_as.rstrip('/')}/{PAGER_TOKEN_FILE}" for name in PAGER_RECEIVERS}


def load_rendered(path: Path) -> dict[str, Any]:
    """A rendered config read back (for tests and checks)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: not a YAML mapping")
    return data


def main(argv: list[str] | None = None) -> int:
    """`python -m stack.promconfig alertmanager`: render alertmanager.yml (docker-compose)."""
    p = argparse.ArgumentParser(
        prog="python -m stack.promconfig",
        description="Fill the ${ECM_*_WEBHOOK_URL} placeholders of alertmanager.yml from the "
        "environment and write the result, as the local run does.",
    )
    sub = p.add_subparsers(dest="what", required=True)
    am = sub.add_parser("alertmanager", help="render alertmanager.yml")
    am.add_argument("--out-dir", required=True, type=Path, help="where alertmanager.yml goes")
    am.add_argument("--source", type=Path, default=ALERTMANAGER_YML, help="the committed file")
    am.add_argument(
        "--templates-dir", type=Path, help="template folder (default: the committed path)"
    )
    am.add_argument(
        "--credentials-dir",
        help=f"where Alertmanager finds {PAGER_TOKEN_FILE}, written to --out-dir when "
        f"{PAGER_TOKEN_ENV} is set (default: --out-dir)",
    )
    ns = p.parse_args(argv)
    credentials = _write_pager_token(ns.out_dir, ns.credentials_dir or str(ns.out_dir))
    out = render_alertmanager_config(
        ns.out_dir, templates_dir=ns.templates_dir, source=ns.source, credentials_files=credentials
    )
    print(f"rendered {out} from {ns.source}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main, "stack.promconfig"))
