"""Detection cases as promtool unit tests: what must fire, when, and what must stay quiet.

Each case is the series of tests/stack/detection/series.py for one scenario (or one quiet hour)
plus expressions over ALERTS whose expected answers come from the scenario file and the goals of
issue 10 (docs/DETECTION.md), never from the rules: the alerts the file lists fire within the
deadline, an outage pages, nothing fires before the incident, nothing new after it, and all is
resolved in time. The rule files under test are the committed ones.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ecm_common.slo import DATA_ALERTS
from generator.app import effective_settings, load_model_inputs
from generator.config import GeneratorSettings
from generator.model import ModelParams, zipf_weights
from generator.scenario import Phase, Scenario
from stack.rules import ALERTS_FILE, RULES_DIR, WATCHDOG
from stack.rules_regions import REGIONS_FILE
from tests.stack.detection import series
from tests.stack.detection.timing import RESOLVE_WITHIN_S, Timing

ROOT = Path(__file__).resolve().parents[3]
SCENARIOS = ROOT / "scenarios"
SEED = 20240222  # any fixed seed: the cases are deterministic
FIRING = f'alertstate="firing", alertname!="{WATCHDOG}"'
# A phase that fails at least this share of its calls, or all but silences them, is an outage:
# it must page (a critical alert), not only open a ticket.
OUTAGE_FAILURE = 0.5
OUTAGE_RATE = 0.01


@dataclass
class Case:
    """One promtool test group and the facts it checks."""

    name: str
    until_s: float
    start_s: float | None = None  # incident start (None: a quiet run)
    end_s: float | None = None
    listed: tuple[str, ...] = ()
    outage: bool = False
    published: series.Published | None = None
    checks: list[dict[str, Any]] = field(default_factory=list)


def degrading(ph: Phase) -> bool:
    """Whether a phase makes calls fail, slow down or disappear (a surge alone does not)."""
    e = ph.effects
    return bool(
        (e.failure_prob or 0) > 0
        or e.latency_multiplier > 1
        or e.latency_sigma is not None
        or e.rate_multiplier < 1
    )


def scenario_model(path: Path) -> tuple[ModelParams, Scenario]:
    """The generator's model parameters and scenario for a file, as ecm-generator builds them."""
    settings = effective_settings(GeneratorSettings.model_validate({"scenario": str(path)}))
    params, scenario = load_model_inputs(settings)
    assert scenario is not None
    return params, scenario


def _s(seconds: float) -> str:
    return f"{round(seconds)}s"


def scenario_case(path: Path, timing: Timing) -> Case:
    """The case of one scenario file: its series and the checks its alerts list implies."""
    params, sc = scenario_model(path)
    bad = [ph for ph in sc.phases if degrading(ph)]
    case = Case(sc.name, sc.duration, listed=sc.alerts)
    if bad:
        case.start_s = min(ph.start for ph in bad)
        case.end_s = max(ph.end for ph in bad)
        case.until_s = max(sc.duration, case.end_s + RESOLVE_WITHIN_S + 60)
        case.outage = any(
            (ph.effects.failure_prob or 0) >= OUTAGE_FAILURE
            or ph.effects.rate_multiplier <= OUTAGE_RATE
            for ph in bad
        )
    calls = series.draw(params, sc.timeline(params), case.until_s, SEED)
    case.published = series.publish(calls, params, case.until_s, timing)
    case.checks = checks(case, timing)
    return case


def quiet_case(rate: float, towers: int, timing: Timing, hours: float = 1.0) -> Case:
    """An hour of normal traffic at a rate over a network of towers: nothing may fire."""
    settings = GeneratorSettings.model_validate({"rate": rate, "towers": towers})
    params = ModelParams(
        rate=rate,
        failure_prob=settings.failure_prob,
        tower_weights=zipf_weights(towers, settings.tower_skew),
    )
    case = Case(f"quiet-{rate:g}-calls-per-s-{towers}-towers", hours * 3600)
    calls = series.draw(params, None, case.until_s, SEED)
    case.published = series.publish(calls, params, case.until_s, timing)
    case.checks = checks(case, timing)
    return case


def _alerts_regex(names: tuple[str, ...]) -> str:
    return "|".join(names)


