"""The real-time detection run's verdicts (`make detect-live`), from receiver notifications."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stack.runner import Supervisor
from stack.sink import Notification, WebhookSink
from tests.stack.detection import live, promtest, timing

T0 = 1_800_000_000.0  # the lane's origin: the scenario's time 0
START, END = 600.0, 1200.0


def note(receiver: str, at_s: float, *alerts: tuple[str, str, str], **labels: str) -> Notification:
    """A notification at_s seconds after the origin; alerts are (name, severity, status)."""
    payload: dict[str, Any] = {
        "alerts": [
            {"status": status, "labels": {"alertname": name, "severity": sev, **labels}}
            for name, sev, status in alerts
        ]
    }
    return Notification(receiver, payload, at=T0 + at_s)


def lane(
    notes: list[Notification], *, quiet: bool = False, listed: tuple[str, ...] = ()
) -> live.Lane:
    case = promtest.Case("demo", END + 600, listed=listed)
    if not quiet:
        case.start_s, case.end_s = START, END
    sink = WebhookSink()  # never started: notes are recorded directly
    for n in notes:
        sink.record(n)
    out = live.Lane(Path("demo.yaml"), case, sink, Supervisor(), Path("."), origin=T0)
    out.stop_at = T0 + END + 600
    return out


def test_a_page_on_time_and_resolved_in_time_meets_the_goals() -> None:
    """Critical at the pager (and tickets) 70 s after the start, resolved 200 s after the end."""
    page = ("EcmTowerFailureRatioHigh", "critical", "firing")
    done = ("EcmTowerFailureRatioHigh", "critical", "resolved")
    notes = [
        note("pager", START + 70, page, tower="TOWER_3"),
        note("tickets", START + 71, page, tower="TOWER_3"),
        note("pager", END + 200, done, tower="TOWER_3"),
        note("heartbeat", 30, ("EcmWatchdog", "none", "firing")),
    ]
    escalated = note("pager", START + 300, ("EcmTowerFailureRatioHigh", "critical", "firing"))
    ticket_first = [note("tickets", START + 70, ("EcmTowerFailureRatioHigh", "warning", "firing"))]
    # A ticket on time that becomes a page later is not late: the goal is per alert.
    assert "late" not in " ".join(
        live.rows(lane([*ticket_first, escalated], listed=("EcmTowerFailureRatioHigh",)))
    )
    [row] = live.rows(lane(notes, listed=("EcmTowerFailureRatioHigh",)))
    assert row == (
        "| demo | EcmTowerFailureRatioHigh | critical | pager/tickets | yes | +70 s | +200 s "
        "| yes |"
    )


def test_late_misrouted_unresolved_and_missing_alerts_are_named() -> None:
    """Each broken goal is said in the row, and a listed alert that never came has its own row."""
    missing = live.rows(lane([], listed=("EcmNoCalls",)))
    assert missing == ["| demo | (none) | | | | | | no: nothing arrived |"]
    notes = [
        note("pager", START + 130, ("EcmCallFailureRatioHigh", "critical", "firing")),
        note("pager", START + 20, ("EcmWindowWarn", "warning", "firing")),
        note("pager", END + 10, ("EcmCallLatencyP95High", "critical", "firing")),
        note("pager", END + 400, ("EcmCallLatencyP95High", "critical", "resolved")),
        note("tickets", START - 300, ("EcmNoCalls", "warning", "firing")),
        note("tickets", START - 200, ("EcmNoCalls", "warning", "resolved")),
    ]
    listed = ("EcmCallFailureRatioHigh", "EcmNoCalls", "EcmTowerSilent")
    rows = live.rows(lane(notes, listed=listed))
    assert rows == [
        "| demo | EcmCallFailureRatioHigh | critical | pager | yes | +130 s | never "
        "| no: late, not resolved in time |",
        "| demo | EcmCallLatencyP95High | critical | pager | no | +610 s | +400 s "
        "| no: after the end, not resolved in time |",
        "| demo | EcmNoCalls | warning | tickets | yes | -300 s | -800 s | no: before the start |",
        "| demo | EcmWindowWarn | warning | pager | no | +20 s | never "
        "| no: went to pager, not resolved in time |",
        "| demo | EcmTowerSilent | | | yes | never | | no: never arrived |",
    ]


def test_a_quiet_run_passes_with_only_the_watchdog_and_fails_on_anything_else() -> None:
    """The baseline: the Watchdog's beats are no alert; any other notification is a false one."""
    beats = [note("heartbeat", t, ("EcmWatchdog", "none", "firing")) for t in (0, 120, 240, 362)]
    assert live.rows(lane(beats, quiet=True)) == ["| demo | (none) | | | | | | yes |"]
    assert live.heartbeat_interval(beats) == 120
    false = note("tickets", 500, ("EcmWindowWarn", "warning", "firing"))
    [row] = live.rows(lane([*beats, false], quiet=True))
    assert row.endswith("| no: fired on a quiet run, not resolved in time |")


def test_a_finished_run_is_tabulated_again_from_its_state_dir(tmp_path: Path) -> None:
    """--from-state: the lane's facts and its receiver's file give the same rows."""
    scenario = promtest.SCENARIOS / "tower-outage.yaml"
    t = timing.load()
    case = promtest.scenario_case(scenario, t)
    assert case.start_s is not None
    sink = WebhookSink(tmp_path / "notifications.jsonl")  # appends to the file, never served
    first = ("EcmTowerFailureRatioHigh", "critical", "firing")
    sink.record(note("pager", case.start_s + 65, first, tower="TOWER_3"))
    ran = live.Lane(scenario, case, sink, Supervisor(), tmp_path, origin=T0, stop_at=T0 + 2400)
    live.save(ran)
    again = live.load(tmp_path, t)
    assert (again.origin, again.stop_at, again.path) == (T0, T0 + 2400, scenario)
    assert live.rows(again) == live.rows(ran)
    assert "| +65 s |" in live.rows(again)[0]
