"""The instance pool: OpenWhisk's ContainerPool scheduling, for any executor.

For each activation (reference/openwhisk.md §5.5): (1) a warm idle instance of the same action,
namespace and revision (resumed first if it was paused); (2) a prewarmed stem cell of the same kind and
memory (started already, not yet initialised); (3) a new instance if the memory budget allows; (4)
evict idle instances, least recently used first, until it fits; (5) otherwise wait, first come first
served. An idle instance is paused after a grace period when its executor can pause, and destroyed
after the idle timeout. Stem cells are refilled after use.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from pywhisk.activation import new_activation_id
from pywhisk.executor import Executor, InstanceSpec, PausableExecutor

log = logging.getLogger("pywhisk.invoker.pool")


class ActionKey(NamedTuple):
    """Warm instances are shared only by activations of the same action revision in one namespace."""

    namespace: str
    action: str
    revision: str


@dataclass(eq=False)
class Instance:
    """One instance (container, WASM slot) owned by the pool; ``key`` is None for a stem cell."""

    key: ActionKey | None
    executor: Executor
    memory_mb: int
    concurrency: int
    kind: str | None = None
    id: str = field(default_factory=new_activation_id)
    created: bool = False
    initialized: bool = False
    paused: bool = False
    in_flight: int = 0
    last_used: float = field(default_factory=time.monotonic)
    # Serialises pause and resume, so a run never lands on an instance that is being paused.
    transition: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass(frozen=True)
class StemCells:
    """How many prewarmed instances of a kind and memory to keep ready (runtimes.json ``stemCells``)."""

    executor: Executor
    kind: str
    memory_mb: int
    count: int


@dataclass(eq=False)
class _Request:
    key: ActionKey
    executor: Executor
    memory_mb: int
    concurrency: int
    kind: str | None
    granted: asyncio.Future[Instance]


class Pool:
    """Hands out instances under a memory budget; callers create/init new ones and release them."""

    def __init__(self, user_memory_mb: int, idle_timeout_s: float, pause_grace_s: float = 10.0) -> None:
        self.user_memory_mb = user_memory_mb
        self.idle_timeout_s = idle_timeout_s
        self.pause_grace_s = pause_grace_s
        self._instances: dict[ActionKey, list[Instance]] = {}
        self._stem_cells: dict[tuple[str, int], list[Instance]] = {}
        self._stem_config: list[StemCells] = []
        self._used_mb = 0
        self._queue: deque[_Request] = deque()
        self._background: set[asyncio.Task[None]] = set()  # creates and destroys: awaited on close
        self._pause_timers: set[asyncio.Task[None]] = set()  # cancelled on close
        self._reaper: asyncio.Task[None] | None = None

    @property
    def used_mb(self) -> int:
        return self._used_mb

    @property
    def queued(self) -> int:
        return sum(1 for request in self._queue if not request.granted.done())

    def instances(self) -> list[Instance]:
        return [i for group in self._instances.values() for i in group]

    def stem_cells(self) -> list[Instance]:
        return [i for group in self._stem_cells.values() for i in group]

    async def start(self) -> None:
        self._reaper = asyncio.get_running_loop().create_task(self._reap_idle(), name="pool-reaper")

    async def close(self) -> None:
        if self._reaper:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        self._stem_config.clear()
        for timer in list(self._pause_timers):
            timer.cancel()
        for request in self._queue:
            request.granted.cancel()
        self._queue.clear()
        for instance in [*self.instances(), *self.stem_cells()]:
            self._remove(instance)
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    # prewarming ----------------------------------------------------------------------------------

    def prewarm(self, cells: StemCells) -> None:
        """Keep ``cells.count`` stem cells of this kind and memory started, refilling after each use."""
        self._stem_config.append(cells)
        self._refill()

    def _refill(self) -> None:
        for cells in self._stem_config:
            ready = self._stem_cells.setdefault((cells.kind, cells.memory_mb), [])
            while len(ready) < cells.count and self.user_memory_mb - self._used_mb >= cells.memory_mb:
                cell = Instance(None, cells.executor, cells.memory_mb, 1, kind=cells.kind)
                ready.append(cell)
                self._used_mb += cells.memory_mb
                self._spawn(self._create_stem_cell(cell), f"prewarm-{cell.id}")

    async def _create_stem_cell(self, cell: Instance) -> None:
        try:
            spec = InstanceSpec(instance_id=cell.id, kind=cell.kind or "", memory_mb=cell.memory_mb)
            await cell.executor.create(spec)
            cell.created = True
        except Exception:
            log.exception("prewarming a %s instance failed", cell.kind)
            self._remove(cell)

    # scheduling ----------------------------------------------------------------------------------

    async def acquire(
        self, key: ActionKey, executor: Executor, memory_mb: int, concurrency: int, kind: str | None = None
    ) -> Instance:
        """A warm instance (``initialized``, resumed if it was paused), a stem cell (``created``), or a
        new reserved one; the caller creates and initialises what is not yet."""
        if memory_mb > self.user_memory_mb:
            raise ValueError(f"an instance of {memory_mb} MB can never fit in {self.user_memory_mb} MB")
        loop = asyncio.get_running_loop()
        request = _Request(key, executor, memory_mb, concurrency, kind, loop.create_future())
        if not (not self._queue and self._grant(request)):
            self._queue.append(request)
        try:
            instance = await request.granted
            await self._resume(instance)
            return instance
        except asyncio.CancelledError:
            if request.granted.done() and not request.granted.cancelled():
                instance = request.granted.result()
                # An instance never created or initialised for its action must not linger in the pool.
                self.release(instance, healthy=instance.initialized)
            raise

    def release(self, instance: Instance, healthy: bool) -> None:
        """The activation on ``instance`` ended; an unhealthy instance is destroyed."""
        instance.in_flight -= 1
        instance.last_used = time.monotonic()
        if not healthy:
            self._remove(instance)
        elif instance.in_flight == 0 and isinstance(instance.executor, PausableExecutor):
            timer = asyncio.get_running_loop().create_task(
                self._pause_when_idle(instance, instance.last_used), name=f"pause-{instance.id}"
            )
            self._pause_timers.add(timer)
            timer.add_done_callback(self._pause_timers.discard)
        self._serve_queue()
        self._refill()

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
        instance = self._warm(request.key) or self._stem_cell(request) or self._reserve(request)
        if instance is None:
            return False
        instance.in_flight += 1
        request.granted.set_result(instance)
        return True

    def _warm(self, key: ActionKey) -> Instance | None:
        candidates = [i for i in self._instances.get(key, ()) if i.initialized and i.in_flight < i.concurrency]
        # Prefer the most recently used one: its caches are hottest, and the others can age out.
        return max(candidates, key=lambda i: i.last_used, default=None)

    def _stem_cell(self, request: _Request) -> Instance | None:
        ready = self._stem_cells.get((request.kind or "", request.memory_mb), [])
        cell = next((c for c in ready if c.created and c.executor is request.executor), None)
        if cell is None:
            return None
        ready.remove(cell)
        cell.key, cell.concurrency = request.key, request.concurrency
        self._instances.setdefault(request.key, []).append(cell)
        self._refill()  # start its replacement now, as OpenWhisk does after using a prewarm container
        return cell

    def _reserve(self, request: _Request) -> Instance | None:
        if not self._fits(request.memory_mb):
            return None
        instance = Instance(request.key, request.executor, request.memory_mb, request.concurrency, kind=request.kind)
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

    # pause and resume ----------------------------------------------------------------------------

    async def _pause_when_idle(self, instance: Instance, idle_since: float) -> None:
        await asyncio.sleep(self.pause_grace_s)
        executor = instance.executor
        async with instance.transition:
            # Still idle since this release, still in the pool, not paused yet: pause ([OW] pause-grace).
            if instance.in_flight or instance.last_used != idle_since or instance.paused or not self._owns(instance):
                return
            assert isinstance(executor, PausableExecutor)
            try:
                await executor.pause(instance.id)
                instance.paused = True
            except Exception:
                log.exception("pausing instance %s failed; removing it", instance.id)
                self._remove(instance)

    async def _resume(self, instance: Instance) -> None:
        async with instance.transition:
            if instance.paused:
                assert isinstance(instance.executor, PausableExecutor)
                await instance.executor.resume(instance.id)
                instance.paused = False

    # removal -------------------------------------------------------------------------------------

    def _owns(self, instance: Instance) -> bool:
        return instance.key is not None and instance in self._instances.get(instance.key, [])

    def _remove(self, instance: Instance) -> None:
        if instance.key is None:
            group = self._stem_cells.get((instance.kind or "", instance.memory_mb), [])
        else:
            group = self._instances.get(instance.key, [])
        if instance not in group:
            return
        group.remove(instance)
        if not group and instance.key is not None:
            del self._instances[instance.key]
        self._used_mb -= instance.memory_mb
        self._spawn(self._destroy(instance), f"destroy-{instance.id}")

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(work, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

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
            self._refill()
