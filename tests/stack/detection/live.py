"""`make detect-live`: every scenario in real time on the real stack, timed at the receiver.

Each scenario gets its own database on one local PostgreSQL, its own generator (the scenario at
speed 1), exporter, Prometheus and Alertmanager with the committed configs, rules and timings,
and a webhook sink of its own as the independent receiver; the scenarios run side by side. A
lane stops RESET_WAIT_S after its incident ends (the quiet baseline with the last incident
lane). The table says when each alert first reached its receiver after the incident's start and
when its last resolution arrived after the end, and whether the goals held.

    python -m tests.stack.detection.live                      # all scenarios, about 52 minutes
    python -m tests.stack.detection.live --scenario tower-outage --write
    python -m tests.stack.detection.live --from-state DIR --write   # tabulate a finished run
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import get_args

from db.migrate import migrate
from ecm_common.config import read_yaml
from ecm_common.db import URL_ENV
from stack import pgbinaries, promconfig
from stack.pgcluster import LocalCluster, free_port
from stack.rules import WATCHDOG
from stack.runner import Child, Supervisor
from stack.sink import RECEIVERS, Notification, WebhookSink
from tests.stack.detection import promtest, report, timing

log = logging.getLogger("detect-live")

BEGIN, END = "<!-- live:begin -->", "<!-- live:end -->"
# The goals (issue 10): at the receiver within 2 minutes, resolved within 5 minutes of the end.
NOTIFY_WITHIN_S = 120.0
RESOLVE_WITHIN_S = 300.0
RESET_WAIT_S = RESOLVE_WITHIN_S + 30
START_LEAD_S = 15.0
LANE_FILE = "lane.json"  # every lane's services are up before its first call is due
# Where each severity must arrive (Alertmanager copies a page to the tickets too).
RECEIVER_OF = {"critical": "pager", "warning": "tickets"}


@dataclass
class Seen:
    """One alert (name, severity) at one receiver: its first firing, its last resolution."""

    receivers: set[str] = field(default_factory=set)
    first_firing: float | None = None
    last_firing: float = 0.0
    resolved: float | None = None


@dataclass
class Lane:
    """One scenario's stack and what its receiver got."""

    path: Path
    case: promtest.Case
    sink: WebhookSink
    sup: Supervisor
    dir: Path
    origin: float = 0.0
    stop_at: float = 0.0
    failed: str = ""

    def times(self) -> tuple[float, float]:
        """Wall times of the incident's start and end (the run's start and stop when quiet)."""
        if self.case.start_s is None or self.case.end_s is None:
            return self.origin, self.stop_at
        return self.origin + self.case.start_s, self.origin + self.case.end_s


def seen(notes: list[Notification]) -> dict[tuple[str, str], Seen]:
    """Per alert, from the receivers' notifications (the Watchdog left out)."""
    out: dict[tuple[str, str], Seen] = {}
    for n in sorted(notes, key=lambda n: n.at):
        for a in n.alerts():
            labels = a.get("labels", {})
            if labels.get("alertname") == WATCHDOG:
                continue
            s = out.setdefault((labels.get("alertname", "?"), labels.get("severity", "")), Seen())
            s.receivers.add(n.receiver)
            if a.get("status") == "firing":
                s.first_firing = s.first_firing if s.first_firing is not None else n.at
                s.last_firing, s.resolved = n.at, None
            elif s.first_firing is not None and s.resolved is None:
                s.resolved = n.at
    return out


def heartbeat_interval(notes: list[Notification]) -> float | None:
    """Median seconds between the Watchdog's notifications."""
    at = sorted(n.at for n in notes if n.receiver == "heartbeat")
    gaps = [b - a for a, b in itertools.pairwise(at)]
    return statistics.median(gaps) if gaps else None


def rows(lane: Lane) -> list[str]:
    """The lane's table rows."""
    start, end = lane.times()
    got = seen(lane.sink.received())
    name = lane.case.name
    if lane.failed:
        return [f"| {name} | (run failed: {lane.failed}) | | | | | | |"]
    if not got:
        verdict = "yes" if lane.case.start_s is None else "no: nothing arrived"
        return [f"| {name} | (none) | | | | | | {verdict} |"]
    out = []
    for (alert, severity), s in sorted(got.items()):
        listed = alert in lane.case.listed
        first = None if s.first_firing is None else s.first_firing - start
        reset = None if s.resolved is None else s.resolved - end
        problems = []
        if lane.case.start_s is None:
            problems.append("fired on a quiet run")
        elif s.first_firing is not None and s.first_firing < start:
            problems.append("before the start")
        if RECEIVER_OF.get(severity) not in s.receivers or (
            severity != "critical" and "pager" in s.receivers
        ):
            problems.append(f"went to {', '.join(sorted(s.receivers))}")
        # The goal is per alert: a ticket on time that later becomes a page is not late.
        earliest = min(
            (x.first_firing for (a, _), x in got.items() if a == alert and x.first_firing),
            default=None,
        )
        if listed and (earliest is None or earliest - start > NOTIFY_WITHIN_S):
            problems.append("late")
        if s.first_firing is not None and s.first_firing > end:
            problems.append("after the end")
        if reset is None or reset > RESOLVE_WITHIN_S:
            problems.append("not resolved in time")
        out.append(
            f"| {name} | {alert} | {severity} | {'/'.join(sorted(s.receivers))} "
            f"| {'yes' if listed else 'no'} | {_secs(first)} | {_secs(reset)} "
            f"| {'no: ' + ', '.join(problems) if problems else 'yes'} |"
        )
    missing = set(lane.case.listed) - {a for a, _ in got}
    out += [f"| {name} | {a} | | | yes | never | | no: never arrived |" for a in sorted(missing)]
    return out


