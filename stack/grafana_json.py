"""Building blocks of Grafana dashboard JSON: panels, queries, thresholds, one datasource."""

from __future__ import annotations

from typing import Any

from exporter.assess import Status

DATASOURCE_UID = "ecm-prometheus"
DATASOURCE = {"type": "prometheus", "uid": DATASOURCE_UID}
# Grafana 10.4's schema version: the pinned image reads these files without migrating them.
SCHEMA_VERSION = 39

_STATUS_COLORS = {Status.OK: "green", Status.WARN: "orange", Status.ALERT: "red"}
# The exporter's window classification (ecm_window_status), as the exporter defines it.
STATUS_MAPPINGS = [
    {
        "type": "value",
        "options": {
            str(int(st)): {"text": st.name, "color": color, "index": int(st)}
            for st, color in _STATUS_COLORS.items()
        },
    }
]


def target(expr: str, legend: str = "", *, ref: str = "A", table: bool = False) -> dict[str, Any]:
    """One Prometheus query of a panel; table queries are instant."""
    t: dict[str, Any] = {"datasource": DATASOURCE, "refId": ref, "expr": expr}
    if table:
        t |= {"instant": True, "range": False, "format": "table"}
    else:
        t |= {"range": True, "legendFormat": legend or "__auto"}
    return t


def query_variable(name: str, label: str, query: str) -> dict[str, Any]:
    """A single-choice template variable filled by a Prometheus query (label_values(...))."""
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "definition": query,
        "query": {"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
        "refresh": 2,
        "sort": 3,
        "multi": False,
        "includeAll": False,
        "current": {},
        "options": [],
        "hide": 0,
    }


def thresholds(*steps: tuple[float, str]) -> dict[str, Any]:
    """Absolute thresholds starting green."""
    return {
        "mode": "absolute",
        "steps": [{"color": "green", "value": None}] + [{"color": c, "value": v} for v, c in steps],
    }


def panel(
    pid: int,
    kind: str,
    title: str,
    description: str,
    unit: str,
    pos: tuple[int, int, int, int],
    targets: list[dict[str, Any]],
    *,
    defaults: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
    overrides: list[dict[str, Any]] | None = None,
    transformations: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A panel with its datasource, unit and grid position (x, y, w, h)."""
    x, y, w, h = pos
    p: dict[str, Any] = {
        "id": pid,
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "fieldConfig": {
            "defaults": {"unit": unit, **(defaults or {})},
            "overrides": overrides or [],
        },
        "options": options or {},
        "targets": targets,
    }
    if transformations:
        p["transformations"] = transformations
    return p


def stat(
    pid: int, title: str, description: str, unit: str, x: int, expr: str, **kw: Any
) -> dict[str, Any]:
    legend = kw.pop("legend", "")
    # A stat is 6 x 5 cells at column x of row y (the top row unless given).
    y = kw.pop("y", 0)
    return panel(
        pid,
        "stat",
        title,
        description,
        unit,
        (x, y, 6, 5),
        [target(expr, legend)],
        options={
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "background",
            "graphMode": "area",
            "textMode": "auto",
        },
        **kw,
    )


def series(
    pid: int,
    title: str,
    description: str,
    unit: str,
    pos: tuple[int, int, int, int],
    targets: list[dict[str, Any]],
    *,
    stacked: bool = False,
    defaults: dict[str, Any] | None = None,
) -> dict[str, Any]:
    custom: dict[str, Any] = {
        "drawStyle": "line",
        "lineWidth": 1,
        "fillOpacity": 10,
        "showPoints": "never",
        "spanNulls": False,
    }
    if stacked:
        custom |= {"stacking": {"mode": "normal", "group": "A"}, "fillOpacity": 60}
    return panel(
        pid,
        "timeseries",
        title,
        description,
        unit,
        pos,
        targets,
        defaults={"custom": custom, **(defaults or {})},
        options={
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    )


def alerts_table(
    pid: int, title: str, description: str, pos: tuple[int, int, int, int], expr: str
) -> dict[str, Any]:
    return panel(
        pid,
        "table",
        title,
        description,
        "none",
        pos,
        [target(expr, table=True)],
        options={"showHeader": True, "footer": {"show": False}},
        transformations=[
            {
                "id": "organize",
                "options": {
                    "excludeByName": {
                        "Time": True,
                        "Value": True,
                        "__name__": True,
                        "alertstate": True,
                    },
                    "indexByName": {"alertname": 0, "severity": 1, "tower": 2, "window": 3},
                },
            }
        ],
    )


def dashboard(
    uid: str,
    title: str,
    description: str,
    panels: list[dict[str, Any]],
    templating: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "id": None,
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["ecm"],
        "timezone": "browser",
        "editable": False,
        "graphTooltip": 1,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "links": [
            {
                "type": "dashboards",
                "tags": ["ecm"],
                "asDropdown": False,
                "title": "ECM dashboards",
                "includeVars": False,
                "keepTime": True,
            }
        ],
        "annotations": {"list": []},
        "templating": {"list": templating or []},
        "panels": panels,
    }
