"""The controller's cache of entities, and its invalidation across controllers over the bus.

Every invoke reads its action (and, through a package or binding, the package and the binding) before anything
else; a trigger fire reads its trigger. Without a cache that is a store read per request: an SQLite query in
standalone mode, a CouchDB round trip in distributed mode (docs/benchmarks.md, "Where the time goes").
``CachedEntityStore`` is the ``EntityStore`` the controller's routes, resolvers, sequences, conductors, trigger
firer and alarms are given (``controller.app.create_app``): reads go through the cache, and every write or delete
through it drops what the cache held for that entity and tells the other controllers.

As OpenWhisk ([OW] ``MultipleReadersSingleWriterCache.scala``, ``RemoteCacheInvalidation.scala``):

- entries are keyed by kind (action, package, trigger, rule) and document id (``ns/name``, ``ns/pkg/name``);
  what is missing is cached too (``None``), so a flood of invokes of an unknown name costs no reads;
- concurrent misses of one entry share one store read; a write or an invalidation that happens while that read
  is in flight keeps its result out of the cache (the read may have seen the old document);
- a controller that writes or deletes an entity publishes a ``CacheInvalidationMessage`` (its document id and the
  controller's instance id) on the ``cacheInvalidation`` topic before it answers; every controller consumes that
  topic in a group of its own (``cacheInvalidation{instance}``), so each sees every message, ignores its own and
  drops every kind of entry under that id.

The staleness bound: a change made through one controller is seen by every other one within the bus latency
(a Kafka round trip: milliseconds) after the writer answered. If the message is lost (the bus was down when it
was sent, or the consumer failed), entries still expire ``ttl_s`` after they were read
(``PYWHISK_ENTITY_CACHE_TTL_S``, 5 s by default, like the identity cache of ``controller.auth``), so no controller
serves a changed entity's old version for longer than that. A consumer failure also empties the cache. Size:
``max_bytes`` (``PYWHISK_ENTITY_CACHE_MB``) of entities, least recently used out first; an entity over half of it
is not kept. ``ttl_s`` or ``max_bytes`` 0 turns caching off (writes still tell the other controllers).

Standalone workers (``pywhisk standalone --workers N``) share one SQLite file and no bus. There each worker
polls the store's change feed instead (``EntityChangeFeed``: a row per entity write or delete, appended in the
write's own transaction, pywhisk/store/sqlite.py) every ``poll_s`` (``PYWHISK_ENTITY_CACHE_POLL_S``, 0.1 s)
and drops what it holds under each changed id: a change made through one worker is seen by every other one
within ``poll_s`` plus one SQLite read after the writer answered. A failed poll empties the cache, and a worker
that fell behind the changes the store keeps empties it too; the TTL still bounds everything else.

Cached entities are shared between requests: callers never mutate them (they ``model_copy`` as they always did).
The invoker's own action cache (``invoker/proxy.py``, by revision) is a separate thing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Final, Protocol, TypeVar, cast, runtime_checkable

import orjson
from pydantic import ValidationError

from pywhisk.bus import Bus, Consumer
from pywhisk.entities import Action, ActionSummary, Package, PackageSummary, Rule, RuleSummary, Trigger, TriggerSummary
from pywhisk.messages import CACHE_INVALIDATION_TOPIC, CacheInvalidationMessage, CacheKey
from pywhisk.store import EntityStore

log = logging.getLogger("pywhisk.controller.entity_cache")

Entity = Action | Package | Trigger | Rule
E = TypeVar("E", Action, Package, Trigger, Rule)
CacheEntryKey = tuple[str, str]  # (kind, document id)

KINDS: Final = ("action", "package", "trigger", "rule")
# How long a write waits for the bus to take its invalidation message; past it the others rely on the TTL.
PUBLISH_TIMEOUT_S = 2.0
# After a failed receive, before the next one.
RECEIVE_RETRY_S = 1.0
# What one JSON value (a number, an empty object, ...) may cost as a Python object beyond its text, at most.
_PYTHON_OBJECT_BYTES = 64


@runtime_checkable
class EntityChangeFeed(Protocol):
    """A store whose entity writes and deletes other processes can follow (the SQLite store)."""

    async def entity_changes(self, after: int | None, limit: int = 1000) -> tuple[int, list[str] | None]:
        """The last change's number and the ids changed after ``after`` (None: gone, forget everything)."""
        ...