def _secs(v: float | None) -> str:
    return "never" if v is None else f"{v:+.0f} s"


def table(lanes: list[Lane], started: datetime) -> str:
    """The markdown written into docs/DETECTION.md."""
    beats = [b for b in (heartbeat_interval(lane.sink.received()) for lane in lanes) if b]
    head = [
        f"Run of {started:%Y-%m-%d %H:%M} UTC, {len(lanes)} scenario(s) side by side on one "
        "machine. Times are at the receiver: first firing notification after the incident's "
        "start, last resolution after its end.",
        "",
        "| scenario | alert | severity | receiver | listed | first notified after the start "
        "| resolved after the end | goals met |",
        "|---|---|---|---|---|---|---|---|",
    ]
    body = [r for lane in lanes for r in rows(lane)]
    tail = []
    if beats:
        tail = [
            "",
            f"The Watchdog reached the heartbeat receiver every {statistics.median(beats):.0f} s "
            "(median over the lanes).",
        ]
    return "\n".join(head + body + tail)


def start_lane(
    path: Path, cluster: LocalCluster, state: Path, t: timing.Timing, lanes: list[Lane]
) -> None:
    """Database, receiver, Alertmanager, Prometheus, exporter and generator of one scenario."""
    case = promtest.scenario_case(path, t)
    duration = promtest.scenario_model(path)[1].duration
    url = cluster.ensure_database("detect_" + path.stem.replace("-", "_"))
    migrate(url)
    d = state / path.stem
    d.mkdir(parents=True, exist_ok=True)
    sink = WebhookSink(d / "notifications.jsonl").start()
    lane = Lane(path, case, sink, Supervisor(), d)
    lanes.append(lane)  # stopped by the caller, even when a part fails to start
    ports = {name: free_port() for name in ("exporter", "generator", "prometheus", "am")}
    am = f"127.0.0.1:{ports['am']}"
    urls = {
        env: sink.url(receiver)
        for env, receiver in zip(promconfig.WEBHOOK_ENV, RECEIVERS, strict=True)
    }
    am_cfg = promconfig.render_alertmanager_config(d / "alertmanager", urls)
    _tool(lane, "alertmanager", promconfig.alertmanager_command(am_cfg, d / "am-data", am), am)
    prom = f"127.0.0.1:{ports['prometheus']}"
    jobs = read_yaml(promconfig.PROMETHEUS_YML)["scrape_configs"]
    targets: dict[str, str | None] = {j["job_name"]: None for j in jobs}
    targets.update(
        {
            "ecm-exporter": f"127.0.0.1:{ports['exporter']}",
            "ecm-generator": f"127.0.0.1:{ports['generator']}",
            "prometheus": prom,
            "alertmanager": am,
        }
    )
    prom_cfg = promconfig.render_prometheus_config(d / "prometheus", targets, am)
    _tool(lane, "prometheus", promconfig.prometheus_command(prom_cfg, d / "prom-data", prom), prom)
    exporter = [sys.executable, "-m", "exporter", "--port", str(ports["exporter"])]
    lane.sup.start(
        Child(
            "exporter",
            exporter,
            d / "exporter.log",
            env={URL_ENV: url},
            url=f"http://127.0.0.1:{ports['exporter']}",
            ready_path="/metrics",
        )
    ).wait_ready()
    lane.origin = time.time() + START_LEAD_S
    origin = datetime.fromtimestamp(lane.origin, UTC).isoformat()
    generator = [sys.executable, "-m", "generator", "--scenario", str(path), "--start", origin]
    generator += ["--metrics-port", str(ports["generator"])]
    lane.sup.start(Child("generator", generator, d / "generator.log", env={URL_ENV: url}))
    end = case.end_s if case.end_s is not None else duration
    lane.stop_at = lane.origin + min(duration, end + RESET_WAIT_S)
    log.info(
        "%s: incident from +%s s to +%s s, stops at +%.0f s",
        path.stem,
        case.start_s,
        case.end_s,
        lane.stop_at - lane.origin,
    )


def _tool(lane: Lane, name: str, argv: list[str], listen: str) -> None:
    """Start Prometheus or Alertmanager for the lane and wait until it is ready."""
    child = Child(
        name, argv, lane.dir / f"{name}.log", url=f"http://{listen}", ready_path="/-/ready"
    )
    lane.sup.start(child).wait_ready()


def save(lane: Lane) -> None:
    """The lane's facts beside its notifications, for --from-state."""
    facts = {"scenario": str(lane.path), "origin": lane.origin, "stop_at": lane.stop_at}
    (lane.dir / LANE_FILE).write_text(json.dumps(facts) + "\n", encoding="utf-8")


