"""The user rules file: the enabled rules rendered as one Prometheus rule group, checked with
promtool, written atomically (a temporary file renamed over the old one) into the rules
directory, then Prometheus asked to reload; a rule promtool or Prometheus refuses leaves the
previous file in place (RuleRejected, answered 422).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import requests
import yaml

from api.rules_model import RuleSpec
from ecm_common.errors import EcmError

log = logging.getLogger(__name__)

FILE_NAME = "ecm_user_rules.yml"
GROUP = "ecm_user_rules"
PROMTOOL_TIMEOUT_S = 20.0
RELOAD_TIMEOUT_S = 10.0
MAX_REASON_CHARS = 600


class RuleRejected(EcmError):
    """promtool or Prometheus refused the rendered rules; the message says why."""


def render(rules: Sequence[tuple[int, RuleSpec]], runbook_base_url: str) -> str:
    """The rule file text of these (rule_id, rule) pairs, enabled ones only, by id."""
    alerts: list[dict[str, Any]] = []
    for rule_id, spec in sorted(rules, key=lambda r: r[0]):
        if not spec.enabled:
            continue
        labels = {"severity": spec.severity, "source": "ecm-api", "rule_id": str(rule_id)}
        if spec.scope != "all":
            assert spec.target is not None
            labels[spec.scope] = spec.target
        alerts.append(
            {
                "alert": spec.alert,
                "expr": spec.expr(),
                "for": spec.for_,
                "labels": labels,
                "annotations": {
                    "summary": spec.summary,
                    "description": (
                        f"User rule {spec.name} (id {rule_id}): {spec.what} over {spec.window}"
                        f" {spec.comparison} {spec.threshold!r}; value {{{{ $value }}}}."
                    ),
                    "runbook_url": f"{runbook_base_url.rstrip('/')}/EcmUserRule.md",
                },
            }
        )
    doc = {"groups": [{"name": GROUP, "rules": alerts}]}
    header = "# Written by the ECM API from its alert_rules table: change rules via /v1/rules.\n"
    return header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)


class RulesFile:
    """The rules file in its directory, its checker and the Prometheus that reads it."""

    def __init__(
        self, directory: Path, *, prometheus_url: str | None, promtool: str | None
    ) -> None:
        self.path = directory / FILE_NAME
        # A dot name outside prometheus.yml's rules/*.yml glob: never loaded half-written.
        self.tmp = directory / f".{FILE_NAME}.tmp"
        self.prometheus_url = prometheus_url.rstrip("/") if prometheus_url else None
        self.promtool = promtool or shutil.which("promtool")

    def current(self) -> str | None:
        """The file's text now, None when there is none."""
        try:
            return self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    def install(self, text: str) -> str:
        """Check, write atomically and reload; returns what the reload did. RuleRejected (and
        the previous file back in place) when promtool or Prometheus refuses."""
        previous = self.current()
        self.tmp.write_text(text, encoding="utf-8")
        try:
            self._check(self.tmp)
            os.replace(self.tmp, self.path)
        finally:
            self.tmp.unlink(missing_ok=True)
        try:
            return self.reload()
        except RuleRejected:
            self.restore(previous)
            raise

    def restore(self, previous: str | None) -> None:
        """Put the previous file back (atomically) and reload it."""
        if previous is None:
            self.path.unlink(missing_ok=True)
        else:
            self.tmp.write_text(previous, encoding="utf-8")
            os.replace(self.tmp, self.path)
        try:
            self.reload()
        except RuleRejected as exc:
            log.warning("reloading the previous rules failed too: %s", exc)

    def _check(self, path: Path) -> None:
        if self.promtool is None:
            log.warning("promtool not found: rules are not checked before Prometheus loads them")
            return
        try:
            out = subprocess.run(
                [self.promtool, "check", "rules", str(path)],
                capture_output=True,
                text=True,
                timeout=PROMTOOL_TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RuleRejected(f"promtool could not check the rules: {exc}") from None
        if out.returncode != 0:
            reason = (out.stderr or out.stdout).strip().replace(str(path), FILE_NAME)
            raise RuleRejected(f"promtool refused the rules: {reason[:MAX_REASON_CHARS]}")

    def loaded_rule(self, alert: str) -> dict[str, Any] | None:
        """The alerting rule named alert as Prometheus has it loaded (GET /api/v1/rules), or
        None; EcmError when Prometheus cannot say."""
        if self.prometheus_url is None:
            raise EcmError("no prometheus_url configured")
        try:
            resp = requests.get(
                f"{self.prometheus_url}/api/v1/rules",
                params={"type": "alert"},
                timeout=RELOAD_TIMEOUT_S,
            )
            resp.raise_for_status()
            groups = resp.json()["data"]["groups"]
        except (requests.RequestException, ValueError, KeyError, TypeError) as exc:
            raise EcmError(f"Prometheus did not answer: {type(exc).__name__}") from None
        for group in groups:
            if group.get("name") != GROUP:
                continue
            for rule in group.get("rules", []):
                if rule.get("name") == alert:
                    found: dict[str, Any] = rule
                    return found
        return None

    def reload(self) -> str:
        """Ask Prometheus to reload; what happened, as a short phrase."""
        if self.prometheus_url is None:
            return "not asked (no prometheus_url)"
        try:
            resp = requests.post(f"{self.prometheus_url}/-/reload", timeout=RELOAD_TIMEOUT_S)
        except requests.RequestException as exc:
            # The file is valid (promtool said so): Prometheus loads it when it is back.
            log.warning("Prometheus reload failed: %s", exc)
            return f"failed: Prometheus unreachable ({type(exc).__name__})"
        if resp.status_code == 200:
            return "reloaded"
        reason = resp.text.strip()[:MAX_REASON_CHARS]
        raise RuleRejected(f"Prometheus refused the rules ({resp.status_code}): {reason}")