class _Missing:
    """What ``EntityCache.get`` answers when it holds nothing (``None`` is a cached "does not exist")."""


MISSING: Final = _Missing()


class EntityCache:
    """Entities (or ``None`` for "not found") by (kind, document id): least recently used out first, bounded by
    their size in bytes, each kept at most ``ttl_s`` after it was read. ``clock`` is injectable for tests."""

    ENTRY_OVERHEAD_BYTES = 1024

    def __init__(self, max_bytes: int, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_bytes = max_bytes
        self.max_entry_bytes = max_bytes // 2
        self.ttl_s = ttl_s
        self.bytes = 0
        self._clock = clock
        self._entries: OrderedDict[CacheEntryKey, tuple[Entity | None, int, float]] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.ttl_s > 0 and self.max_bytes > 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: CacheEntryKey) -> Entity | _Missing | None:
        """The cached entity (``None``: cached as missing), now the most recently used; ``MISSING`` when nothing
        (or only an expired entry) is held."""
        entry = self._entries.get(key)
        if entry is None:
            return MISSING
        if entry[2] <= self._clock():
            self._drop(key)
            return MISSING
        self._entries.move_to_end(key)
        return entry[0]

    def put(self, key: CacheEntryKey, entity: Entity | None) -> bool:
        """Keep ``entity`` (or its absence) for ``ttl_s``, evicting the least recently used to make room; False
        when the cache is off or the entity is over the per-entry cap."""
        if not self.enabled:
            return False
        size = entity_size(entity) + self.ENTRY_OVERHEAD_BYTES
        if size > self.max_entry_bytes:
            self._drop(key)
            return False
        self._drop(key)
        while self._entries and self.bytes + size > self.max_bytes:
            _, (_, evicted, _) = self._entries.popitem(last=False)
            self.bytes -= evicted
        self._entries[key] = (entity, size, self._clock() + self.ttl_s)
        self.bytes += size
        return True

    def invalidate(self, doc_id: str) -> None:
        """Drop every kind of entry under ``doc_id`` (as OpenWhisk's ``removeId`` on each entity type)."""
        for kind in KINDS:
            self._drop((kind, doc_id))

    def clear(self) -> None:
        self._entries.clear()
        self.bytes = 0

    def _drop(self, key: CacheEntryKey) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self.bytes -= old[1]


