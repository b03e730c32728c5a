"""Detection speed (issue 10): every shipped scenario, turned into the series the exporter would
publish and judged by the committed rules in promtool, pages or tickets in time, says nothing
before or after the incident, resolves in time; quiet hours at several rates raise nothing.

Deadlines come from the goals (2 minutes to the receiver, 5 to resolve) minus Alertmanager's
delay read from alertmanager/alertmanager.yml; the data delays (exporter refresh, scrape,
evaluation) are in the series and the evaluation, read from the committed configuration. A
slower window, a longer `for:` or a higher threshold makes a case fail.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from ecm_common.slo import SLO
from exporter.config import ExporterSettings
from exporter.counters import LATENCY_BUCKETS_S
from stack.rules import RuleParams
from tests.fixtures.tools import require_binary
from tests.stack.detection import promtest, timing
from tests.stack.detection.series import expand, expand_gauge

SCENARIO_FILES = sorted(promtest.SCENARIOS.glob("*.yaml"))
# The quiet hours: 1, 5, 20 and 100 calls/s over 50 and over 5,000 towers.
QUIET = [(rate, towers) for towers in (50, 5000) for rate in (1, 5, 20, 100)]
WORKERS = 2


@cache
def _results(tmp: Path) -> dict[str, CompletedProcess[str]]:
    """Every case run once in promtool, two at a time."""
    promtool = require_binary("promtool", "prometheus")
    t = timing.load()

    def one(key: str) -> tuple[str, CompletedProcess[str]]:
        if key.startswith("quiet:"):
            rate, towers = key.removeprefix("quiet:").split("x")
            case = promtest.quiet_case(float(rate), int(towers), t)
        else:
            case = promtest.scenario_case(promtest.SCENARIOS / f"{key}.yaml", t)
        doc = promtest.test_file([case], t)
        return key, promtest.run(promtool, doc, tmp / f"{key.replace(':', '_')}.yml")

    keys = [p.stem for p in SCENARIO_FILES] + [f"quiet:{r}x{n}" for r, n in QUIET]
    with ThreadPoolExecutor(WORKERS) as pool:
        return dict(pool.map(one, keys))


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, CompletedProcess[str]]:
    """promtool's answer for every case."""
    return _results(tmp_path_factory.mktemp("detection"))


@pytest.mark.parametrize("path", SCENARIO_FILES, ids=lambda p: p.stem)
def test_scenario_is_detected_in_time_and_quiet_around_it(
    path: Path, results: dict[str, CompletedProcess[str]]
) -> None:
    """Listed alerts fire in time, outages page, nothing before, nothing new after, resolved."""
    proc = results[path.stem]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


@pytest.mark.parametrize(("rate", "towers"), QUIET, ids=lambda v: str(v))
def test_quiet_hour_raises_nothing(
    rate: int, towers: int, results: dict[str, CompletedProcess[str]]
) -> None:
    """An hour of normal traffic: no page, no ticket."""
    proc = results[f"quiet:{rate}x{towers}"]
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_scenario_has_an_incident_or_is_the_baseline() -> None:
    """A scenario whose phases degrade nothing would be checked for silence only."""
    for path in SCENARIO_FILES:
        _, sc = promtest.scenario_model(path)
        assert any(promtest.degrading(ph) for ph in sc.phases) or not sc.alerts, path.name


def test_latency_thresholds_are_bucket_bounds() -> None:
    """p95 > line is exact only when the line is a bucket bound (then it means: over 5% of
    calls took longer); 4 s and 8 s written out here."""
    for line in (SLO.warn_p95_seconds, SLO.alert_p95_seconds):
        assert line in LATENCY_BUCKETS_S
    assert {4, 8} <= set(LATENCY_BUCKETS_S)


def test_window_alerts_are_confirmed_by_a_window_the_exporter_publishes() -> None:
    """The short window the window alerts need is one of the exporter's default windows."""
    labels = {w.label for w in ExporterSettings.model_validate({}).window_specs}
    assert RuleParams().exporter_confirm_window in labels


def test_the_delays_leave_room_for_a_page() -> None:
    """Refresh, scrape, evaluation and Alertmanager's delay: what the deadlines are built on."""
    t = timing.load()
    assert (t.refresh_s, t.scrape_s, t.eval_s, t.notify_s) == (10, 10, 10, 30)
    assert t.fire_deadline_s == 90
    assert t.resolve_deadline_s == 270


def test_expanding_notation() -> None:
    """Runs of a constant step become promtool's a+bxN (N+1 values)."""
    assert expand([0, 1, 2, 2, 2, 5]) == "0+1x2 2x1 5"
    assert expand([7]) == "7"
    assert expand([3, 3, 3, 3]) == "3x3"


def test_a_gauge_is_absent_where_the_exporter_publishes_nothing() -> None:
    """A window's failure ratio exists only while it holds calls: missing before its first
    value, marked stale when it goes (as Prometheus does), runs of one value as axN."""
    text = expand_gauge([None, None, 0.0125, 0.0125, 0.02, None, None, None, 0.5])
    assert text == "_x2 0.0125x1 0.02 stale _x2 0.5"
