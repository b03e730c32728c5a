"""A tiny service built with the app factory, as each ECM service is: routes and logic only.

The tests serve it in-process (ecm_common.service.BackgroundServer) and as a child process
(`python -m tests.ecm_common.service_app PORT`, JSON logs, graceful SIGTERM).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, FastAPI
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, Field, SecretStr

from ecm_common.logs import setup_logging
from ecm_common.service import (
    HttpSettings,
    ReadyCheck,
    RequireToken,
    bearer_token,
    create_app,
    load_token,
    serve,
)

TOKEN_ENV = "ECM_TINY_TOKEN"
# /wait writes GATE_DIR/started, then answers once GATE_DIR/release exists.
GATE_ENV = "ECM_TINY_GATE_DIR"
GATE_WAIT_S = 20.0


class Item(BaseModel):
    """What POST /items takes."""

    name: Annotated[str, Field(max_length=50)]
    quantity: Annotated[int, Field(ge=0)]


def build(
    registry: CollectorRegistry,
    *,
    settings: HttpSettings | None = None,
    token: SecretStr | None = None,
    admin_token: SecretStr | None = None,
    ready_check: ReadyCheck | None = None,
) -> FastAPI:
    """The tiny app on this registry; /admin takes admin_token, a second token."""
    router = APIRouter()

    @router.get("/items/{item_id}")
    async def get_item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @router.post("/items", status_code=201, dependencies=[RequireToken])
    async def add_item(item: Item) -> dict[str, str]:
        return {"added": item.name}

    @router.delete("/items/{item_id}", dependencies=[bearer_token(admin_token)])
    async def delete_item(item_id: int) -> dict[str, int]:
        return {"deleted": item_id}

    @router.get("/boom")
    async def boom() -> None:
        raise RuntimeError("internal state the client must not see")

    @router.get("/wait")
    async def wait() -> dict[str, bool]:
        gate = Path(os.environ[GATE_ENV])
        (gate / "started").touch()
        deadline = time.monotonic() + GATE_WAIT_S
        while not (gate / "release").exists() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        return {"released": (gate / "release").exists()}

    return create_app(
        "tiny",
        registry=registry,
        settings=settings,
        token=token,
        ready_check=ready_check,
        routers=[router],
    )


def main() -> None:
    """Serve on the port given as the only argument, with JSON logs."""
    setup_logging("DEBUG", "json")
    settings = HttpSettings(port=int(sys.argv[1]))
    serve(build(CollectorRegistry(), settings=settings, token=load_token(TOKEN_ENV)), settings)


if __name__ == "__main__":
    main()
