"""Grafana dashboard "RAN PM" on the PostgreSQL datasource (the read-only ecm_grafana login),
built as JSON from code into grafana/dashboards/sql/ (the Prometheus dashboards' folder holds
Prometheus dashboards only; Grafana's file provider reads the subfolder too).

Every panel reads the 5-minute rollups (pm_kpi_5m_total, pm_kpi_5m_cells) or pm_cells, never
raw pm_events, so a 24-hour query costs 288 rows overall, or cells x 288. Thresholds come from
ecm_common/slo_pm.py. `python -m stack.dashboards_pm` writes the file; `--check` exits 1 when
the committed one differs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ecm_common import cli
from ecm_common.slo_pm import PM_SLO, VENDOR_PERIOD_S, PmSlo
from stack import generated
from stack.grafana_json import dashboard, panel, series, thresholds
from stack.rules import num

ROOT = Path(__file__).resolve().parents[1]
SQL_DASHBOARDS_DIR = ROOT / "grafana" / "dashboards" / "sql"
PM_UID = "ecm-ran-pm"
PG_DATASOURCE_UID = "ecm-postgres"
PG_DATASOURCE = {"type": "postgres", "uid": PG_DATASOURCE_UID}
TOP_N = 10
# Cells offered by the `cell` variable: the list stays bounded with 100,000 cells.
MAX_CELL_CHOICES = 1000

AVG_DL = "dl_prb_util_sum / NULLIF(dl_prb_util_n, 0)"
AVG_DROP = "drop_rate_sum / NULLIF(drop_rate_n, 0)"


def sql(raw: str, ref: str = "A", *, table: bool = False) -> dict[str, Any]:
    """One SQL query of a panel (Grafana macros such as $__timeFilter expanded by Grafana)."""
    return {
        "datasource": PG_DATASOURCE,
        "refId": ref,
        "editorMode": "code",
        "rawQuery": True,
        "format": "table" if table else "time_series",
        "rawSql": " ".join(raw.split()),
    }


def _on_pg(p: dict[str, Any]) -> dict[str, Any]:
    p["datasource"] = PG_DATASOURCE
    return p


def _pct_steps(warn: float, alert: float) -> dict[str, Any]:
    return {
        "thresholds": thresholds((warn * 100, "orange"), (alert * 100, "red")),
        "custom": {
            "drawStyle": "line",
            "lineWidth": 1,
            "fillOpacity": 10,
            "showPoints": "never",
            "spanNulls": False,
            "thresholdsStyle": {"mode": "line"},
        },
        "min": 0,
    }


def ran_pm(slo: PmSlo = PM_SLO, period_s: float = VENDOR_PERIOD_S) -> dict[str, Any]:
    """Dashboard "RAN PM": DL utilisation overall and per cell, busiest cells, drops, silence."""
    silent_s = int(slo.silent_periods * period_s)
    cell_filter = "entity_id IN ($cell)"
    variable = {
        "name": "cell",
        "label": "Cell",
        "type": "query",
        "datasource": PG_DATASOURCE,
        "definition": f"SELECT entity_id FROM pm_cells ORDER BY entity_id LIMIT {MAX_CELL_CHOICES}",
        "query": f"SELECT entity_id FROM pm_cells ORDER BY entity_id LIMIT {MAX_CELL_CHOICES}",
        "refresh": 2,
        "sort": 1,
        "multi": True,
        "includeAll": False,
        "current": {},
        "options": [],
        "hide": 0,
    }
    dl = series(
        1,
        "Average DL PRB utilisation",
        "Average downlink PRB utilisation per 5-minute bucket: all cells, and the cells chosen "
        f"above. Lines at {num(slo.warn_prb_util_ratio * 100)}% (warning for two periods) and "
        f"{num(slo.alert_prb_util_ratio * 100)}% (critical).",
        "percent",
        (0, 0, 16, 9),
        [
            sql(
                f"""SELECT bucket AS "time", {AVG_DL} AS "all cells" FROM pm_kpi_5m_total
                 WHERE $__timeFilter(bucket) ORDER BY 1"""
            ),
            sql(
                f"""SELECT bucket AS "time", entity_id AS metric, {AVG_DL} AS value
                  FROM pm_kpi_5m_cells WHERE $__timeFilter(bucket) AND {cell_filter}
                 ORDER BY 1, 2""",
                "B",
            ),
        ],
        defaults=_pct_steps(slo.warn_prb_util_ratio, slo.alert_prb_util_ratio),
    )
    events = series(
        2,
        "PM events per 5 minutes",
        "PM events folded into each 5-minute bucket (one per cell per granularity period): "
        "a drop means cells or the PM feed went quiet.",
        "short",
        (16, 0, 8, 9),
        [
            sql(
                """SELECT bucket AS "time", samples AS "events" FROM pm_kpi_5m_total
                 WHERE $__timeFilter(bucket) ORDER BY 1"""
            )
        ],
    )
    busiest = panel(
        3,
        "table",
        "Busiest cells",
        f"The {TOP_N} cells with the highest average downlink PRB utilisation over the time "
        "range, with their peak 5-minute bucket, connected users and drop rate.",
        "none",
        (0, 9, 12, 9),
        [
            sql(
                f"""SELECT entity_id AS "Cell",
                       sum(dl_prb_util_sum) / NULLIF(sum(dl_prb_util_n), 0) AS "DL PRB %",
                       max(dl_prb_util_max) AS "Peak DL PRB %",
                       sum(rrc_conn_sum) / NULLIF(sum(rrc_conn_n), 0) AS "RRC users",
                       sum(drop_rate_sum) / NULLIF(sum(drop_rate_n), 0) AS "Drop %",
                       sum(samples) AS "Events"
                  FROM pm_kpi_5m_cells WHERE $__timeFilter(bucket)
                 GROUP BY entity_id ORDER BY 2 DESC NULLS LAST, 1 LIMIT {TOP_N}""",
                table=True,
            )
        ],
        defaults={"decimals": 1},
        options={"showHeader": True, "footer": {"show": False}},
    )
    drops = series(
        4,
        "Drop rate",
        "Average drop rate per 5-minute bucket: all cells, and the cells chosen above. Lines "
        f"at {num(slo.warn_drop_ratio * 100)}% (warning) and {num(slo.alert_drop_ratio * 100)}% "
        "(critical).",
        "percent",
        (12, 9, 12, 9),
        [
            sql(
                f"""SELECT bucket AS "time", {AVG_DROP} AS "all cells" FROM pm_kpi_5m_total
                 WHERE $__timeFilter(bucket) ORDER BY 1"""
            ),
            sql(
                f"""SELECT bucket AS "time", entity_id AS metric, {AVG_DROP} AS value
                  FROM pm_kpi_5m_cells WHERE $__timeFilter(bucket) AND {cell_filter}
                 ORDER BY 1, 2""",
                "B",
            ),
        ],
        defaults=_pct_steps(slo.warn_drop_ratio, slo.alert_drop_ratio),
    )
    silent_count = panel(
        5,
        "stat",
        "Silent cells",
        f"Cells with no PM event for {slo.silent_periods} periods ({silent_s} s); "
        f"{slo.tower_cells} at once is a tower's worth (critical).",
        "none",
        (0, 18, 6, 7),
        [
            sql(
                f"""SELECT count(*) AS "silent cells" FROM pm_cells
                 WHERE last_event_time < now() - interval '{silent_s} seconds'""",
                table=True,
            )
        ],
        defaults={"thresholds": thresholds((1, "orange"), (slo.tower_cells, "red"))},
        options={
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "background",
            "graphMode": "none",
            "textMode": "auto",
        },
    )
    silent_list = panel(
        6,
        "table",
        "Silent cells, most recently silent first",
        f"Cells whose latest PM event is older than {silent_s} s (at most 50 shown).",
        "none",
        (6, 18, 18, 7),
        [
            sql(
                f"""SELECT entity_id AS "Cell", last_event_time AS "Last event",
                       events AS "Events ever"
                  FROM pm_cells WHERE last_event_time < now() - interval '{silent_s} seconds'
                 ORDER BY last_event_time DESC, entity_id LIMIT 50""",
                table=True,
            )
        ],
        options={"showHeader": True, "footer": {"show": False}},
    )
    panels = [_on_pg(p) for p in (dl, events, busiest, drops, silent_count, silent_list)]
    doc = dashboard(
        PM_UID,
        "RAN PM",
        "RAN performance counters posted to the ECM API, from the 5-minute KPI rollups in "
        "PostgreSQL.",
        panels,
        [variable],
    )
    doc["time"] = {"from": "now-6h", "to": "now"}
    return doc


def render() -> dict[str, str]:
    """File name to JSON text."""
    d = ran_pm()
    return {f"{d['uid']}.json": json.dumps(d, indent=2, ensure_ascii=False) + "\n"}


def stale_files(out_dir: Path = SQL_DASHBOARDS_DIR) -> list[str]:
    """Names of committed dashboards that differ from the rendering (missing ones included)."""
    return generated.stale(render(), out_dir)


def main(argv: list[str] | None = None) -> int:
    """Write the dashboard, or check that it is up to date."""
    ap = argparse.ArgumentParser(prog="python -m stack.dashboards_pm", description=__doc__)
    ap.add_argument("--out-dir", type=Path, default=SQL_DASHBOARDS_DIR)
    ap.add_argument("--check", action="store_true", help="exit 1 when the file is not up to date")
    ns = ap.parse_args(argv)
    return generated.write_or_check(render(), ns.out_dir, check=ns.check, target="dashboards")


if __name__ == "__main__":
    sys.exit(cli.run(main, "stack.dashboards_pm"))
