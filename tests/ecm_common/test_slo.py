"""One home for every threshold: the exporter, the rule files and the dashboards agree with it."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from ecm_common.errors import ConfigError
from ecm_common.slo import SLO, Slo
from exporter.__main__ import build_parser
from exporter.assess import Status, Thresholds, classify
from exporter.rollup import WindowResult
from stack import dashboards, rules
from stack.rules import RuleParams

ROOT = Path(__file__).resolve().parents[2]


def window(calls: int, failed: int, p95_s: float) -> WindowResult:
    """A window's totals as the rollup gives them to the classifier."""
    return WindowResult("10m", calls, failed, calls * 1000, p95_s * 1000, {})


def alert_thresholds(alerts_yaml: str, name: str) -> dict[str, str]:
    """severity -> the threshold the alert's expression compares with."""
    out = {}
    for group in yaml.safe_load(alerts_yaml)["groups"]:
        for r in group["rules"]:
            if r.get("alert") == name:
                out[r["labels"]["severity"]] = r["expr"].split(" > ")[1].split("\n")[0]
    return out


def panel_steps(dashboard_json: str, title: str) -> list[float]:
    """The orange and red steps of a panel's thresholds."""
    doc = json.loads(dashboard_json)
    (p,) = [p for p in doc["panels"] if p["title"] == title]
    return [s["value"] for s in p["fieldConfig"]["defaults"]["thresholds"]["steps"][1:]]


def test_the_home_holds_the_domain_values() -> None:
    """Written out here: success 99%/95%, p95 4 s/8 s, 20 calls, towers 10%/50%, 99% SLO."""
    assert (SLO.warn_failure_ratio, SLO.alert_failure_ratio) == (0.01, 0.05)
    assert (SLO.warn_p95_seconds, SLO.alert_p95_seconds) == (4.0, 8.0)
    assert (SLO.min_calls, SLO.min_tower_calls) == (20, 20)
    assert (SLO.warn_tower_failure_ratio, SLO.alert_tower_failure_ratio) == (0.1, 0.5)
    assert SLO.success_target == 0.99


