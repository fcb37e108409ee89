"""The controller's entity cache (controller/entity_cache.py): bounded, LRU, expiring, invalidated on writes.

The cache itself with an injected clock; ``CachedEntityStore`` over a real SQLite store and a memory bus (two
instances stand for two controllers); and the whole in-process platform, where updates and deletes through the
API must be seen by the very next invoke.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from controller.entity_cache import MISSING, CachedEntityStore, EntityCache, entity_size
from pywhisk.bus.memory import MemoryBus
from pywhisk.entities import Action, Exec, KeyValue, Package
from pywhisk.errors import ConcurrentModification
from pywhisk.messages import CACHE_INVALIDATION_TOPIC, CacheInvalidationMessage
from pywhisk.settings import Settings
from pywhisk.store.sqlite import SqliteStore
from tests.doubles import ScriptedExecutor
from tests.inprocess import ACTIONS, in_process_whisk

pytestmark = pytest.mark.unit

MB = 1024 * 1024


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def action(name: str, code: str = "echo", namespace: str = "guest") -> Action:
    return Action(namespace=namespace, name=name, exec=Exec(kind="script:1", code=code))


class CountingStore(SqliteStore):
    """A real SQLite store that counts action reads and can hold them until released."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.action_reads = 0
        self.hold: asyncio.Event | None = None
        self.reading = asyncio.Event()

    async def get_action(self, namespace: str, name: str) -> Action | None:
        self.action_reads += 1
        found = await super().get_action(namespace, name)  # read first: what a slow store returns is old
        self.reading.set()
        if self.hold is not None:
            await self.hold.wait()
        return found


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[CountingStore]:
    store = CountingStore(tmp_path / "store.sqlite3")
    await store.start()
    yield store
    await store.close()


def cached(
    store: CountingStore,
    bus: MemoryBus | None = None,
    *,
    instance: str = "controller0",
    clock: Callable[[], float] = time.monotonic,
) -> CachedEntityStore:
    return CachedEntityStore(store, bus, instance=instance, max_bytes=4 * MB, ttl_s=5.0, clock=clock)


