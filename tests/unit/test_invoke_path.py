"""The invoke route served ahead of FastAPI's layers (controller/app.py ``ControllerApp``): it must answer
exactly as the framework's route did, errors included (the rest of the HTTP surface is in test_middleware.py)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from launcher.compose import build_standalone
from pywhisk.bus.memory import MemoryBus
from pywhisk.entities import Action
from pywhisk.identity import GUEST_KEY, GUEST_UUID
from pywhisk.settings import Settings
from pywhisk.store.sqlite import SqliteStore
from tests.doubles import ScriptedExecutor

pytestmark = pytest.mark.unit

ACTIONS = "/api/v1/namespaces/_/actions"
EXEC = {"kind": "wasm:wasi", "code": base64.b64encode(b"echo").decode()}


class BrokenReads(SqliteStore):
    """Reads of actions fail with a bug of ours (not an outage) once ``broken``."""

    broken = False

    async def get_action(self, namespace: str, name: str) -> Action | None:
        if self.broken:
            raise RuntimeError("disk on fire")
        return await super().get_action(namespace, name)


@asynccontextmanager
async def platform(data_dir: Path, store: SqliteStore | None = None) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(data_dir=data_dir)
    store = store or SqliteStore(settings.store_path)
    app = build_standalone(settings, store=store, bus=MemoryBus(), executors={"wasm": ScriptedExecutor()})
    async with app.router.lifespan_context(app):
        assert await app.state.balancer.wait_for_invoker(5)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://whisk.test", auth=(GUEST_UUID, GUEST_KEY)
        ) as client:
            yield client


async def test_a_blocking_invoke_answers_the_record_with_request_id_and_cors(tmp_path: Path) -> None:
    async with platform(tmp_path) as api:
        assert (await api.put(f"{ACTIONS}/echo", json={"exec": EXEC})).status_code == 200
        response = await api.post(f"{ACTIONS}/echo?blocking=true", json={"n": 1})
    assert response.status_code == 200, response.text
    record = response.json()
    assert record["response"]["result"] == {"n": 1}
    assert response.headers["x-openwhisk-activation-id"] == record["activationId"]
    assert len(response.headers["x-request-id"]) == 32
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.headers["content-type"] == "application/json"


async def test_an_action_in_a_package_is_invoked_by_its_three_segment_path(tmp_path: Path) -> None:
    async with platform(tmp_path) as api:
        assert (await api.put("/api/v1/namespaces/_/packages/tools", json={})).status_code == 200
        assert (await api.put(f"{ACTIONS}/tools/echo", json={"exec": EXEC})).status_code == 200
        response = await api.post(f"{ACTIONS}/tools/echo?blocking=true&result=true", json={"n": 2})
        missing = await api.post(f"{ACTIONS}/tools/nothing?blocking=true", json={})
    assert response.status_code == 200, response.text
    assert response.json() == {"n": 2}
    assert missing.status_code == 404
    assert missing.json()["code"] == missing.headers["x-request-id"]


@pytest.mark.parametrize("path", [f"{ACTIONS}/a/b/c", f"{ACTIONS}/", "/api/v1/namespaces//actions/echo"])
async def test_paths_that_are_not_an_invoke_are_left_to_the_router(tmp_path: Path, path: str) -> None:
    async with platform(tmp_path) as api:
        response = await api.post(path, json={})
    assert response.status_code in (404, 405)
    assert set(response.json()) == {"error", "code"}


async def test_a_bug_while_invoking_is_500_with_request_id_and_cors(tmp_path: Path) -> None:
    store = BrokenReads(tmp_path / "s.sqlite3")
    async with platform(tmp_path, store=store) as api:
        assert (await api.put(f"{ACTIONS}/echo", json={"exec": EXEC})).status_code == 200
        store.broken = True
        response = await api.post(f"{ACTIONS}/echo-{id(store)}?blocking=true", json={})
    assert response.status_code == 500
    assert response.json() == {"error": "An internal error occurred.", "code": response.headers["x-request-id"]}
    assert response.headers["access-control-allow-origin"] == "*"


async def test_a_bad_timeout_is_400_in_openwhisk_shape(tmp_path: Path) -> None:
    async with platform(tmp_path) as api:
        assert (await api.put(f"{ACTIONS}/echo", json={"exec": EXEC})).status_code == 200
        response = await api.post(f"{ACTIONS}/echo?blocking=true&timeout=nope", json={})
    assert response.status_code == 400
    assert response.json()["error"].startswith("Timeout must be number of milliseconds")
    assert response.json()["code"] == response.headers["x-request-id"]
