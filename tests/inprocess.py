"""A whole platform in the test's own process, for unit tests: controller → memory bus → invoker → a test executor.

It is standalone as ``pywhisk standalone`` assembles it (``launcher.compose.build_standalone``), with the
test's store, bus, executor and manifest passed in as overrides, and an HTTP client that reaches the app
over ASGI. Not to be confused with the ``platform`` fixture of ``tests/conftest.py``: a real server process.

The ScriptedExecutor picks its behaviour from the action's code ("echo", "error", "timeout", ...). Those
strings are not base64, which the manifest's binary wasm kind demands, so ``MANIFEST`` registers a
non-binary kind ``script:1`` served by the same executor.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import httpx
from fastapi import FastAPI

from launcher.compose import build_standalone
from pywhisk.bus.memory import MemoryBus
from pywhisk.executor import Executor
from pywhisk.identity import GUEST_KEY, GUEST_UUID
from pywhisk.runtimes import RuntimeManifest
from pywhisk.settings import Settings
from pywhisk.store import Store
from tests.doubles import ScriptedExecutor

ACTIONS = "/api/v1/namespaces/_/actions"
ACTIVATIONS = "/api/v1/namespaces/_/activations"
MANIFEST = RuntimeManifest.model_validate(
    {
        "runtimes": {
            "wasm": [
                {"kind": "wasm:wasi", "default": True, "executor": "wasm", "binary": True, "aliases": ["wasm:default"]}
            ],
            "script": [{"kind": "script:1", "default": True, "executor": "wasm"}],
            # Served by an executor this invoker does not have.
            "elsewhere": [{"kind": "elsewhere:1", "default": True, "executor": "docker"}],
        }
    }
)

StoreT = TypeVar("StoreT", bound=Store)
ExecutorT = TypeVar("ExecutorT", bound=ScriptedExecutor)


@dataclass
class InProcessWhisk(Generic[StoreT, ExecutorT]):
    """The running in-process platform: its API as the guest, and the doubles it was built with."""

    api: httpx.AsyncClient
    app: FastAPI
    store: StoreT
    bus: MemoryBus
    executor: ExecutorT

    async def create(self, name: str, code: str = "echo", kind: str = "script:1", **fields: Any) -> dict[str, Any]:
        response = await self.api.put(f"{ACTIONS}/{name}", json={"exec": {"kind": kind, "code": code}, **fields})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def invoke(self, name: str, params: Any = None, query: str = "blocking=true") -> httpx.Response:
        return await self.api.post(f"{ACTIONS}/{name}?{query}", json=params)

    async def record(self, activation_id: str, timeout_s: float = 5.0) -> dict[str, Any]:
        """The stored record, polled until it shows up."""
        deadline = time.monotonic() + timeout_s
        while True:
            response = await self.api.get(f"{ACTIVATIONS}/{activation_id}")
            if response.status_code == 200:
                body: dict[str, Any] = response.json()
                return body
            assert response.status_code == 404, response.text
            assert time.monotonic() < deadline, f"no record for {activation_id}"
            await asyncio.sleep(0.01)

    async def destroyed(self, instance_id: str, timeout_s: float = 2.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while instance_id not in self.executor.destroyed:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.005)
        return True


@asynccontextmanager
async def in_process_whisk(
    settings: Settings, store: StoreT, executor: ExecutorT, *, manifest: RuntimeManifest = MANIFEST
) -> AsyncIterator[InProcessWhisk[StoreT, ExecutorT]]:
    """Standalone from the composition root over ``store``, a memory bus and ``executor`` (as "wasm"),
    started, with its invoker healthy; closed on exit."""
    bus = MemoryBus()
    executors: dict[str, Executor] = {"wasm": executor}
    app = build_standalone(settings, store=store, bus=bus, executors=executors, manifest=manifest)
    async with app.router.lifespan_context(app):
        assert await app.state.balancer.wait_for_invoker(5), "the in-process invoker never reported healthy"
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://whisk.test", auth=(GUEST_UUID, GUEST_KEY)
        ) as api:
            yield InProcessWhisk(api, app, store, bus, executor)


async def until(condition: Callable[[], bool], what: str, timeout_s: float = 5.0) -> None:
    """Wait for ``condition`` with a deadline (no sleep as synchronisation); fails with ``what`` past it."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(0.005)