def checks(case: Case, timing: Timing) -> list[dict[str, Any]]:
    """promql_expr_test entries: expected answers from the case's facts alone."""
    if case.start_s is None or case.end_s is None:
        until = timing.scrape_s * (int(case.until_s // timing.scrape_s))
        return [
            {
                "expr": f"max by (alertname, severity) "
                f"(max_over_time(ALERTS{{{FIRING}}}[{_s(until)}]))",
                "eval_time": _s(until),
                "exp_samples": [],
            }
        ]
    t0, te = case.start_s, case.end_s
    fire = timing.fire_deadline_s
    out: list[dict[str, Any]] = [
        # Nothing fires on the baseline before the incident.
        {
            "expr": f"max by (alertname, severity) (max_over_time(ALERTS{{{FIRING}}}[{_s(t0)}]))",
            "eval_time": _s(t0),
            "exp_samples": [],
        },
    ]
    if case.listed:
        # Every listed alert has fired by the deadline.
        out.append(
            {
                "expr": f"max by (alertname) (max_over_time(ALERTS{{{FIRING}, "
                f'alertname=~"{_alerts_regex(case.listed)}"}}[{_s(fire)}]))',
                "eval_time": _s(t0 + fire),
                "exp_samples": [
                    {"labels": f'{{alertname="{a}"}}', "value": 1} for a in sorted(case.listed)
                ],
            }
        )
    if case.outage:
        out.append(
            {
                "expr": f'max by (severity) (max_over_time(ALERTS{{{FIRING}, severity="critical"}}'
                f"[{_s(fire)}]))",
                "eval_time": _s(t0 + fire),
                "exp_samples": [{"labels": '{severity="critical"}', "value": 1}],
            }
        )
    # No group (alert and severity, as Alertmanager groups them) starts firing so late that its
    # page would reach a receiver after the end, up to the end of the run; a tower joining a
    # group that is already open updates that page.
    late = timing.scrape_s * int(case.until_s // timing.scrape_s)
    back = late - te + timing.notify_s
    by = "max by (alertname, severity)"
    out.append(
        {
            "expr": f"{by} (max_over_time(ALERTS{{{FIRING}}}[{_s(back)}])) "
            f"unless {by} (ALERTS{{{FIRING}}} offset {_s(back)})",
            "eval_time": _s(late),
            "exp_samples": [],
        }
    )
    # Everything has resolved in time for the receiver to hear it within 5 minutes of the end.
    out.append(
        {
            "expr": f"ALERTS{{{FIRING}}}",
            "eval_time": _s(te + timing.resolve_deadline_s),
            "exp_samples": [],
        }
    )
    return out


# promtool's unit tests load at most 10000 samples per query: measure in slices of this length.
MEASURE_SLICE_S = 300


def measure_checks(case: Case, timing: Timing) -> list[dict[str, Any]]:
    """Expressions giving every alert's first firing second after the incident's start and its
    last firing second after the end (after 0 for a quiet run), one per slice of the run."""
    until = timing.scrape_s * int(case.until_s // timing.scrape_s)
    t0, te = case.start_s or 0, case.end_s or 0
    sub = f"timestamp(ALERTS{{{FIRING}}})"
    rng = f"[{_s(MEASURE_SLICE_S)}:{_s(timing.eval_s)}]"
    by = "by (alertname, severity)"
    out = []
    at = float(MEASURE_SLICE_S)
    while at < until + MEASURE_SLICE_S:
        for expr in (
            f"min_over_time((min {by} ({sub}) - {t0:g}){rng})",
            f"max_over_time((max {by} ({sub}) - {te:g}){rng})",
        ):
            out.append({"expr": expr, "eval_time": _s(min(at, until)), "exp_samples": []})
        at += MEASURE_SLICE_S
    return out


def test_file(cases: list[Case], timing: Timing, rules_dir: Path = RULES_DIR) -> dict[str, Any]:
    """A promtool test document holding every case."""
    return {
        "rule_files": [str(rules_dir / ALERTS_FILE), str(rules_dir / REGIONS_FILE)],
        "evaluation_interval": _s(timing.eval_s),
        "tests": [
            {
                "name": c.name,
                "interval": _s(timing.scrape_s),
                "input_series": c.published.input_series() if c.published else [],
                "promql_expr_test": c.checks,
            }
            for c in cases
        ],
    }


def run(promtool: str, doc: dict[str, Any], path: Path) -> subprocess.CompletedProcess[str]:
    """Write the document and run `promtool test rules` on it."""
    path.write_text(yaml.safe_dump(doc, sort_keys=False, width=1_000_000))
    return subprocess.run(
        [promtool, "test", "rules", str(path)], capture_output=True, text=True, check=False
    )


_GOT = re.compile(r"\{([^}]*)\} ([0-9.eE+-]+)")


def measure(
    promtool: str, case: Case, timing: Timing, path: Path, rules_dir: Path = RULES_DIR
) -> dict[tuple[str, str], tuple[float, float]]:
    """(alertname, severity) -> (first, last) firing second in the case, as promtool answers
    (the expressions expect nothing, so promtool prints what it got)."""
    saved = case.checks
    case.checks = measure_checks(case, timing)
    try:
        proc = run(promtool, test_file([case], timing, rules_dir), path)
    finally:
        case.checks = saved
    first: dict[tuple[str, str], float] = {}
    last: dict[tuple[str, str], float] = {}
    text = proc.stdout + proc.stderr  # promtool writes failures to stderr
    for block in text.split("expr: ")[1:]:
        is_first = block.startswith('"min_over_time')
        got = block.split("got:", 1)[1] if "got:" in block else ""
        for labels, value in _GOT.findall(got):
            lab = dict(re.findall(r'(\w+)="([^"]*)"', labels))
            key = (lab.get("alertname", ""), lab.get("severity", ""))
            if is_first:
                first[key] = min(first.get(key, float(value)), float(value))
            else:
                last[key] = max(last.get(key, float(value)), float(value))
    return {k: (first[k], last.get(k, float("nan"))) for k in first}


__all__ = ["DATA_ALERTS", "Case", "measure", "quiet_case", "run", "scenario_case", "test_file"]
