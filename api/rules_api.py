"""Alert rules at run time: POST/GET/PUT/DELETE /v1/rules, stored in alert_rules (every change
versioned in alert_rule_versions), rendered into the user rules file (api/rules_render.py).

A change is one transaction that holds the table lock while the file is checked, written and
reloaded: the file always matches the committed rules, and a rule promtool or Prometheus refuses
is answered 422 with the reason while the table and the previous file stay as they were.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Annotated, Any, LiteralString

import anyio
import psycopg
from fastapi import APIRouter, Header, Path, Query
from psycopg.types.json import Jsonb

from api import rules_preview
from api.reader import Reader
from api.rules_model import RuleSpec
from api.rules_render import RuleRejected, RulesFile, render
from ecm_common.db import CONNECT_TIMEOUT_S, describe
from ecm_common.errors import EcmError
from ecm_common.service import Problem, RequireToken

log = logging.getLogger(__name__)

MAX_RULES = 500
RuleId = Annotated[int, Path(ge=1, le=2**62)]
Actor = Annotated[str, Header(alias="X-ECM-Actor", max_length=64, pattern=r"^[\w.@:-]+$")]

_COLUMNS: LiteralString = "rule_id, spec, version, created_at, updated_at, updated_by"
_ALL = "SELECT " + _COLUMNS + " FROM alert_rules ORDER BY rule_id"
_ONE = "SELECT " + _COLUMNS + " FROM alert_rules WHERE rule_id = %(id)s"
_INSERT = (
    "INSERT INTO alert_rules (name, spec, enabled, updated_by)"
    " VALUES (%(name)s, %(spec)s, %(enabled)s, %(who)s) RETURNING rule_id, version"
)
_UPDATE = (
    "UPDATE alert_rules SET name = %(name)s, spec = %(spec)s, enabled = %(enabled)s,"
    " version = version + 1, updated_at = now(), updated_by = %(who)s"
    " WHERE rule_id = %(id)s RETURNING rule_id, version"
)
_DELETE = "DELETE FROM alert_rules WHERE rule_id = %(id)s RETURNING rule_id, version + 1"
_VERSION = (
    "INSERT INTO alert_rule_versions (rule_id, version, action, spec, changed_by)"
    " VALUES (%(id)s, %(version)s, %(action)s, %(spec)s, %(who)s)"
)
_VERSIONS = (
    "SELECT version, action, spec, changed_by, changed_at FROM alert_rule_versions"
    " WHERE rule_id = %(id)s ORDER BY version"
)
_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "a bearer token is required or not valid"},
    404: {"description": "no rule with this id"},
    409: {"description": "another rule has this name, or the rule limit is reached"},
    422: {"description": "the rule is malformed, or promtool/Prometheus refused it (reason)"},
    503: {"description": "database unavailable, or no rules directory configured"},
}


class Rules:
    """The rules table and the file rendered from it; one change at a time."""

    def __init__(
        self, url: str, *, timeout_s: float, file: RulesFile | None, runbook_base_url: str
    ) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.file = file
        self.runbook_base_url = runbook_base_url
        self.lock = threading.Lock()

    def _connect(self) -> psycopg.Connection:
        try:
            return psycopg.connect(
                self.url,
                connect_timeout=CONNECT_TIMEOUT_S,
                application_name="ecm-api-rules",
                options=f"-c statement_timeout={int(self.timeout_s * 1000)}",
            )
        except psycopg.OperationalError as exc:
            raise Problem(503, f"database unavailable: {describe(exc)}") from None

    def get(self, rule_id: int) -> dict[str, Any]:
        """One rule; 404 when there is none."""
        with self._connect() as conn:
            row = conn.execute(_ONE, {"id": rule_id}).fetchone()
        if row is None:
            raise _missing(rule_id)
        return _out(row)

    def sync(self) -> None:
        """At start-up: write the file from the table when it differs (a new rules directory,
        a file lost with a volume); a failure is a warning, the API serves anyway."""
        if self.file is None:
            return
        try:
            with self.lock, self._connect() as conn:
                rows = conn.execute(_ALL).fetchall()
                text = render([(r[0], RuleSpec.model_validate(r[1])) for r in rows],
                              self.runbook_base_url)  # fmt: skip
                if self.file.current() != text:
                    log.info("user rules file rewritten from %d rules", len(rows))
                    self.file.install(text)
        except (Problem, RuleRejected, psycopg.Error, OSError) as exc:
            log.warning("could not write the user rules file at start-up: %s", exc)

    def status(self, rule: dict[str, Any]) -> dict[str, Any]:
        """Whether Prometheus has the rule loaded, and its state (inactive, pending, firing)."""
        rule_id = rule["rule_id"]
        if self.file is None or self.file.prometheus_url is None:
            raise Problem(503, "no prometheus_url configured: the rule's state is unknown")
        try:
            loaded = self.file.loaded_rule(rule["alert"])
        except EcmError as exc:
            raise Problem(503, str(exc)) from None
        out: dict[str, Any] = {
            "rule_id": rule_id,
            "alert": rule["alert"],
            "enabled": rule["enabled"],
            "loaded": loaded is not None,
        }
        if loaded is not None:
            out.update(
                state=loaded.get("state"),
                health=loaded.get("health"),
                last_error=loaded.get("lastError") or None,
                last_evaluation=loaded.get("lastEvaluation"),
                active_alerts=[a.get("labels", {}) for a in loaded.get("alerts", [])],
            )
        return out

    def preview(self, spec: RuleSpec, hours: float) -> dict[str, Any]:
        """The rule's dry run in Prometheus (api/rules_preview.py)."""
        if self.file is None or self.file.prometheus_url is None:
            raise Problem(503, "no prometheus_url configured: nothing to evaluate the rule")
        try:
            return rules_preview.preview(self.file.prometheus_url, spec, hours)
        except EcmError as exc:
            raise Problem(503, str(exc)) from None

    def create(self, spec: RuleSpec, who: str) -> dict[str, Any]:
        """Store a new rule and install the file."""
        return self._change(lambda conn: _write(conn, _INSERT, "create", spec, who, None))

    def update(self, rule_id: int, spec: RuleSpec, who: str) -> dict[str, Any]:
        """Replace a rule and install the file."""
        return self._change(lambda conn: _write(conn, _UPDATE, "update", spec, who, rule_id))

    def delete(self, rule_id: int, who: str) -> dict[str, Any]:
        """Delete a rule and install the file."""

        def gone(conn: psycopg.Connection) -> int:
            before = conn.execute(_ONE, {"id": rule_id}).fetchone()
            if before is None:
                raise _missing(rule_id)
            row = conn.execute(_DELETE, {"id": rule_id}).fetchone()
            assert row is not None
            params = {"id": rule_id, "version": row[1], "action": "delete", "who": who}
            conn.execute(_VERSION, {**params, "spec": Jsonb(before[1])})
            return rule_id

        return self._change(gone, deleted=True)

    def _change(
        self, apply: Callable[[psycopg.Connection], int], *, deleted: bool = False
    ) -> dict[str, Any]:
        if self.file is None:
            raise Problem(503, "no rules directory configured (rules_dir): rules are read-only")
        file = self.file
        with self.lock, self._connect() as conn:
            try:
                with conn.transaction():
                    # One change at a time across replicas; readers are not blocked.
                    conn.execute("LOCK TABLE alert_rules IN EXCLUSIVE MODE")
                    rule_id = apply(conn)
                    rows = conn.execute(_ALL).fetchall()
                    if len(rows) > MAX_RULES:
                        raise Problem(409, f"at most {MAX_RULES} rules")
                    specs = [(r[0], RuleSpec.model_validate(r[1])) for r in rows]
                    previous = file.current()
                    reload = file.install(render(specs, self.runbook_base_url))
            except RuleRejected as exc:
                raise Problem(422, str(exc)) from None
            except psycopg.errors.UniqueViolation:
                raise Problem(409, "another rule has this name") from None
            except psycopg.Error as exc:
                if "previous" in locals():
                    file.restore(previous)
                raise Problem(503, f"database unavailable: {describe(exc)}") from None
        if deleted:
            return {"rule_id": rule_id, "deleted": True, "prometheus": reload}
        return {**self.get(rule_id), "prometheus": reload}