async def until(condition: Callable[[], object], timeout_s: float = 2.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


# the cache -----------------------------------------------------------------------------------------


def test_the_least_recently_used_entry_goes_first_when_the_bytes_run_out() -> None:
    one = action("one")
    size = entity_size(one) + EntityCache.ENTRY_OVERHEAD_BYTES
    cache = EntityCache(max_bytes=3 * size, ttl_s=5.0)
    for name in ("a", "b", "c"):
        assert cache.put(("action", f"guest/{name}"), action(name.ljust(3)))
    assert cache.get(("action", "guest/a")) is not MISSING  # a is now the most recently used
    assert cache.put(("action", "guest/d"), action("ddd"))
    assert cache.get(("action", "guest/b")) is MISSING
    assert {cache.get(("action", f"guest/{n}")) is not MISSING for n in "acd"} == {True}
    assert cache.bytes <= cache.max_bytes and len(cache) == 3


def test_an_entity_over_half_the_cache_is_not_kept() -> None:
    cache = EntityCache(max_bytes=1 * MB, ttl_s=5.0)
    big = action("big", code="x" * (MB // 2))
    assert not cache.put(("action", "guest/big"), big)
    assert cache.get(("action", "guest/big")) is MISSING and cache.bytes == 0


def test_sizes_count_what_a_tenant_chose_including_deeply_nested_parameters() -> None:
    small = action("p")
    nested = small.model_copy(update={"parameters": [KeyValue(key="k", value=[{}] * 10_000)]})
    assert entity_size(nested) >= entity_size(small) + 10_000 * 64


def test_an_entry_expires_ttl_after_it_was_read() -> None:
    clock = Clock()
    cache = EntityCache(max_bytes=MB, ttl_s=5.0, clock=clock)
    cache.put(("package", "guest/p"), Package(namespace="guest", name="p"))
    clock.now += 4.9
    assert isinstance(cache.get(("package", "guest/p")), Package)
    clock.now += 0.2
    assert cache.get(("package", "guest/p")) is MISSING and cache.bytes == 0


def test_a_missing_entity_is_cached_as_none_and_invalidation_drops_every_kind_of_the_id() -> None:
    cache = EntityCache(max_bytes=MB, ttl_s=5.0)
    cache.put(("action", "guest/x"), None)
    cache.put(("package", "guest/x"), Package(namespace="guest", name="x"))
    cache.put(("action", "guest/y"), None)
    assert cache.get(("action", "guest/x")) is None
    cache.invalidate("guest/x")
    assert cache.get(("action", "guest/x")) is MISSING and cache.get(("package", "guest/x")) is MISSING
    assert cache.get(("action", "guest/y")) is None


@pytest.mark.parametrize(("max_bytes", "ttl_s"), [(0, 5.0), (MB, 0.0)])
def test_zero_bytes_or_zero_ttl_turns_caching_off(max_bytes: int, ttl_s: float) -> None:
    cache = EntityCache(max_bytes=max_bytes, ttl_s=ttl_s)
    assert not cache.enabled
    assert not cache.put(("action", "guest/a"), action("a"))
    assert cache.get(("action", "guest/a")) is MISSING


# the caching store ----------------------------------------------------------------------------------


async def test_reads_are_served_from_the_cache_until_a_write_through_it(store: CountingStore) -> None:
    entities = cached(store)
    stored = await entities.put_action(action("a"), expected_rev=None)
    for _ in range(5):
        found = await entities.get_action("guest", "a")
        assert found is not None and found.rev == stored.rev
    assert store.action_reads == 1
    updated = await entities.put_action(action("a", code="error"), expected_rev=stored.rev)
    found = await entities.get_action("guest", "a")
    assert found is not None and found.exec.code == "error" and found.rev == updated.rev
    await entities.delete_action("guest", "a")
    assert await entities.get_action("guest", "a") is None
    assert store.action_reads == 3


async def test_a_change_behind_the_caches_back_is_seen_once_the_ttl_passes(store: CountingStore) -> None:
    clock = Clock()
    entities = cached(store, clock=clock)
    await store.put_action(action("a"), expected_rev=None)
    assert (await entities.get_action("guest", "a")) is not None
    stored = await store.get_action("guest", "a")
    assert stored is not None
    await store.put_action(action("a", code="error"), expected_rev=stored.rev)  # as another controller would
    found = await entities.get_action("guest", "a")
    assert found is not None and found.exec.code == "echo"  # stale, within the bound
    clock.now += 5.0
    found = await entities.get_action("guest", "a")
    assert found is not None and found.exec.code == "error"


async def test_a_failed_write_drops_the_stale_entry_so_a_retry_reads_the_store(store: CountingStore) -> None:
    entities = cached(store)
    first = await entities.put_action(action("a"), expected_rev=None)
    stale = await entities.get_action("guest", "a")
    assert stale is not None
    await store.put_action(action("a", code="error"), expected_rev=first.rev)  # another controller's write
    with pytest.raises(ConcurrentModification):
        await entities.put_action(action("a", code="slow:1"), expected_rev=stale.rev)
    fresh = await entities.get_action("guest", "a")
    assert fresh is not None and fresh.exec.code == "error"
    assert (await entities.put_action(action("a", code="slow:1"), expected_rev=fresh.rev)).exec.code == "slow:1"


async def test_concurrent_misses_share_one_store_read(store: CountingStore) -> None:
    entities = cached(store)
    await store.put_action(action("a"), expected_rev=None)
    store.hold = asyncio.Event()
    readers = [asyncio.create_task(entities.get_action("guest", "a")) for _ in range(20)]
    await store.reading.wait()
    store.hold.set()
    found = await asyncio.gather(*readers)
    assert store.action_reads == 1 and all(a is not None and a.exec.code == "echo" for a in found)


async def test_a_read_in_flight_during_a_write_does_not_cache_what_it_read(store: CountingStore) -> None:
    entities = cached(store)
    stored = await store.put_action(action("a"), expected_rev=None)
    hold = store.hold = asyncio.Event()
    reader = asyncio.create_task(entities.get_action("guest", "a"))
    await store.reading.wait()  # it has read the old document and not yet answered
    store.hold = None
    await entities.put_action(action("a", code="error"), expected_rev=stored.rev)
    hold.set()
    old = await reader
    assert old is not None and old.exec.code == "echo"  # the reader started before the write
    fresh = await entities.get_action("guest", "a")
    assert fresh is not None and fresh.exec.code == "error"


async def test_a_caller_that_goes_away_does_not_cancel_the_read_others_wait_for(store: CountingStore) -> None:
    entities = cached(store)
    await store.put_action(action("a"), expected_rev=None)
    store.hold = asyncio.Event()
    first = asyncio.create_task(entities.get_action("guest", "a"))
    second = asyncio.create_task(entities.get_action("guest", "a"))  # joins the read the first one starts
    await store.reading.wait()
    first.cancel()
    store.hold.set()
    found = await second
    assert found is not None and store.action_reads == 1
    with pytest.raises(asyncio.CancelledError):
        await first


# across controllers, over the bus ----------------------------------------------------------------


async def test_a_write_on_one_controller_invalidates_the_others_cache_over_the_bus(store: CountingStore) -> None:
    bus = MemoryBus()
    a = cached(store, bus, instance="controller0")
    b = cached(store, bus, instance="controller1")
    await a.start()
    await b.start()
    try:
        watcher = await bus.subscribe(CACHE_INVALIDATION_TOPIC, "watcher")
        stored = await store.put_action(action("a"), expected_rev=None)  # no message: b keeps what it reads
        assert (await b.get_action("guest", "a")) is not None
        await a.put_action(action("a", code="error"), expected_rev=stored.rev)
        [update] = [CacheInvalidationMessage.model_validate_json(d.value) for d in await watcher.receive(5, 1)]
        assert update.key.mainId == "guest/a" and update.instanceId == "controller0"
        await until(lambda: b.cache.get(("action", "guest/a")) is MISSING)
        found = await b.get_action("guest", "a")
        assert found is not None and found.exec.code == "error"
        await a.delete_action("guest", "a")
        await until(lambda: b.cache.get(("action", "guest/a")) is MISSING)
        assert await b.get_action("guest", "a") is None
    finally:
        await b.close()
        await a.close()


async def test_a_controller_ignores_its_own_messages_and_survives_malformed_ones(store: CountingStore) -> None:
    bus = MemoryBus()
    a = cached(store, bus, instance="controller0")
    await a.start()
    try:
        await bus.send(CACHE_INVALIDATION_TOPIC, b"{not json")
        await bus.send(CACHE_INVALIDATION_TOPIC, b'{"key": {"mainId": "guest/a"}, "instanceId": "controller0"}')
        await store.put_action(action("a"), expected_rev=None)
        assert await a.get_action("guest", "a") is not None
        await bus.send(CACHE_INVALIDATION_TOPIC, b'{"key": {"mainId": "guest/a"}, "instanceId": "controller0"}')
        await bus.send(CACHE_INVALIDATION_TOPIC, b'{"key": {"mainId": "guest/a"}, "instanceId": "controller1"}')
        await until(lambda: a.cache.get(("action", "guest/a")) is MISSING)  # the listener is alive
    finally:
        await a.close()


async def test_a_bus_that_refuses_the_message_does_not_fail_the_write(store: CountingStore) -> None:
    class DownBus(MemoryBus):
        async def send(self, topic: str, value: bytes) -> None:
            raise ConnectionError("the bus is away")

    entities = cached(store, DownBus())
    stored = await entities.put_action(action("a"), expected_rev=None)
    assert stored.rev is not None and await entities.get_action("guest", "a") is not None


# through the API, in one process ------------------------------------------------------------------


async def test_updates_and_deletes_through_the_api_are_seen_by_the_next_invoke(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    store = CountingStore(settings.store_path)
    async with in_process_whisk(settings, store, ScriptedExecutor()) as whisk:
        await whisk.create("a", code="echo")
        assert (await whisk.invoke("a", {"n": 1})).status_code == 200
        reads = store.action_reads
        for n in range(5):
            assert (await whisk.invoke("a", {"n": n})).json()["response"]["result"] == {"n": n}
        assert store.action_reads == reads  # warm invokes read no action from the store
        updated = {"exec": {"kind": "script:1", "code": "error"}}
        assert (await whisk.api.put(f"{ACTIONS}/a?overwrite=true", json=updated)).status_code == 200
        assert (await whisk.invoke("a")).status_code == 502
        assert (await whisk.api.delete(f"{ACTIONS}/a")).status_code == 200
        assert (await whisk.invoke("a")).status_code == 404


async def test_a_binding_parameter_changed_through_the_api_reaches_the_next_invoke(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    async with in_process_whisk(settings, SqliteStore(settings.store_path), ScriptedExecutor()) as whisk:
        api = whisk.api
        assert (await api.put("/api/v1/namespaces/_/packages/lib", json={})).status_code == 200
        code = {"exec": {"kind": "script:1", "code": "echo"}}
        assert (await api.put("/api/v1/namespaces/_/actions/lib/echo", json=code)).status_code == 200
        bind = {"binding": {"namespace": "guest", "name": "lib"}, "parameters": [{"key": "p", "value": 1}]}
        assert (await api.put("/api/v1/namespaces/_/packages/bound", json=bind)).status_code == 200
        first = await api.post("/api/v1/namespaces/_/actions/bound/echo?blocking=true&result=true", json={})
        assert first.json() == {"p": 1}
        bind["parameters"] = [{"key": "p", "value": 2}]
        assert (await api.put("/api/v1/namespaces/_/packages/bound?overwrite=true", json=bind)).status_code == 200
        second = await api.post("/api/v1/namespaces/_/actions/bound/echo?blocking=true&result=true", json={})
        assert second.json() == {"p": 2}
