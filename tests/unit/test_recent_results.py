"""Read-your-writes for a blocking activation answered before its record is stored (controller/recent_results.py).

The cache itself with an injected clock (expiry, bounds, namespace), and the in-process platform with the result
sent ahead and the store's record write held back, where ``activation get/result/logs`` of the answered id must
still answer, and only the record's own namespace. The balancer keeping a result until its completion is tested
with the rest of the result-ahead protocol, in test_result_message.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from controller.loadbalancer import LoadBalancer
from controller.recent_results import RecentResults, record_size
from pywhisk.activation import Activation, ActivationResponse, StatusCode, new_activation_id
from pywhisk.settings import Settings
from pywhisk.store.sqlite import SqliteStore
from pywhisk.tenancy import create_user
from tests.doubles import ScriptedExecutor
from tests.inprocess import ACTIVATIONS, InProcessWhisk, in_process_whisk, until

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def record(activation_id: str | None = None, namespace: str = "guest", logs: int = 0) -> Activation:
    return Activation(
        activationId=activation_id or new_activation_id(),
        namespace=namespace,
        name="hello",
        subject=namespace,
        start=1,
        end=2,
        duration=1,
        response=ActivationResponse.of(StatusCode.SUCCESS, {"hello": namespace}),
        logs=[f"line {n}" for n in range(logs)],
    )


# the cache ----------------------------------------------------------------------------------------


def test_a_kept_record_is_served_to_its_namespace_until_discarded() -> None:
    recent = RecentResults()
    kept = record()
    assert recent.keep(kept, 100)
    assert recent.get("guest", kept.activationId) is kept
    assert recent.get("guest", kept.activationId) is kept, "read as often as asked until the completion"
    recent.discard(kept.activationId)
    assert recent.get("guest", kept.activationId) is None
    assert len(recent) == 0 and recent.bytes == 0


def test_another_namespace_never_sees_a_kept_record() -> None:
    recent = RecentResults()
    kept = record(namespace="alice")
    recent.keep(kept, 100)
    assert recent.get("mallory", kept.activationId) is None
    assert recent.get("", kept.activationId) is None
    assert recent.get("alice", kept.activationId) is kept, "and the owner still does"


def test_entries_expire_after_the_ttl() -> None:
    clock = Clock()
    recent = RecentResults(ttl_s=30.0, clock=clock)
    first = record()
    recent.keep(first, 100)
    clock.now += 20
    second = record()
    recent.keep(second, 200)
    clock.now += 9.9
    assert recent.get("guest", first.activationId) is first
    clock.now += 0.2  # the first's completion never came: 30 s past its result
    assert recent.get("guest", first.activationId) is None
    assert recent.get("guest", second.activationId) is second
    assert recent.bytes == 200
    clock.now += 20
    recent.keep(record(), 300)  # a keep drops the expired ones even when nobody asks for them
    assert len(recent) == 1 and recent.bytes == 300


def test_the_count_bound_drops_the_oldest_first() -> None:
    recent = RecentResults(max_entries=3)
    kept = [record() for _ in range(5)]
    for one in kept:
        recent.keep(one, 10)
    assert len(recent) == 3 and recent.bytes == 30
    assert [recent.get("guest", one.activationId) for one in kept] == [None, None, *kept[2:]]


def test_the_byte_bound_drops_the_oldest_first_and_refuses_a_record_over_half_of_it() -> None:
    recent = RecentResults(max_bytes=1000)
    kept = [record() for _ in range(4)]
    for one in kept:
        assert recent.keep(one, 300)
    assert recent.bytes == 900
    assert [recent.get("guest", one.activationId) for one in kept] == [None, *kept[1:]]
    huge = record()
    assert not recent.keep(huge, 501)
    assert recent.get("guest", huge.activationId) is None
    assert recent.bytes == 900, "nothing evicted for a record that is not kept"


def test_keeping_an_id_again_replaces_it_without_counting_it_twice() -> None:
    recent = RecentResults()
    first = record()
    recent.keep(first, 100)
    again = record(first.activationId)
    recent.keep(again, 150)
    assert len(recent) == 1 and recent.bytes == 150
    assert recent.get("guest", first.activationId) is again


def test_the_size_estimate_counts_the_log_lines_python_holds() -> None:
    # An 8 MB record of 100,000 lines holds ~6 MB more in str objects than its JSON.
    assert record_size(record(logs=1000), 50_000) >= 50_000 + 1000 * 50


# the balancer -------------------------------------------------------------------------------------


# the API ------------------------------------------------------------------------------------------


class HeldRecordsStore(SqliteStore):
    """A real SQLite store whose activation records are written only once ``release`` is set: the window between
    a result sent ahead and its record in the store, held open."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.release = asyncio.Event()
        self.held = 0

        # Run in the middle of an activation read, after the store found nothing.
        self.during_read: Callable[[str], None] | None = None

    async def put_activation(self, activation: Activation) -> None:
        self.held += 1
        await self.release.wait()
        await super().put_activation(activation)

    async def get_activation(self, namespace: str, activation_id: str) -> Activation | None:
        found = await super().get_activation(namespace, activation_id)
        if self.during_read is not None:
            self.during_read(activation_id)
        return found