def _write(
    conn: psycopg.Connection,
    statement: LiteralString,
    action: str,
    spec: RuleSpec,
    who: str,
    rule_id: int | None,
) -> int:
    doc = spec.model_dump(by_alias=True, mode="json")
    params = {"name": spec.name, "spec": Jsonb(doc), "enabled": spec.enabled, "who": who}
    row = conn.execute(statement, {**params, "id": rule_id}).fetchone()
    if row is None:
        raise _missing(rule_id)
    version = {"id": row[0], "version": row[1], "action": action, "who": who, "spec": Jsonb(doc)}
    conn.execute(_VERSION, version)
    return int(row[0])


def _missing(rule_id: int | None) -> Problem:
    """The 404 of a rule id that names no rule."""
    return Problem(404, f"no rule with id {rule_id}")


def _out(row: tuple[Any, ...]) -> dict[str, Any]:
    rule_id, doc, version, created, updated, who = row
    spec = RuleSpec.model_validate(doc)
    return {
        "rule_id": rule_id,
        **spec.model_dump(by_alias=True, mode="json"),
        "alert": spec.alert,
        "expr": spec.expr(),
        "version": version,
        "created_at": created,
        "updated_at": updated,
        "updated_by": who,
    }


async def _read_one(reader: Reader, rule_id: int) -> dict[str, Any]:
    """One rule through the reader pool; 404 when there is none."""
    rows = await reader.rows(_ONE, {"id": rule_id})
    if not rows:
        raise _missing(rule_id)
    return _out(rows[0])