class CachedEntityStore(EntityStore):
    """An ``EntityStore`` reading through an ``EntityCache`` and invalidating it (here and, over ``bus``, on every
    other controller) on each write and delete; lists and counts go to ``store`` directly.

    ``instance`` names this controller in its invalidation messages (OpenWhisk: ``controller0``); it must be
    unique among the controllers, as the ``completed{N}`` topic already requires. Without a ``bus`` only this
    controller's cache is invalidated (one controller). With ``changes`` it also polls that feed every ``poll_s``
    (standalone workers, which share a store but no bus)."""

    def __init__(
        self,
        store: EntityStore,
        bus: Bus | None,
        *,
        instance: str,
        max_bytes: int,
        ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
        changes: EntityChangeFeed | None = None,
        poll_s: float = 0.1,
    ) -> None:
        self.cache = EntityCache(max_bytes, ttl_s, clock)
        self._changes = changes
        self._poll_s = poll_s
        self._poller: asyncio.Task[None] | None = None
        self.instance = instance
        self._store = store
        self._bus = bus
        # Store reads in flight, shared by concurrent misses; an invalidation removes its key so the read's
        # (possibly old) result is not kept.
        self._fills: dict[CacheEntryKey, asyncio.Task[Entity | None]] = {}
        self._listener: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Subscribe to the invalidation topic (before any write can be missed) and start consuming it; start
        polling the change feed, from its last change, if there is one."""
        if self._changes is not None:
            seen, _ = await self._changes.entity_changes(None)
            self._poller = asyncio.get_running_loop().create_task(
                self._poll(self._changes, seen), name="entity-cache-change-poll"
            )
        if self._bus is None:
            return
        consumer = await self._bus.subscribe(CACHE_INVALIDATION_TOPIC, f"{CACHE_INVALIDATION_TOPIC}{self.instance}")
        self._listener = asyncio.get_running_loop().create_task(
            self._listen(consumer), name="entity-cache-invalidations"
        )

    async def close(self) -> None:
        for task in (self._listener, self._poller):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._listener = self._poller = None
        self.cache.clear()

    # reads ---------------------------------------------------------------------------------------

    async def get_action(self, namespace: str, name: str) -> Action | None:
        return await self._read("action", namespace, name, self._store.get_action)

    async def get_package(self, namespace: str, name: str) -> Package | None:
        return await self._read("package", namespace, name, self._store.get_package)

    async def get_trigger(self, namespace: str, name: str) -> Trigger | None:
        return await self._read("trigger", namespace, name, self._store.get_trigger)

    async def get_rule(self, namespace: str, name: str) -> Rule | None:
        return await self._read("rule", namespace, name, self._store.get_rule)

    # writes --------------------------------------------------------------------------------------

    async def put_action(self, action: Action, expected_rev: str | None) -> Action:
        try:
            return await self._store.put_action(action, expected_rev)
        finally:
            await self.changed(action.namespace, action.name)

    async def delete_action(self, namespace: str, name: str) -> Action | None:
        try:
            return await self._store.delete_action(namespace, name)
        finally:
            await self.changed(namespace, name)

    async def put_package(self, package: Package, expected_rev: str | None) -> Package:
        try:
            return await self._store.put_package(package, expected_rev)
        finally:
            await self.changed(package.namespace, package.name)

    async def delete_package(self, namespace: str, name: str) -> Package | None:
        try:
            return await self._store.delete_package(namespace, name)
        finally:
            await self.changed(namespace, name)

    async def put_trigger(self, trigger: Trigger, expected_rev: str | None) -> Trigger:
        try:
            return await self._store.put_trigger(trigger, expected_rev)
        finally:
            await self.changed(trigger.namespace, trigger.name)

    async def delete_trigger(self, namespace: str, name: str) -> Trigger | None:
        try:
            return await self._store.delete_trigger(namespace, name)
        finally:
            await self.changed(namespace, name)

    async def put_rule(self, rule: Rule, expected_rev: str | None) -> Rule:
        try:
            return await self._store.put_rule(rule, expected_rev)
        finally:
            await self.changed(rule.namespace, rule.name)

    async def delete_rule(self, namespace: str, name: str) -> Rule | None:
        try:
            return await self._store.delete_rule(namespace, name)
        finally:
            await self.changed(namespace, name)

    async def changed(self, namespace: str, name: str) -> None:
        """Entity ``namespace/name`` was written or deleted here (or the attempt failed, which may mean another
        controller wrote it: a ``ConcurrentModification`` must not be retried against a stale entry). Drops it
        here and tells the other controllers; a failure to tell them is logged (the TTL then bounds their
        staleness), never raised: the write itself is done."""
        doc_id = f"{namespace}/{name}"
        self._invalidate(doc_id)
        if self._bus is None:
            return
        message = CacheInvalidationMessage(key=CacheKey(mainId=doc_id), instanceId=self.instance)
        try:
            async with asyncio.timeout(PUBLISH_TIMEOUT_S):
                await self._bus.send(CACHE_INVALIDATION_TOPIC, message.serialize())
        except Exception as exc:  # any bus failure: the TTL bounds what the others serve
            log.warning(
                "could not publish the invalidation of %s; other controllers may serve the old version for up to "
                "%g s: %r",
                doc_id,
                self.cache.ttl_s,
                exc,
            )

    # lists and counts: not cached ----------------------------------------------------------------

    async def list_actions(self, namespace: str, limit: int, skip: int) -> list[ActionSummary]:
        return await self._store.list_actions(namespace, limit, skip)

    async def count_actions(self, namespace: str) -> int:
        return await self._store.count_actions(namespace)

    async def list_packages(
        self, namespace: str, limit: int, skip: int, *, published_only: bool = False
    ) -> list[PackageSummary]:
        return await self._store.list_packages(namespace, limit, skip, published_only=published_only)

    async def count_packages(self, namespace: str, *, published_only: bool = False) -> int:
        return await self._store.count_packages(namespace, published_only=published_only)

    async def list_triggers(self, namespace: str, limit: int, skip: int) -> list[TriggerSummary]:
        return await self._store.list_triggers(namespace, limit, skip)

    async def count_triggers(self, namespace: str) -> int:
        return await self._store.count_triggers(namespace)

    async def list_rules(self, namespace: str, limit: int, skip: int) -> list[RuleSummary]:
        return await self._store.list_rules(namespace, limit, skip)

    async def count_rules(self, namespace: str) -> int:
        return await self._store.count_rules(namespace)

    # helpers -------------------------------------------------------------------------------------

    async def _read(
        self, kind: str, namespace: str, name: str, read: Callable[[str, str], Awaitable[E | None]]
    ) -> E | None:
        if not self.cache.enabled:
            return await read(namespace, name)
        key = (kind, f"{namespace}/{name}")
        cached = self.cache.get(key)
        if not isinstance(cached, _Missing):
            return cast("E | None", cached)
        fill = self._fills.get(key)
        if fill is None:
            fill = asyncio.get_running_loop().create_task(_entity(read(namespace, name)), name=f"entity-read {key}")
            self._fills[key] = fill
            fill.add_done_callback(lambda done: self._filled(key, done))
        # Shielded: a caller that goes away (its client disconnected) does not cancel the others' read.
        return cast("E | None", await asyncio.shield(fill))

    def _filled(self, key: CacheEntryKey, fill: asyncio.Task[Entity | None]) -> None:
        if self._fills.get(key) is not fill:
            return  # invalidated while it read: what it read may be old
        del self._fills[key]
        if not fill.cancelled() and fill.exception() is None:
            self.cache.put(key, fill.result())

    def _invalidate(self, doc_id: str) -> None:
        self.cache.invalidate(doc_id)
        for kind in KINDS:
            self._fills.pop((kind, doc_id), None)

    async def _listen(self, consumer: Consumer) -> None:
        try:
            while True:
                try:
                    deliveries = await consumer.receive(max_messages=128, timeout_s=1.0)
                except Exception as exc:  # the bus is away: messages may be missed meanwhile
                    log.warning("receiving cache invalidations failed; emptying the entity cache: %r", exc)
                    self.cache.clear()
                    await asyncio.sleep(RECEIVE_RETRY_S)
                    continue
                for delivery in deliveries:
                    self._on_invalidation(delivery.value)
                    await consumer.ack(delivery)
        finally:
            await consumer.close()

    async def _poll(self, changes: EntityChangeFeed, seen: int) -> None:
        while True:
            await asyncio.sleep(self._poll_s)
            try:
                seen, doc_ids = await changes.entity_changes(seen)
            except Exception as exc:  # the store is away: changes may be missed meanwhile
                log.warning("polling entity changes failed; emptying the entity cache: %r", exc)
                self._forget_all()
                continue
            if doc_ids is None:
                log.warning("fell behind the entity changes the store keeps; emptying the entity cache")
                self._forget_all()
                continue
            for doc_id in doc_ids:
                self._invalidate(doc_id)

    def _forget_all(self) -> None:
        self.cache.clear()
        self._fills.clear()

    def _on_invalidation(self, value: bytes) -> None:
        try:
            message = CacheInvalidationMessage.model_validate_json(value)
        except ValidationError:
            log.exception("dropping a malformed cache invalidation message")
            return
        if message.instanceId != self.instance:
            self._invalidate(message.key.mainId)


def entity_size(entity: Entity | None) -> int:
    """Bytes an entity holds that its owner chose, as held in memory (an overestimate, as the invoker's
    ``action_size``): code and image by ``getsizeof``, the rest by its JSON plus 64 bytes per JSON value in it
    (1 MB of ``[{},{},...]`` parameters is 20 MB of dicts)."""
    if entity is None:
        return 0
    texts = 0
    if isinstance(entity, Action):
        texts = sum(sys.getsizeof(text) for text in (entity.exec.code, entity.exec.image) if text)
        rest = orjson.dumps(entity.model_dump(exclude={"exec": {"code", "image"}}))
    else:
        rest = orjson.dumps(entity.model_dump())
    elements = rest.count(b",") + rest.count(b"{") + rest.count(b"[")
    return texts + len(rest) + _PYTHON_OBJECT_BYTES * elements


async def _entity(read: Awaitable[E | None]) -> Entity | None:
    return await read
