"""A store that goes away (CouchDB restarting): the controller answers clean 503s, the invoker waits.

The platform runs in one process (controller, memory bus, invoker, ScriptedExecutor) over a SQLite
store that can be switched off: while it is off every call raises ``StoreUnavailable``, as the CouchDB
store does when its server refuses connections.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from controller.app import STORE_UNAVAILABLE, create_app
from invoker.invoker import Invoker
from pywhisk.activation import Activation, new_activation_id
from pywhisk.bus.memory import MemoryBus
from pywhisk.entities import Action
from pywhisk.errors import StoreUnavailable
from pywhisk.identity import GUEST_KEY, GUEST_UUID, guest_identity
from pywhisk.messages import ActionRef, ActivationMessage, ControllerInstance, invoker_topic
from pywhisk.settings import Settings
from pywhisk.store import ActivationQuery
from pywhisk.store.sqlite import SqliteStore
from tests.doubles import ScriptedExecutor
from tests.unit.test_invoker import MANIFEST

pytestmark = pytest.mark.unit

ACTIONS = "/api/v1/namespaces/_/actions"


class SwitchableStore(SqliteStore):
    """SQLite, except that while ``down`` every read and write raises ``StoreUnavailable``."""

    down = False
    failed_calls = 0

    def _check(self) -> None:
        if self.down:
            self.failed_calls += 1
            raise StoreUnavailable("the store is switched off")

    async def get_action(self, namespace: str, name: str) -> Action | None:
        self._check()
        return await super().get_action(namespace, name)

    async def put_action(self, action: Action, expected_rev: str | None) -> Action:
        self._check()
        return await super().put_action(action, expected_rev)

    async def put_activation(self, activation: Activation) -> None:
        self._check()
        await super().put_activation(activation)

    async def list_activations(self, query: ActivationQuery) -> list[Activation]:
        self._check()
        return await super().list_activations(query)


@dataclass
class Platform:
    api: httpx.AsyncClient
    store: SwitchableStore
    bus: MemoryBus


@pytest.fixture
async def platform(tmp_path: Path) -> AsyncIterator[Platform]:
    settings = Settings(data_dir=tmp_path)
    store, bus, executor = SwitchableStore(settings.store_path), MemoryBus(), ScriptedExecutor()
    invoker = Invoker(settings, bus, store, {"wasm": executor}, MANIFEST)
    app = create_app(settings, store, bus, manifest=MANIFEST, services=[invoker])
    async with app.router.lifespan_context(app):
        assert await app.state.balancer.wait_for_invoker(5)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://whisk.test", auth=(GUEST_UUID, GUEST_KEY)
        ) as api:
            response = await api.put(f"{ACTIONS}/echo", json={"exec": {"kind": "script:1", "code": "echo"}})
            assert response.status_code == 200, response.text
            yield Platform(api, store, bus)
            store.down = False  # so the invoker's drain can write what is pending


async def test_while_the_store_is_down_reads_writes_and_invokes_are_clean_503s(platform: Platform) -> None:
    platform.store.down = True
    answers = [
        await platform.api.get("/api/v1/namespaces/_/activations"),
        await platform.api.put(f"{ACTIONS}/other", json={"exec": {"kind": "script:1", "code": "echo"}}),
        await platform.api.post(f"{ACTIONS}/echo", params={"blocking": "true"}, json={}),
    ]
    for response in answers:
        assert response.status_code == 503
        assert response.json() == {"error": STORE_UNAVAILABLE, "code": response.headers["x-request-id"]}
        assert "switched off" not in response.text  # the backend's own message stays in the log

    platform.store.down = False
    assert (await platform.api.get("/api/v1/namespaces/_/activations")).status_code == 200


async def test_an_activation_arriving_while_the_store_is_down_waits_for_it_instead_of_failing(
    platform: Platform,
) -> None:
    platform.store.down = True
    message = ActivationMessage(
        transid=["tid", time.time() * 1000],
        action=ActionRef(path="guest", name="echo", version="0.0.1"),
        user=guest_identity(),
        activationId=new_activation_id(),
        rootControllerIndex=ControllerInstance(asString="0"),
        blocking=False,
        content={"n": 1},
    )
    await platform.bus.send(invoker_topic(0), message.serialize())
    # The invoker cannot read the action: it retries rather than record a whisk internal error.
    await _until(lambda: platform.store.failed_calls >= 2, "the invoker retried reading the action")
    platform.store.down = False

    record = await _record(platform, message.activationId)

    assert record["response"]["status"] == "success"
    assert record["response"]["result"] == {"n": 1}
    await _exactly_one_record(platform, message.activationId)


async def test_a_record_write_that_fails_is_retried_until_the_store_is_back_and_stored_once(
    platform: Platform,
) -> None:
    response = await platform.api.put(f"{ACTIONS}/slow", json={"exec": {"kind": "script:1", "code": "slow:300"}})
    assert response.status_code == 200, response.text
    accepted = await platform.api.post(f"{ACTIONS}/slow", json={})
    activation_id = accepted.json()["activationId"]
    await asyncio.sleep(0.1)  # running now; the record will find the store gone
    platform.store.down = True
    await _until(lambda: platform.store.failed_calls >= 2, "the invoker retried storing the record", 10)
    platform.store.down = False

    record = await _record(platform, activation_id)

    assert record["response"]["status"] == "success"
    await _exactly_one_record(platform, activation_id)


async def _exactly_one_record(platform: Platform, activation_id: str) -> None:
    await asyncio.sleep(0.5)  # time for a second record, were one coming
    listed = await platform.api.get("/api/v1/namespaces/_/activations", params={"docs": "true"})
    assert [r["activationId"] for r in listed.json()] == [activation_id]


async def _until(condition: Any, what: str, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.001)


async def _record(platform: Platform, activation_id: str, timeout_s: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        response = await platform.api.get(f"/api/v1/namespaces/_/activations/{activation_id}")
        if response.status_code == 200:
            body: dict[str, Any] = response.json()
            return body
        assert time.monotonic() < deadline, f"no record for {activation_id}"
        await asyncio.sleep(0.05)