def rules_router(rules: Rules, reader: Reader, guard: Sequence[Any] = ()) -> APIRouter:
    """The router of /v1/rules; reads go through the reader pool (bounded connections), writes
    through the rules' own login. guard: the read scope's dependency (writes also need the
    write token)."""
    router = APIRouter(tags=["rules"], dependencies=list(guard))
    auth = [RequireToken]

    @router.get("/v1/rules", summary="Every alert rule")
    async def list_rules() -> list[dict[str, Any]]:
        return [_out(r) for r in await reader.rows(_ALL, {})]

    @router.get("/v1/rules/{rule_id}", summary="One alert rule", responses=_RESPONSES)
    async def get_rule(rule_id: RuleId) -> dict[str, Any]:
        return await _read_one(reader, rule_id)

    @router.get(
        "/v1/rules/{rule_id}/versions",
        summary="Who changed a rule, what, when",
        responses=_RESPONSES,
    )
    async def rule_versions(rule_id: RuleId) -> list[dict[str, Any]]:
        rows = await reader.rows(_VERSIONS, {"id": rule_id})
        if not rows:
            raise _missing(rule_id)
        return [
            {"version": v, "action": a, "rule": s, "changed_by": w, "changed_at": t}
            for v, a, s, w, t in rows
        ]

    @router.get(
        "/v1/rules/{rule_id}/status",
        summary="Is the rule loaded in Prometheus, and is it firing",
        responses=_RESPONSES,
    )
    async def rule_status(rule_id: RuleId) -> dict[str, Any]:
        rule = await _read_one(reader, rule_id)
        return await anyio.to_thread.run_sync(rules.status, rule)

    @router.post(
        "/v1/rules/preview",
        summary="Dry run: when the rule would have fired over the last hours",
        responses=_RESPONSES,
    )
    async def preview_rule(
        spec: RuleSpec, hours: Annotated[float, Query(gt=0, le=24)] = 3.0
    ) -> dict[str, Any]:
        return await anyio.to_thread.run_sync(rules.preview, spec, hours)

    @router.post(
        "/v1/rules",
        summary="Add an alert rule (write token)",
        status_code=201,
        dependencies=auth,
        responses=_RESPONSES,
    )
    async def add_rule(spec: RuleSpec, actor: Actor = "api-token") -> dict[str, Any]:
        return await anyio.to_thread.run_sync(rules.create, spec, actor)

    @router.put(
        "/v1/rules/{rule_id}",
        summary="Replace an alert rule (write token)",
        dependencies=auth,
        responses=_RESPONSES,
    )
    async def put_rule(
        rule_id: RuleId, spec: RuleSpec, actor: Actor = "api-token"
    ) -> dict[str, Any]:
        return await anyio.to_thread.run_sync(rules.update, rule_id, spec, actor)

    @router.delete(
        "/v1/rules/{rule_id}",
        summary="Delete an alert rule (write token)",
        dependencies=auth,
        responses=_RESPONSES,
    )
    async def delete_rule(rule_id: RuleId, actor: Actor = "api-token") -> dict[str, Any]:
        return await anyio.to_thread.run_sync(rules.delete, rule_id, actor)

    return router
