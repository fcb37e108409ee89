"""Work the frameworks leave to the first request that needs it, done while the controller starts instead.

Each of these ran on the event loop in the middle of traffic, the first time some request reached it, and every
request of every namespace waited meanwhile (a watchdog on the loop during ``loadgen isolation --attacks flood``,
issue 12):

- FastAPI (0.16x) builds the routes of an included router -- their parameters' pydantic schemas -- when a request
  first reaches that router: 115-130 ms when another namespace's first ``PUT`` of an action arrived.
- anyio imports its asyncio backend at the first use of one of its primitives (httpx's connection pool makes
  one for each request): ~30 ms at the first request to a container's proxy.

Both are built here, once, before the server accepts a connection. Each step looks for what it builds and does
nothing on a release of the library that no longer defers it.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
from fastapi import FastAPI

log = logging.getLogger("pywhisk.controller.warmup")


def warm_up(app: FastAPI) -> None:
    """Build what the first requests would otherwise build on the event loop (module docstring)."""
    routers = build_included_routes(app.router.routes)
    anyio.Event()  # imports the backend, in the running loop, as httpx's first request would
    log.debug("built the routes of %d included routers ahead of the first request", routers)


def build_included_routes(routes: list[Any]) -> int:
    """Build the effective routes of every included router in ``routes``, nested ones too; how many."""
    built = 0
    pending = list(routes)
    while pending:
        route = pending.pop()
        candidates = getattr(route, "effective_candidates", None)
        if not callable(candidates):
            continue
        built += 1
        pending.extend(candidates())
        low_priority = getattr(route, "effective_low_priority_routes", None)
        if callable(low_priority):
            low_priority()
    return built
