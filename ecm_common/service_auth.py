"""Bearer tokens for ECM HTTP services: read from the environment or a file, compared in
constant time, never logged (a SecretStr prints as '**********')."""

from __future__ import annotations

import hmac
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr

from ecm_common.config import read_text
from ecm_common.errors import ConfigError
from ecm_common.service_errors import Problem

_scheme = HTTPBearer(auto_error=False, description="Authorization: Bearer <token>")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_scheme)]


def load_token(name: str, environ: Mapping[str, str] | None = None) -> SecretStr | None:
    """The token in $name, or in the file named by ${name}_FILE (Docker secrets); None if neither.

    Setting both, an unreadable or empty file is a ConfigError that names the variable and the
    file, never the token.
    """
    env = os.environ if environ is None else environ
    value, file_name = env.get(name, ""), env.get(f"{name}_FILE", "")
    if value and file_name:
        raise ConfigError(f"set {name} or {name}_FILE, not both")
    if file_name:
        value = read_text(file_name, what=f"the token file in {name}_FILE").strip()
        if not value:
            raise ConfigError(f"{file_name}: the token file in {name}_FILE is empty")
    return SecretStr(value) if value else None


def bearer_token(token: SecretStr | None) -> Any:
    """A dependency for routes that need `Authorization: Bearer <token>`; None lets all through.

    Use as `dependencies=[bearer_token(t)]` on a route or router; one per token (read, write,
    the token Alertmanager uses).
    """
    return Depends(_checker(lambda request: [token] if token else []))


def any_bearer_token(*tokens: SecretStr | None) -> Any:
    """Like bearer_token, letting through any of the tokens that are set (a read scope that the
    write token also holds); none set lets all through."""
    given = [t for t in tokens if t is not None]
    return Depends(_checker(lambda request: given))


def _app_token(request: Request) -> list[SecretStr]:
    token: SecretStr | None = request.app.state.ecm_token
    return [token] if token else []


def _checker(
    get_tokens: Callable[[Request], list[SecretStr]],
) -> Callable[[Request, Credentials], Awaitable[None]]:
    async def check(request: Request, credentials: Credentials) -> None:
        tokens = get_tokens(request)
        if not tokens:
            return
        if credentials is None:
            raise Problem(401, "a bearer token is required", headers={"WWW-Authenticate": "Bearer"})
        given = credentials.credentials.encode("utf-8", errors="replace")
        # Every token is compared, so the time taken does not tell which one nearly matched.
        matches = [hmac.compare_digest(given, t.get_secret_value().encode("utf-8")) for t in tokens]
        if not any(matches):
            raise Problem(
                401,
                "the bearer token is not valid",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )

    return check


# The token given to create_app(token=...): `dependencies=[RequireToken]` on the routes it guards.
RequireToken: Any = Depends(_checker(_app_token))
