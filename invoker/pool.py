"""The instance pool: OpenWhisk's ContainerPool scheduling, for any executor.

For each activation (reference/openwhisk.md §5.5): (1) a warm idle instance of the same action,
namespace and revision; (2) otherwise a new instance if the memory budget allows; (3) otherwise
evict idle instances, least recently used first, until it fits; (4) otherwise wait, first come
first served. Instances idle longer than the idle timeout are destroyed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import NamedTuple

from pywhisk.activation import new_activation_id
from pywhisk.executor import Executor

log = logging.getLogger("pywhisk.invoker.pool")


class ActionKey(NamedTuple):
    """Warm instances are shared only by activations of the same action revision in one namespace."""

    namespace: str
    action: str
    revision: str


@dataclass(eq=False)
class Instance:
    """One instance (container, WASM slot) of an action, owned by the pool."""

    key: ActionKey
    executor: Executor
    memory_mb: int
    concurrency: int
    id: str = field(default_factory=new_activation_id)
    initialized: bool = False
    in_flight: int = 0
    last_used: float = field(default_factory=time.monotonic)


@dataclass(eq=False)
class _Request:
    key: ActionKey
    executor: Executor
    memory_mb: int
    concurrency: int
    granted: asyncio.Future[Instance]


class Pool:
    """Hands out instances under a memory budget; callers create/init new ones and release them."""

    def __init__(self, user_memory_mb: int, idle_timeout_s: float) -> None:
        self.user_memory_mb = user_memory_mb
        self.idle_timeout_s = idle_timeout_s
        self._instances: dict[ActionKey, list[Instance]] = {}
        self._used_mb = 0
        self._queue: deque[_Request] = deque()
        self._destroying: set[asyncio.Task[None]] = set()
        self._reaper: asyncio.Task[None] | None = None

    @property
    def used_mb(self) -> int:
        return self._used_mb

    @property
    def queued(self) -> int:
        return sum(1 for request in self._queue if not request.granted.done())

    def instances(self) -> list[Instance]:
        return [i for group in self._instances.values() for i in group]

    async def start(self) -> None:
        self._reaper = asyncio.get_running_loop().create_task(self._reap_idle(), name="pool-reaper")

    async def close(self) -> None:
        if self._reaper:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        for request in self._queue:
            request.granted.cancel()
        self._queue.clear()
        for instance in self.instances():
            self._remove(instance)
        if self._destroying:
            await asyncio.gather(*self._destroying, return_exceptions=True)

    async def acquire(self, key: ActionKey, executor: Executor, memory_mb: int, concurrency: int) -> Instance:
        """A warm instance (``initialized``) or a new, reserved one the caller must create and init."""
        if memory_mb > self.user_memory_mb:
            raise ValueError(f"an instance of {memory_mb} MB can never fit in {self.user_memory_mb} MB")
        request = _Request(key, executor, memory_mb, concurrency, asyncio.get_running_loop().create_future())
        if not self._queue and self._grant(request):
            return request.granted.result()
        self._queue.append(request)
        try:
            return await request.granted
        except asyncio.CancelledError:
            if request.granted.done() and not request.granted.cancelled():
                instance = request.granted.result()
                # A new instance was never created or initialised: it must not linger in the pool.
                self.release(instance, healthy=instance.initialized)
            raise

    def release(self, instance: Instance, healthy: bool) -> None:
        """The activation on ``instance`` ended; an unhealthy instance is destroyed."""
        instance.in_flight -= 1
        instance.last_used = time.monotonic()
        if not healthy:
            self._remove(instance)
        self._serve_queue()

    def _serve_queue(self) -> None:
        while self._queue:
            head = self._queue[0]
            if head.granted.done():  # its caller gave up
                self._queue.popleft()
                continue
            if not self._grant(head):
                return
            self._queue.popleft()

    def _grant(self, request: _Request) -> bool:
        instance = self._warm(request.key) or self._reserve(request)
        if instance is None:
            return False
        instance.in_flight += 1
        request.granted.set_result(instance)
        return True

    def _warm(self, key: ActionKey) -> Instance | None:
        candidates = [i for i in self._instances.get(key, ()) if i.initialized and i.in_flight < i.concurrency]
        # Prefer the most recently used one: its caches are hottest, and the others can age out.
        return max(candidates, key=lambda i: i.last_used, default=None)

    def _reserve(self, request: _Request) -> Instance | None:
        if not self._fits(request.memory_mb):
            return None
        instance = Instance(request.key, request.executor, request.memory_mb, request.concurrency)
        self._instances.setdefault(request.key, []).append(instance)
        self._used_mb += request.memory_mb
        return instance

    def _fits(self, memory_mb: int) -> bool:
        free = self.user_memory_mb - self._used_mb
        if free >= memory_mb:
            return True
        idle = sorted((i for i in self.instances() if i.in_flight == 0), key=lambda i: i.last_used)
        if free + sum(i.memory_mb for i in idle) < memory_mb:
            return False
        for instance in idle:  # least recently used first
            if free >= memory_mb:
                break
            self._remove(instance)
            free += instance.memory_mb
        return True

    def _remove(self, instance: Instance) -> None:
        group = self._instances.get(instance.key, [])
        if instance not in group:
            return
        group.remove(instance)
        if not group:
            del self._instances[instance.key]
        self._used_mb -= instance.memory_mb
        task = asyncio.get_running_loop().create_task(self._destroy(instance), name=f"destroy-{instance.id}")
        self._destroying.add(task)
        task.add_done_callback(self._destroying.discard)

    @staticmethod
    async def _destroy(instance: Instance) -> None:
        try:
            await instance.executor.destroy(instance.id)
        except Exception:
            log.exception("destroying instance %s failed", instance.id)

    async def _reap_idle(self) -> None:
        period = min(self.idle_timeout_s / 2, 10.0)
        while True:
            await asyncio.sleep(period)
            cutoff = time.monotonic() - self.idle_timeout_s
            for instance in self.instances():
                if instance.in_flight == 0 and instance.last_used < cutoff:
                    self._remove(instance)
            self._serve_queue()