def load(lane_dir: Path, t: timing.Timing) -> Lane:
    """A finished lane from its directory: facts and the notifications its receiver kept."""
    facts = json.loads((lane_dir / LANE_FILE).read_text(encoding="utf-8"))
    path = Path(facts["scenario"])
    sink = WebhookSink()  # never started: it only holds the recorded notifications
    with (lane_dir / "notifications.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            d = json.loads(line)
            sink.record(Notification(d["receiver"], d["payload"], at=d["at"]))
    lane = Lane(path, promtest.scenario_case(path, t), sink, Supervisor(), lane_dir)
    lane.origin, lane.stop_at = facts["origin"], facts["stop_at"]
    return lane


def run(lanes: list[Lane]) -> None:
    """Wait for every lane's stop time, stopping each as it comes; a dead part fails its lane."""
    quiet = [lane for lane in lanes if lane.case.start_s is None]
    busy = [lane for lane in lanes if lane.case.start_s is not None]
    if busy:
        last = max(lane.stop_at for lane in busy)
        for lane in quiet:
            lane.stop_at = min(lane.stop_at, last)
    for lane in lanes:
        save(lane)
    live = list(lanes)
    next_report = time.time()
    while live:
        now = time.time()
        for lane in list(live):
            dead = next((c for c in lane.sup.children if c.exited() is not None), None)
            if dead is not None or now >= lane.stop_at:
                if dead is not None and now < lane.stop_at:
                    lane.failed = f"{dead.name} exited {dead.exited()}"
                    log.error("%s: %s; its log:\n%s", lane.path.stem, lane.failed, dead.tail())
                lane.sup.stop_all()
                lane.sink.stop()
                live.remove(lane)
        if now >= next_report and live:
            left = max(lane.stop_at for lane in live) - now
            log.info("%d lane(s) running, %.0f min left", len(live), left / 60)
            next_report = now + 300
        time.sleep(2)


def main(argv: list[str] | None = None) -> int:
    """Run the scenarios; print the table, or write it into docs/DETECTION.md."""
    ap = argparse.ArgumentParser(prog="python -m tests.stack.detection.live", description=__doc__)
    ap.add_argument(
        "--scenario", action="append", help="a scenario's name or file (default: all shipped)"
    )
    ap.add_argument("--write", action="store_true", help="replace the table in docs/DETECTION.md")
    ap.add_argument("--postgres", default="auto", help="system, embedded or auto (default)")
    ap.add_argument("--state-dir", type=Path, help="logs and notifications (default: temp dir)")
    ap.add_argument(
        "--from-state", type=Path, help="tabulate a finished run's --state-dir, run nothing"
    )
    ns = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if ns.from_state:
        logging.getLogger("stack.sink").setLevel(logging.WARNING)  # a line per stored note
        lane_dirs = sorted(p.parent for p in ns.from_state.glob(f"*/{LANE_FILE}"))
        if not lane_dirs:
            print(f"detect-live: error: no {LANE_FILE} under {ns.from_state}", file=sys.stderr)
            return 2
        t = timing.load()
        done = [load(d, t) for d in lane_dirs]
        first = min(lane.origin for lane in done) - START_LEAD_S
        return report_on(done, datetime.fromtimestamp(first, UTC), write=ns.write)
    files = sorted(promtest.SCENARIOS.glob("*.yaml"))
    if ns.scenario:
        shipped = {f.stem: f for f in files}
        files = [shipped.get(n) or Path(n) for n in ns.scenario]
        unknown = [str(f) for f in files if not f.is_file()]
        if unknown:
            print(f"detect-live: error: no scenario {', '.join(unknown)}", file=sys.stderr)
            return 2
    state = ns.state_dir or Path(tempfile.mkdtemp(prefix="ecm-detect-"))
    if ns.postgres not in get_args(pgbinaries.PostgresChoice):
        print(f"detect-live: error: --postgres {ns.postgres!r}: system, embedded or auto")
        return 2
    server = pgbinaries.find(ns.postgres)
    cluster = LocalCluster(state / "pg", bindir=server.bindir)
    cluster.start()
    started = datetime.now(UTC)
    lanes: list[Lane] = []
    try:
        t = timing.load()
        for path in files:
            start_lane(path, cluster, state, t, lanes)
        run(lanes)
    finally:
        for lane in lanes:
            lane.sup.stop_all()
            lane.sink.stop()
        cluster.destroy()
    print(f"logs and notifications in {state}", file=sys.stderr)
    return report_on(lanes, started, write=ns.write)


def report_on(lanes: list[Lane], started: datetime, *, write: bool) -> int:
    """Print the table (and write it into docs/DETECTION.md); 0 when every goal held."""
    text = table(lanes, started)
    print(text)
    if write:
        report.write_section(BEGIN, END, text)
        print(f"wrote {report.DOC}", file=sys.stderr)
    return 0 if all(r.endswith("| yes |") for lane in lanes for r in rows(lane)) else 1


if __name__ == "__main__":
    sys.exit(main())