def test_committed_rules_and_dashboards_are_built_from_the_home(tmp_path: Path) -> None:
    """Regenerated into a temporary directory, they are the committed files byte for byte."""
    for module, committed in (
        ("stack.rules", ROOT / "prometheus" / "rules"),
        ("stack.dashboards", ROOT / "grafana" / "dashboards"),
    ):
        out = tmp_path / module
        proc = subprocess.run(
            [sys.executable, "-m", module, "--out-dir", str(out)],
            cwd=ROOT, capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        built = {p.name: p.read_text() for p in out.iterdir()}
        assert built == {name: (committed / name).read_text() for name in built}
    alerts = (ROOT / "prometheus" / "rules" / "ecm_alerts.yml").read_text()
    assert alert_thresholds(alerts, "EcmCallFailureRatioHigh") == {
        "warning": "0.01", "critical": "0.05"
    }  # fmt: skip
    assert alert_thresholds(alerts, "EcmCallLatencyP95High") == {"warning": "4", "critical": "8"}
    overview = (ROOT / "grafana" / "dashboards" / "ecm-overview.json").read_text()
    assert panel_steps(overview, "Failure ratio (5m)") == [0.01, 0.05]
    assert panel_steps(overview, "Setup latency p95 (5m)") == [4, 8]


def test_the_exporter_defaults_and_help_come_from_the_home() -> None:
    th = Thresholds()
    assert (th.warn_failure_ratio, th.alert_failure_ratio) == (0.01, 0.05)
    assert (th.warn_p95_seconds, th.alert_p95_seconds, th.min_calls) == (4.0, 8.0, 20)
    help_text = " ".join(build_parser().format_help().split())
    assert "failure ratio for WARN, 0..1 (default 0.01)" in help_text
    assert "p95 latency for ALERT, above WARN's (default 8)" in help_text


@pytest.mark.parametrize(
    ("change", "calls", "failed", "p95_s"),
    [
        ({"warn_failure_ratio": 0.02}, 1000, 15, 1.0),  # 1.5% failed: WARN today, OK after
        ({"warn_p95_seconds": 5.0}, 1000, 0, 4.5),  # p95 4.5 s: WARN today, OK after
    ],
)
def test_one_change_in_the_home_changes_exporter_rules_and_dashboards(
    change: dict[str, Any], calls: int, failed: int, p95_s: float
) -> None:
    """The three consumers move together when one threshold moves."""
    other = replace(SLO, **change)
    w = window(calls, failed, p95_s)
    assert classify(w, Thresholds.from_slo(SLO)) is Status.WARN
    assert classify(w, Thresholds.from_slo(other)) is Status.OK

    ((name, value),) = change.items()
    alert = "EcmCallFailureRatioHigh" if "ratio" in name else "EcmCallLatencyP95High"
    panel = "Failure ratio (5m)" if "ratio" in name else "Setup latency p95 (5m)"
    before = rules.render(RuleParams())[rules.ALERTS_FILE]
    after = rules.render(RuleParams(slo=other))[rules.ALERTS_FILE]
    assert alert_thresholds(after, alert)["warning"] == f"{value:g}"
    assert alert_thresholds(before, alert)["warning"] != f"{value:g}"

    overview = "ecm-overview.json"
    assert panel_steps(dashboards.render(RuleParams(slo=other))[overview], panel)[0] == value
    assert panel_steps(dashboards.render(RuleParams())[overview], panel)[0] != value


def test_the_exporter_refuses_warn_at_or_above_alert_as_the_home_does() -> None:
    for warn, alert in ((0.05, 0.05), (0.06, 0.05)):
        with pytest.raises(ValidationError, match="warn_failure_ratio"):
            Thresholds(warn_failure_ratio=warn, alert_failure_ratio=alert)
        with pytest.raises(ConfigError, match="warn_failure_ratio"):
            Slo(warn_failure_ratio=warn, alert_failure_ratio=alert)


def poisson_at_least(mean: float, k: int) -> float:
    """P(X >= k) for X ~ Poisson(mean)."""
    term, below = math.exp(-mean), 0.0
    for i in range(k):
        below += term
        term *= mean / (i + 1)
    return 1.0 - below


def needed_failures(calls: int, ratio: float) -> int:
    """The fewest failed calls ticket_sigmas over what ratio expects, on the square-root scale."""
    return math.ceil((math.sqrt(ratio * calls) + SLO.ticket_sigmas / 2) ** 2)


def test_a_significant_ticket_is_far_rarer_by_chance_than_one_on_3000_calls() -> None:
    """At the worst usual failure ratio (0.5%, docs/DOMAIN.md), the failures a window of 1000 to
    3000 calls needs come by chance 50 times less often than 1% of the ticket's 3000 calls; on
    the 2m window at 20 calls/s (2400 calls, 0.3% usual), a minute of 2% failures is enough."""
    usual, z = SLO.baseline_failure_ratio, SLO.ticket_sigmas
    edge = poisson_at_least(usual * SLO.ticket_min_calls, int(SLO.ticket_min_calls * 0.01) + 1)
    for n in range(SLO.significant_min_calls, SLO.ticket_min_calls, 50):
        assert poisson_at_least(usual * n, needed_failures(n, usual)) <= edge / 50, n
    failed = 0.003 * 20 * 60 + 0.02 * 20 * 60
    assert 2 * (math.sqrt(failed) - math.sqrt(0.003 * 2400)) >= z


def test_the_call_guard_no_longer_tickets_the_healthy_worst_on_chance() -> None:
    """At 3000 calls, 1% (31 failures) comes by chance once in about 7000 windows at 0.5% (a
    false ticket a day judged every 10 s); the failures significant over a healthy 0.5% come
    over 100 times more rarely. From 6000 calls on, the 1% line asks for more than significance
    does, so a busy network's ticket costs no recall."""
    n, healthy = SLO.ticket_min_calls, SLO.baseline_failure_ratio
    line = int(n * SLO.warn_failure_ratio) + 1
    assert poisson_at_least(healthy * n, line) > 1e-4
    assert poisson_at_least(healthy * n, needed_failures(n, healthy)) < 1e-6
    for calls in range(6000, 200_000, 1000):
        assert needed_failures(calls, healthy) <= int(calls * SLO.warn_failure_ratio) + 1, calls


def test_the_home_refuses_a_ticket_significance_without_margin() -> None:
    with pytest.raises(ConfigError, match="ticket_sigmas"):
        Slo(ticket_sigmas=0)
    with pytest.raises(ConfigError, match="significant_min_calls"):
        Slo(significant_min_calls=0)
    for ratio in (0.0, SLO.warn_failure_ratio, 1.5):
        with pytest.raises(ConfigError, match="baseline_failure_ratio"):
            Slo(baseline_failure_ratio=ratio)