async def test_a_blocking_invokes_record_result_and_logs_are_read_before_the_store_has_them(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, invoker_result_before_record=True)
    store = HeldRecordsStore(settings.store_path)
    async with in_process_whisk(settings, store, ScriptedExecutor()) as whisk:
        try:
            await _read_before_stored(whisk)
        finally:
            store.release.set()  # else the invoker's drain waits for the held write at shutdown


async def _read_before_stored(whisk: InProcessWhisk[HeldRecordsStore, ScriptedExecutor]) -> None:
    store = whisk.store
    mallory = await create_user(store, "mallory")
    await whisk.create("hello")
    response = await whisk.invoke("hello", {"name": "Ada"})
    assert response.status_code == 200, response.text
    answered = response.json()
    activation_id = answered["activationId"]
    assert store.held == 1 and await store.get_activation("guest", activation_id) is None, "not stored yet"

    got = await whisk.api.get(f"{ACTIVATIONS}/{activation_id}")
    assert got.status_code == 200, got.text
    assert got.json() == answered
    result = await whisk.api.get(f"{ACTIVATIONS}/{activation_id}/result")
    assert result.status_code == 200 and result.json() == answered["response"]
    logs = await whisk.api.get(f"{ACTIVATIONS}/{activation_id}/logs")
    assert logs.status_code == 200 and logs.json() == {"logs": answered["logs"]}
    assert answered["logs"], "the scripted action logged something to read"

    # Another namespace's key, asking as its own namespace or naming the guest's: as absent as in the store.
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=whisk.app), base_url="http://whisk.test", auth=(mallory.uuid, mallory.key)
    ) as attacker:
        for path in ("", "/result", "/logs"):
            own = await attacker.get(f"/api/v1/namespaces/_/activations/{activation_id}{path}")
            assert own.status_code == 404, own.text
            named = await attacker.get(f"/api/v1/namespaces/mallory/activations/{activation_id}{path}")
            assert named.status_code == 404, named.text
            guests = await attacker.get(f"/api/v1/namespaces/guest/activations/{activation_id}{path}")
            assert guests.status_code in (401, 403), guests.text

    store.release.set()  # stored, then completed: the cache lets go and the store answers
    balancer: LoadBalancer = whisk.app.state.balancer
    await until(lambda: balancer.completed(activation_id), "no completion after the store")
    assert len(balancer.recent_results) == 0
    assert await whisk.record(activation_id) == answered


async def test_a_completion_arriving_during_the_store_read_does_not_make_the_record_vanish(tmp_path: Path) -> None:
    # The read began before the record was written and finds nothing; the completion (record now stored) takes
    # it out of the cache before the read returns. The record seen before the read still answers.
    settings = Settings(data_dir=tmp_path, invoker_result_before_record=True)
    store = HeldRecordsStore(settings.store_path)
    async with in_process_whisk(settings, store, ScriptedExecutor()) as whisk:
        try:
            await whisk.create("hello")
            answered = (await whisk.invoke("hello", {"name": "Ada"})).json()
            balancer: LoadBalancer = whisk.app.state.balancer
            store.during_read = balancer.recent_results.discard
            got = await whisk.api.get(f"{ACTIVATIONS}/{answered['activationId']}")
            assert got.status_code == 200, got.text
            assert got.json() == answered
        finally:
            store.release.set()
