"""Incidents and escalation against the real database, with the clock moved by hand."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from pager.engine import Conflict, Engine, NotFound
from tests.fixtures.clock import FakeClock
from tests.pager.conftest import MINUTE
from tests.pager.helpers import alert, healthy, hook, levels, notified, rows, state

pytestmark = pytest.mark.integration


def test_a_firing_alert_opens_an_incident_and_pages_level_1(engine: Engine, pager_url: str) -> None:
    result = engine.ingest(hook(alert("a1")))
    assert len(result.opened) == 1
    incident = result.opened[0]
    assert notified(pager_url) == [
        (incident, 1, 1, "email", "first@example.org"),
        (incident, 1, 1, "webhook", "http://127.0.0.1:9/hook"),
    ]
    assert state(pager_url, incident) == "triggered"
    assert not healthy(pager_url, "ecm")


def test_escalation_timing_ack_and_retrigger(
    engine: Engine, pager_url: str, clock: FakeClock
) -> None:
    incident = engine.ingest(hook(alert("a1"))).opened[0]
    clock.advance(15 * MINUTE - 1)
    assert engine.escalate_due() == 0
    assert levels(pager_url, incident) == [1]
    clock.advance(1)
    assert engine.escalate_due() == 1
    assert levels(pager_url, incident) == [1, 2]
    # Acknowledged: level 2's 10-minute timeout passes and nobody else is paged.
    engine.acknowledge(incident, "alice")
    clock.advance(10 * MINUTE)
    assert engine.escalate_due() == 0
    assert levels(pager_url, incident) == [1, 2]
    assert state(pager_url, incident) == "acknowledged"
    # Not resolved within the acknowledgement timeout (30 m): level 1 is paged again.
    clock.advance(20 * MINUTE)
    assert engine.escalate_due() == 1
    assert levels(pager_url, incident) == [1, 2, 1]
    assert state(pager_url, incident) == "triggered"
    kinds = [r[0] for r in rows(pager_url, "SELECT kind FROM pager_events ORDER BY event_id")]
    assert kinds == [
        "triggered",
        "escalated",
        "alert firing",
        "escalated",
        "acknowledged",
        "re-triggered",
        "escalated",
    ]


def test_policy_repeats_then_stops(engine: Engine, pager_url: str, clock: FakeClock) -> None:
    incident = engine.ingest(hook(alert("a1"))).opened[0]
    for timeout in (15, 10, 15, 10, 15):
        clock.advance(timeout * MINUTE)
        engine.escalate_due()
    # Two levels, repeat 1: each level twice, then nothing more, and the timeline says so.
    assert levels(pager_url, incident) == [1, 2, 1, 2]
    clock.advance(24 * 60 * MINUTE)
    assert engine.escalate_due() == 0
    last = rows(pager_url, "SELECT kind FROM pager_events ORDER BY event_id DESC LIMIT 1")
    assert last == [("escalation exhausted",)]


def test_resolving_every_alert_closes_the_incident_and_heals_the_service(
    engine: Engine, pager_url: str, clock: FakeClock
) -> None:
    incident = engine.ingest(hook(alert("a1"), alert("a2"))).opened[0]
    # Alerts of one group resolve separately: one left firing keeps the incident open.
    engine.ingest(hook(alert("a1", "resolved"), alert("a2")))
    assert state(pager_url, incident) == "triggered"
    assert not healthy(pager_url, "ecm")
    engine.ingest(hook(alert("a1", "resolved"), alert("a2", "resolved")))
    assert state(pager_url, incident) == "resolved"
    assert healthy(pager_url, "ecm")
    clock.advance(60 * MINUTE)
    assert engine.escalate_due() == 0
    assert levels(pager_url, incident) == [1]


def test_the_same_payload_twice_changes_nothing(engine: Engine, pager_url: str) -> None:
    body = hook(alert("a1"), alert("a2"), alert("b1", service="billing"))
    first = engine.ingest(body)
    tables = ("pager_incidents", "pager_incident_alerts", "pager_events", "pager_outbox")
    before = {t: rows(pager_url, f"SELECT * FROM {t} ORDER BY 1") for t in tables}
    second = engine.ingest(body)
    assert len(first.opened) == 2
    assert second.opened == [] and second.attached == 0 and second.unchanged == 3
    assert {t: rows(pager_url, f"SELECT * FROM {t} ORDER BY 1") for t in tables} == before


def test_later_alerts_attach_to_the_open_incident(engine: Engine, pager_url: str) -> None:
    first = engine.ingest(hook(alert("a1"))).opened
    later = engine.ingest(hook(alert("a2"), alert("a3")))
    assert later.opened == [] and later.attached == 2
    assert rows(pager_url, "SELECT count(*) FROM pager_incidents") == [(1,)]
    assert rows(pager_url, "SELECT DISTINCT incident_id FROM pager_incident_alerts") == [
        (first[0],)
    ]
    # Only the first alert paged.
    assert len(notified(pager_url)) == 2


def test_resolved_by_hand_stays_resolved_when_alertmanager_repeats_the_alert(
    engine: Engine, pager_url: str
) -> None:
    incident = engine.ingest(hook(alert("a1"))).opened[0]
    engine.resolve(incident, "bob")
    assert healthy(pager_url, "ecm")
    assert engine.ingest(hook(alert("a1"))).opened == []
    # The same alert firing again later (a new startsAt) is a new incident.
    again = engine.ingest(hook(alert("a1", starts="2027-01-15T10:00:00Z"))).opened
    assert len(again) == 1 and again[0] != incident


def test_ack_and_resolve_refuse_what_they_cannot_do(engine: Engine) -> None:
    incident = engine.ingest(hook(alert("a1"))).opened[0]
    with pytest.raises(NotFound):
        engine.acknowledge(incident + 1000, "alice")
    engine.resolve(incident, "bob")
    with pytest.raises(Conflict, match="resolved"):
        engine.acknowledge(incident, "alice")
    with pytest.raises(Conflict, match="already resolved"):
        engine.resolve(incident, "bob")


def test_ack_cancels_the_pages_not_yet_sent(engine: Engine, pager_url: str) -> None:
    incident = engine.ingest(hook(alert("a1"))).opened[0]
    engine.acknowledge(incident, "alice")
    assert rows(pager_url, "SELECT DISTINCT state FROM pager_outbox") == [("cancelled",)]


def test_restart_mid_escalation_fires_the_next_level_on_time_once(
    make_engine: Callable[..., Engine], pager_url: str, clock: FakeClock
) -> None:
    first = make_engine()
    incident = first.ingest(hook(alert("a1"))).opened[0]
    first.pool.close()  # the process is gone
    clock.advance(14 * MINUTE)
    second = make_engine()
    assert second.escalate_due() == 0
    clock.advance(1 * MINUTE)
    assert second.escalate_due() == 1
    assert second.escalate_due() == 0
    assert levels(pager_url, incident) == [1, 2]


def test_two_pagers_notify_each_level_exactly_once(
    make_engine: Callable[..., Engine], pager_url: str, clock: FakeClock
) -> None:
    a, b = make_engine(), make_engine()
    services = [f"svc{i}" for i in range(60)]
    more = {s: a.settings.services["ecm"] for s in services}
    settings = a.settings.model_copy(update={"services": {**a.settings.services, **more}})
    a.settings = b.settings = settings
    opened = [a.ingest(hook(alert(f"{i:x}", service=s))).opened[0] for i, s in enumerate(services)]
    for minutes in (15, 10, 15):
        clock.advance(minutes * MINUTE)
        threads = [threading.Thread(target=e.escalate_due) for e in (a, b, a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for incident in opened:
        assert levels(pager_url, incident) == [1, 2, 1, 2]
    steps = rows(
        pager_url,
        "SELECT incident_id, step, channel, count(*) FROM pager_outbox"
        " GROUP BY 1, 2, 3 HAVING count(*) > 1",
    )
    assert steps == []


def test_concurrent_webhooks_open_one_incident_per_service(
    make_engine: Callable[..., Engine], pager_url: str
) -> None:
    engines = [make_engine() for _ in range(4)]
    errors: list[BaseException] = []

    def post(e: Engine, n: int) -> None:
        try:
            for i in range(10):
                e.ingest(hook(alert(f"{n:x}{i:02x}"), alert(f"{n:x}{i:02x}f", service="billing")))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=post, args=(e, n)) for n, e in enumerate(engines)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert rows(
        pager_url, "SELECT service_id, count(*) FROM pager_incidents GROUP BY 1 ORDER BY 1"
    ) == [("billing", 1), ("ecm", 1)]
    assert rows(pager_url, "SELECT count(*) FROM pager_incident_alerts") == [(80,)]
    assert rows(pager_url, "SELECT count(DISTINCT step) FROM pager_outbox") == [(1,)]


def test_dead_mans_switch_opens_the_silence_incident_and_closes_it(
    engine: Engine, pager_url: str, clock: FakeClock
) -> None:
    assert engine.check_silence() is None  # armed at the first start
    engine.ingest(hook(alert("ff", alertname="EcmWatchdog")))
    clock.advance(5 * MINUTE)
    assert engine.check_silence() is None
    clock.advance(1)
    incident = engine.check_silence()
    assert incident is not None
    assert engine.check_silence() is None  # one incident, however often it checks
    title = rows(pager_url, "SELECT service_id, title FROM pager_incidents")
    assert title == [("ecm-monitoring", "monitoring pipeline silent: no EcmWatchdog for 301 s")]
    assert levels(pager_url, incident) == [1]
    assert not healthy(pager_url, "ecm-monitoring")
    engine.ingest(hook(alert("ff", alertname="EcmWatchdog")))
    assert state(pager_url, incident) == "resolved"
    assert healthy(pager_url, "ecm-monitoring")
