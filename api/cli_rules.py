"""`ecm-api rules list|add|rm` and `ecm-api rebuild-rollups`: the common actions, over the same
HTTP API a client uses (the write token from ECM_API_TOKEN or ECM_API_TOKEN_FILE)."""

from __future__ import annotations

import json
import sys
from typing import Any

import requests
import yaml

from api.config import DEFAULT_PORT, TOKEN_ENV
from ecm_common.cli import Parser
from ecm_common.config import read_text
from ecm_common.errors import ConfigError, EcmError
from ecm_common.service import load_token

COMMANDS = ("rules", "rebuild-rollups")
DEFAULT_URL = f"http://127.0.0.1:{DEFAULT_PORT}"
TIMEOUT_S = 30.0
MAX_RULE_FILE_BYTES = 64 * 1024


def is_command(argv: list[str]) -> bool:
    """Does this command line name a subcommand (first, or after --api-url URL)?"""
    rest = argv[2:] if argv[:1] == ["--api-url"] else argv
    return bool(rest) and rest[0] in COMMANDS


def build_parser(prog: str) -> Parser:
    """The subcommands' flags."""
    p = Parser(prog=prog, description=__doc__, allow_abbrev=False)
    p.add_argument("--api-url", default=DEFAULT_URL, help=f"the API (default {DEFAULT_URL})")
    sub = p.add_subparsers(dest="command", required=True)
    rules = sub.add_parser("rules", help="alert rules").add_subparsers(dest="action", required=True)
    rules.add_parser("list", help="print every rule: id, alert, severity, enabled, expr")
    add = rules.add_parser("add", help="add a rule from a JSON or YAML file ('-': stdin)")
    add.add_argument("file")
    rm = rules.add_parser("rm", help="delete a rule by id")
    rm.add_argument("rule_id", type=int)
    sub.add_parser("rebuild-rollups", help="rebuild the call rollups from the raw calls")
    return p


def main(argv: list[str], prog: str) -> int:
    """Run one subcommand; problems are one line (EcmError)."""
    args = build_parser(prog).parse_args(argv)
    base = args.api_url.rstrip("/")
    token = load_token(TOKEN_ENV)
    headers = {"Authorization": f"Bearer {token.get_secret_value()}"} if token else {}
    if args.command == "rebuild-rollups":
        print(_call("POST", f"{base}/v1/analytics/rebuild", headers)["status"])
        return 0
    if args.action == "list":
        for r in _call("GET", f"{base}/v1/rules", headers):
            state = "enabled" if r["enabled"] else "disabled"
            print(f"{r['rule_id']}\t{r['alert']}\t{r['severity']}\t{state}\t{r['expr']}")
        return 0
    if args.action == "add":
        text = sys.stdin.read(MAX_RULE_FILE_BYTES + 1) if args.file == "-" else None
        if text is None:
            text = read_text(args.file, what="the rule file", limit=MAX_RULE_FILE_BYTES)
        if len(text) > MAX_RULE_FILE_BYTES:
            raise ConfigError(f"the rule is over {MAX_RULE_FILE_BYTES} bytes")
        try:
            rule = yaml.safe_load(text)
        except yaml.YAMLError:
            raise ConfigError(f"{args.file}: not JSON or YAML") from None
        out = _call("POST", f"{base}/v1/rules", headers, rule)
        print(f"{out['rule_id']}\t{out['alert']}\tprometheus: {out['prometheus']}")
        return 0
    out = _call("DELETE", f"{base}/v1/rules/{args.rule_id}", headers)
    print(f"deleted {out['rule_id']}\tprometheus: {out['prometheus']}")
    return 0


def _call(method: str, url: str, headers: dict[str, str], body: Any = None) -> Any:
    try:
        resp = requests.request(method, url, headers=headers, json=body, timeout=TIMEOUT_S)
    except requests.RequestException as exc:
        where = url.split("/v1/")[0]
        raise EcmError(f"cannot reach the API at {where}: {type(exc).__name__}") from None
    if resp.status_code >= 400:
        try:
            detail = json.loads(resp.text).get("detail", resp.reason)
        except (ValueError, AttributeError):
            detail = resp.reason
        error = ConfigError if resp.status_code in (400, 404, 409, 422) else EcmError
        raise error(f"{resp.status_code}: {detail}")
    return resp.json()
