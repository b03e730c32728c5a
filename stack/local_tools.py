"""Prometheus and Alertmanager for the local run, from the machine's binaries and our configs."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from stack import promconfig
from stack.local_api import USER_RULES
from stack.local_pager import PAGES_RECEIVER, LocalPager
from stack.runner import Child, check_port_free
from stack.sink import RECEIVERS, WebhookSink

if TYPE_CHECKING:
    from stack.config import StackConfig
    from stack.runner import Supervisor

log = logging.getLogger(__name__)

INSTALL_HINT = "Debian/Ubuntu: apt-get install prometheus prometheus-alertmanager"


def start(
    cfg: StackConfig, sup: Supervisor, state: Path, pager: LocalPager | None = None
) -> dict[str, str]:
    """Start both tools when installed (say how to get them when not); returns their URLs.

    With a local pager, the critical and heartbeat routes post to it (unless the environment
    names other URLs) with its token, and its pages land in the sink's /pages.
    """
    prom_bin = shutil.which("prometheus")
    am_bin = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if not prom_bin or not am_bin:
        missing = [n for n, b in (("prometheus", prom_bin), ("alertmanager", am_bin)) if not b]
        log.warning(
            "%s not installed: running without them (%s)", " and ".join(missing), INSTALL_HINT
        )
        return {}
    check_port_free(cfg.prometheus_port, "Prometheus")
    check_port_free(cfg.alertmanager_port, "Alertmanager")

    urls = promconfig.webhook_urls_from_env()
    credentials: dict[str, str] = {}
    if pager is not None:
        for name, receiver in (
            ("ECM_PAGER_WEBHOOK_URL", "pager"),
            ("ECM_HEARTBEAT_WEBHOOK_URL", "heartbeat"),
        ):
            if name not in urls:
                urls[name] = pager.webhook
                credentials[receiver] = str(pager.alertmanager_token_file)
    out: dict[str, str] = {}
    if len(urls) < len(promconfig.WEBHOOK_ENV) or pager is not None:
        check_port_free(cfg.sink_port, "the webhook sink")
        notes = state / "notifications.jsonl"
        # Serves until this process ends (a daemon thread).
        sink = WebhookSink(notes, port=cfg.sink_port).start()
        for name, receiver in zip(promconfig.WEBHOOK_ENV, RECEIVERS, strict=True):
            urls.setdefault(name, sink.url(receiver))
        out["notifications"] = str(notes)
        if pager is not None:
            out["pages (sink)"] = sink.url(PAGES_RECEIVER)

    am_listen = f"127.0.0.1:{cfg.alertmanager_port}"
    am_cfg = promconfig.render_alertmanager_config(
        state / "alertmanager", urls, credentials_files=credentials
    )
    am = sup.start(
        Child(
            "alertmanager",
            promconfig.alertmanager_command(
                am_cfg, state / "alertmanager" / "data", am_listen, binary=am_bin
            ),
            state / "alertmanager.log",
            url=f"http://{am_listen}",
            ready_path="/-/ready",
        )
    )

    prom_listen = f"127.0.0.1:{cfg.prometheus_port}"
    targets: dict[str, str | None] = {
        "ecm-exporter": f"127.0.0.1:{cfg.exporter_port}",
        "ecm-generator": f"127.0.0.1:{cfg.generator_metrics_port}",
        "prometheus": prom_listen,
        "alertmanager": am_listen,
        "ecm-pager": pager.url.removeprefix("http://") if pager else None,
        "ecm-api": f"127.0.0.1:{cfg.api_port}",
        "ecm-broadcast": f"127.0.0.1:{cfg.broadcast_port}" if cfg.broadcast_port else None,
    }
    # The committed rules and the ECM API's user rules file (written at run time).
    rule_files = [*sorted(promconfig.RULES_DIR.glob("*.yml")), state / USER_RULES / "*.yml"]
    prom_cfg = promconfig.render_prometheus_config(
        state / "prometheus", targets, am_listen, rule_files=rule_files
    )
    prom = sup.start(
        Child(
            "prometheus",
            promconfig.prometheus_command(
                prom_cfg, state / "prometheus" / "data", prom_listen, binary=prom_bin
            ),
            state / "prometheus.log",
            url=f"http://{prom_listen}",
            ready_path="/-/ready",
        )
    )

    am.wait_ready()
    prom.wait_ready()
    out = {"prometheus": f"http://{prom_listen}", "alertmanager": f"http://{am_listen}", **out}
    return out
