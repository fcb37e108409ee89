"""A store that goes away (CouchDB restarting): the controller answers clean 503s, the invoker waits.

The platform runs in one process (controller, memory bus, invoker, ScriptedExecutor; ``tests/inprocess.py``)
over a SQLite store that can be switched off: while it is off every call raises ``StoreUnavailable``, as
the CouchDB store does when its server refuses connections.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from controller.app import STORE_UNAVAILABLE
from pywhisk.activation import Activation, new_activation_id
from pywhisk.entities import Action
from pywhisk.errors import StoreUnavailable
from pywhisk.identity import guest_identity
from pywhisk.messages import ActionRef, ActivationMessage, ControllerInstance, invoker_topic
from pywhisk.settings import Settings
from pywhisk.store import ActivationQuery, ActivationSummary
from pywhisk.store.sqlite import SqliteStore
from tests.doubles import ScriptedExecutor
from tests.inprocess import ACTIONS, InProcessWhisk, in_process_whisk

pytestmark = pytest.mark.unit


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

    async def list_activation_summaries(self, query: ActivationQuery) -> list[ActivationSummary]:
        self._check()
        return await super().list_activation_summaries(query)

    async def list_activation_summaries_api(self, query: ActivationQuery) -> list[dict[str, Any]]:
        self._check()
        return await super().list_activation_summaries_api(query)


Whisk = InProcessWhisk[SwitchableStore, ScriptedExecutor]


@pytest.fixture
async def whisk(tmp_path: Path) -> AsyncIterator[Whisk]:
    settings = Settings(data_dir=tmp_path)
    store = SwitchableStore(settings.store_path)
    async with in_process_whisk(settings, store, ScriptedExecutor()) as running:
        await running.create("echo")
        yield running
        store.down = False  # so the invoker's drain can write what is pending


async def test_while_the_store_is_down_reads_writes_and_invokes_are_clean_503s(whisk: Whisk) -> None:
    whisk.store.down = True
    answers = [
        await whisk.api.get("/api/v1/namespaces/_/activations"),
        await whisk.api.put(f"{ACTIONS}/other", json={"exec": {"kind": "script:1", "code": "echo"}}),
        await whisk.api.post(f"{ACTIONS}/echo", params={"blocking": "true"}, json={}),
    ]
    for response in answers:
        assert response.status_code == 503
        assert response.json() == {"error": STORE_UNAVAILABLE, "code": response.headers["x-request-id"]}
        assert "switched off" not in response.text  # the backend's own message stays in the log

    whisk.store.down = False
    assert (await whisk.api.get("/api/v1/namespaces/_/activations")).status_code == 200


async def test_an_activation_arriving_while_the_store_is_down_waits_for_it_instead_of_failing(
    whisk: Whisk,
) -> None:
    whisk.store.down = True
    message = ActivationMessage(
        transid=["tid", time.time() * 1000],
        action=ActionRef(path="guest", name="echo", version="0.0.1"),
        user=guest_identity(),
        activationId=new_activation_id(),
        rootControllerIndex=ControllerInstance(asString="0"),
        blocking=False,
        content={"n": 1},
    )
    await whisk.bus.send(invoker_topic(0), message.serialize())
    # The invoker cannot read the action: it retries rather than record a whisk internal error.
    await _until(lambda: whisk.store.failed_calls >= 2, "the invoker retried reading the action")
    whisk.store.down = False

    record = await whisk.record(message.activationId, timeout_s=10.0)

    assert record["response"]["status"] == "success"
    assert record["response"]["result"] == {"n": 1}
    await _exactly_one_record(whisk, message.activationId)


async def test_a_record_write_that_fails_is_retried_until_the_store_is_back_and_stored_once(
    whisk: Whisk,
) -> None:
    response = await whisk.api.put(f"{ACTIONS}/slow", json={"exec": {"kind": "script:1", "code": "slow:300"}})
    assert response.status_code == 200, response.text
    accepted = await whisk.api.post(f"{ACTIONS}/slow", json={})
    activation_id = accepted.json()["activationId"]
    await asyncio.sleep(0.1)  # running now; the record will find the store gone
    whisk.store.down = True
    await _until(lambda: whisk.store.failed_calls >= 2, "the invoker retried storing the record", 10)
    whisk.store.down = False

    record = await whisk.record(activation_id, timeout_s=10.0)

    assert record["response"]["status"] == "success"
    await _exactly_one_record(whisk, activation_id)


async def _exactly_one_record(whisk: Whisk, activation_id: str) -> None:
    await asyncio.sleep(0.5)  # time for a second record, were one coming
    listed = await whisk.api.get("/api/v1/namespaces/_/activations", params={"docs": "true"})
    assert [r["activationId"] for r in listed.json()] == [activation_id]


async def _until(condition: Any, what: str, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.001)
