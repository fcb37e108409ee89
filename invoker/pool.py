"""The instance pool: OpenWhisk's ContainerPool scheduling, for any executor.

For each activation (reference/openwhisk.md §5.5): (1) a warm instance of the same action, namespace
and revision with room for one more run (resumed first if it was paused); (2) a prewarmed stem cell of
the same kind and memory (started already, not yet initialised); (3) a new instance if the memory
budget allows; (4) evict idle instances, least recently used first, until it fits; (5) otherwise wait.
An idle instance is paused after a grace period when its executor can pause, and destroyed after the
idle timeout. Stem cells are refilled after use.

Concurrency and memory. An instance takes at most ``concurrency`` runs at once: the action's
``limits.concurrency`` ([OW] ContainerPool.schedule only picks a warm container with
``activeActivationCount < maxConcurrent``, a container still starting for the action included: such a run
waits for its /init, and starts over if that fails); further runs get further instances or wait. Every run is
inside the budget (``user_memory_mb``): a container (Docker) is charged its memory once, however many
runs share it, because its cgroup holds them all ([OW] ``memoryConsumptionOf``); an instance of a
``ConcurrentExecutor`` (WASM) gives every run its own memory of up to the action's limit, so it is
charged once per run in flight (and once while idle and warm, until it is evicted).

Waiting is fair across namespaces, where OpenWhisk's ``runBuffer`` is one FIFO: each namespace has its
own first-come-first-served queue, and when capacity frees the namespace with the least memory in
use by running activations is served first (ties: whose head came first). Worked example: 1024 MB,
256 MB actions; namespace A runs 4 sleeps and has 100 more queued, then B asks for a hello. When one
of A's sleeps ends, A holds 768 MB and B 0 MB, so B's hello is next, not A's 100 sleeps. The head of
the chosen queue is never overtaken: if it does not fit yet, everything waits for the next release
(as OpenWhisk's buffer, so a large request is not starved by smaller ones); it waits at most until
runs of richer namespaces end, since a namespace that holds nothing is always served first.

Fair order alone would still make B's hello wait for the next release, up to the length of one of A's
runs. So ``reserve_mb`` of the budget (at most a quarter) is kept for namespaces running nothing here:
a namespace that already runs something is granted more memory only while that much stays free. In the
example with a 256 MB reserve, A runs 3 sleeps, not 4, and B's hello starts at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from pywhisk.activation import new_activation_id
from pywhisk.executor import ConcurrentExecutor, Executor, InstanceSpec, PausableExecutor

log = logging.getLogger("pywhisk.invoker.pool")

# A stem cell taken by an activation is replaced when that activation ends, or this long after it was taken.
REFILL_DEFER_MAX_S = 0.5


class ActionKey(NamedTuple):
    """Warm instances are shared only by activations of the same action revision in one namespace."""

    namespace: str
    action: str
    revision: str


@dataclass(eq=False)
class Instance:
    """One instance (container, WASM slot) owned by the pool; ``key`` is None for a stem cell.

    It takes at most ``concurrency`` runs at once; ``charged_mb`` is what it holds of the budget now.
    """

    key: ActionKey | None
    executor: Executor
    memory_mb: int
    concurrency: int
    kind: str | None = None
    id: str = field(default_factory=new_activation_id)
    created: bool = False
    _initialized: bool = False  # the property ``initialized``
    paused: bool = False
    in_flight: int = 0
    last_used: float = field(default_factory=time.monotonic)
    # Serialises pause and resume, so a run never lands on an instance that is being paused.
    transition: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Runs of a ConcurrentExecutor's instance have their own memories: each is charged (module docstring).
    charge_per_run: bool = False
    # Whether an idle instance is paused; asked once: a Protocol isinstance costs ~10 µs, per release.
    pausable: bool = False
    charged_mb: int = 0
    removed: bool = False
    # Set once initialised or removed: runs that joined the instance while it was starting wait for it.
    settled: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @property
    def initialized(self) -> bool:
        """Whether the action is loaded (``/init`` done); set by the runner, it wakes the runs that joined."""
        return self._initialized

    @initialized.setter
    def initialized(self, value: bool) -> None:
        self._initialized = value
        if value:
            self.settled.set()

    def __post_init__(self) -> None:
        self.charge_per_run = isinstance(self.executor, ConcurrentExecutor)
        self.pausable = isinstance(self.executor, PausableExecutor)

    def charge(self) -> int:
        """What this instance should hold of the budget: once, or once per run in flight (at least one
        while it is in the pool); a removed instance keeps the charge of its runs until they end."""
        if self.removed:
            return self.memory_mb * (self.in_flight if self.charge_per_run else min(self.in_flight, 1))
        return self.memory_mb * (max(self.in_flight, 1) if self.charge_per_run else 1)

    def cost_of_one_more_run(self) -> int:
        """Memory a further run on this (warm) instance needs from the budget."""
        return self.memory_mb if self.charge_per_run and self.in_flight >= 1 else 0


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
    arrival: int = 0  # tells whose head came first between namespaces using as much memory
    joined: bool = False  # granted an instance still being started or initialised by another run


class Pool:
    """Hands out instances under a memory budget; callers create/init new ones and release them."""

    def __init__(
        self,
        user_memory_mb: int,
        idle_timeout_s: float,
        pause_grace_s: float = 10.0,
        reserve_mb: int = 0,
        *,
        on_start: Callable[[str, str], None] | None = None,
    ) -> None:
        self._on_start = on_start  # (executor, cold|prewarmed|warm) of every instance granted: the metrics
        self.user_memory_mb = user_memory_mb
        self.reserve_mb = max(0, min(reserve_mb, user_memory_mb // 4))
        self.idle_timeout_s = idle_timeout_s
        self.pause_grace_s = pause_grace_s
        self._instances: dict[ActionKey, list[Instance]] = {}
        self._stem_cells: dict[tuple[str, int], list[Instance]] = {}
        self._stem_config: list[StemCells] = []
        # Stem cells handed to an activation that has not ended yet, with the timer that starts their replacement
        # at the latest (_stem_cell), and how many there are per (kind, memory): _refill leaves their places.
        self._deferred_refills: dict[Instance, asyncio.TimerHandle] = {}
        self._stem_cells_in_use: dict[tuple[str, int], int] = {}
        self._used_mb = 0
        # Waiting requests, one FIFO per namespace, and the memory each namespace's running activations hold.
        self._waiting: dict[str, deque[_Request]] = {}
        self._running_mb: dict[str, int] = {}
        self._arrivals = 0
        self._background: set[asyncio.Task[None]] = set()  # creates and destroys: awaited on close
        self._pause_timers: set[asyncio.Task[None]] = set()  # cancelled on close
        self._reaper: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def used_mb(self) -> int:
        return self._used_mb

    @property
    def queued(self) -> int:
        return sum(1 for queue in self._waiting.values() for request in queue if not request.granted.done())

    def running_mb(self, namespace: str) -> int:
        """Memory held by the namespace's activations in progress: what fair queueing compares."""
        return self._running_mb.get(namespace, 0)

    def instances(self) -> list[Instance]:
        return [i for group in self._instances.values() for i in group]

    def stem_cells(self) -> list[Instance]:
        return [i for group in self._stem_cells.values() for i in group]

    def states(self) -> Iterator[tuple[str, str]]:
        """(executor, state) of every instance: prewarmed (a stem cell), busy, paused or warm (the metrics).

        A stem cell still starting is not counted: "prewarmed" means one the next cold start of its kind takes
        (what a benchmark of prewarmed starts, or a test expecting one, waits for)."""
        for cell in self.stem_cells():
            if cell.created:
                yield cell.executor.name, "prewarmed"
        for i in self.instances():
            yield i.executor.name, "busy" if i.in_flight else "paused" if i.paused else "warm"

    async def start(self) -> None:
        self._reaper = asyncio.get_running_loop().create_task(self._reap_idle(), name="pool-reaper")

    async def close(self) -> None:
        if self._reaper:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        self._stem_config.clear()
        for refill in self._deferred_refills.values():
            refill.cancel()
        self._deferred_refills.clear()
        for timer in list(self._pause_timers):
            timer.cancel()
        for queue in self._waiting.values():
            for request in queue:
                request.granted.cancel()
        self._waiting.clear()
        self._closed = True
        for instance in [*self.instances(), *self.stem_cells()]:
            self._remove(instance)
            self._used_mb -= instance.charged_mb  # runs still in flight are ended by the executors' close
            instance.charged_mb = 0
        self._running_mb.clear()
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    # prewarming ----------------------------------------------------------------------------------

    def prewarm(self, cells: StemCells) -> None:
        """Keep ``cells.count`` stem cells of this kind and memory started, refilling after each use."""
        self._stem_config.append(cells)
        self._refill()

    def _refill(self) -> None:
        for cells in self._stem_config:
            group = (cells.kind, cells.memory_mb)
            ready = self._stem_cells.setdefault(group, [])
            wanted = cells.count - self._stem_cells_in_use.get(group, 0)
            # Stem cells never take the reserve: it is for namespaces running nothing, whatever their kind.
            while len(ready) < wanted and self.user_memory_mb - self._used_mb - self.reserve_mb >= cells.memory_mb:
                cell = Instance(None, cells.executor, cells.memory_mb, 1, kind=cells.kind)
                ready.append(cell)
                self._recharge(cell)
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
        new reserved one, holding at most ``concurrency`` runs at once; the caller creates and
        initialises what is not yet. Waits, in its namespace's queue, while the budget is used up."""
        if memory_mb > self.user_memory_mb:
            raise ValueError(f"an instance of {memory_mb} MB can never fit in {self.user_memory_mb} MB")
        if concurrency < 1:
            raise ValueError(f"an instance must take at least one run at once, not {concurrency}")
        loop = asyncio.get_running_loop()
        self._arrivals += 1
        request = _Request(key, executor, memory_mb, concurrency, kind, loop.create_future(), self._arrivals)
        if self._waiting or not self._grant(request):  # nobody waits and it fits: no queue to pass through
            self._waiting.setdefault(key.namespace, deque()).append(request)
            self._serve_queue()
        try:
            instance = await request.granted
            if request.joined:
                await instance.settled.wait()
            if instance.initialized or not request.joined:
                await self._resume(instance)
                return instance
        except asyncio.CancelledError:
            if request.granted.done() and not request.granted.cancelled():
                instance = request.granted.result()
                # An instance never created or initialised for its action must not linger in the pool; one
                # that this run only joined is the business of the run initialising it.
                self.release(instance, healthy=instance.initialized or request.joined)
            raise
        # The instance it joined failed to start or to initialise: start over, as OpenWhisk reschedules the
        # runs buffered on a container that failed.
        self.release(instance, healthy=False)
        if self._closed:
            raise asyncio.CancelledError
        return await self.acquire(key, executor, memory_mb, concurrency, kind)

    def release(self, instance: Instance, healthy: bool) -> None:
        """The activation on ``instance`` ended; an unhealthy instance is destroyed."""
        instance.in_flight -= 1
        instance.last_used = time.monotonic()
        if self._closed:
            return
        if instance in self._deferred_refills:  # a stem cell's first activation ended: replace the cell now
            self._replace_stem_cell(instance)
        if instance.key is not None:
            self._add_running(instance.key.namespace, -instance.memory_mb)
        self._recharge(instance)
        if not healthy:
            self._remove(instance)
        elif instance.in_flight == 0 and instance.pausable:
            timer = asyncio.get_running_loop().create_task(
                self._pause_when_idle(instance, instance.last_used), name=f"pause-{instance.id}"
            )
            self._pause_timers.add(timer)
            timer.add_done_callback(self._pause_timers.discard)
        self._serve_queue()
        self._refill()

    def _serve_queue(self) -> None:
        while (head := self._next_head()) is not None:
            if not self._grant(head):
                return  # the head waits for the next release, and nothing overtakes it
            self._waiting[head.key.namespace].popleft()

    def _next_head(self) -> _Request | None:
        """The head of the queue of the namespace using the least memory (first come among equals)."""
        chosen: _Request | None = None
        for namespace in list(self._waiting):
            queue = self._waiting[namespace]
            while queue and queue[0].granted.done():  # its caller gave up
                queue.popleft()
            if not queue:
                del self._waiting[namespace]
                continue
            head = queue[0]
            if chosen is None or (self.running_mb(namespace), head.arrival) < (
                self.running_mb(chosen.key.namespace),
                chosen.arrival,
            ):
                chosen = head
        return chosen

    def _grant(self, request: _Request) -> bool:
        instance = self._warm(request) or self._stem_cell(request) or self._reserve(request)
        if instance is None:
            return False
        if self._on_start is not None:
            start = "warm" if instance.initialized or request.joined else "prewarmed" if instance.created else "cold"
            self._on_start(instance.executor.name, start)
        instance.in_flight += 1
        self._recharge(instance)
        self._add_running(request.key.namespace, request.memory_mb)
        request.granted.set_result(instance)
        return True

    def _warm(self, request: _Request) -> Instance | None:
        # An instance still starting (its first run creates and initialises it) takes further runs up to its
        # concurrency, which wait for it: [OW] ContainerPool.schedule picks WarmingData and WarmingColdData
        # containers with capacity after warm ones. So a burst of an action with limits.concurrency 50 starts
        # one container per 50 runs, not one per run until the first is up.
        candidates = [i for i in self._instances.get(request.key, ()) if i.in_flight < i.concurrency]
        # Prefer an initialised one, then one that needs no more memory, then the most recently used: its
        # caches are hottest, and the others can age out.
        best = min(candidates, key=lambda i: (not i.initialized, i.cost_of_one_more_run(), -i.last_used), default=None)
        if best is None or not self._fits(best.cost_of_one_more_run(), request.key.namespace):
            return None
        request.joined = not best.initialized
        return best

    def _stem_cell(self, request: _Request) -> Instance | None:
        ready = self._stem_cells.get((request.kind or "", request.memory_mb), [])
        cell = next((c for c in ready if c.created and c.executor is request.executor), None)
        if cell is None:
            return None
        ready.remove(cell)
        cell.key, cell.concurrency = request.key, request.concurrency
        self._instances.setdefault(request.key, []).append(cell)
        # OpenWhisk starts the replacement at once. Here it starts when this cell's first activation ends, or
        # REFILL_DEFER_MAX_S after, whichever comes first: a container start is ~200 ms of dockerd, containerd and
        # the docker SDK's thread (holding the GIL) on the same cores, and beside the /init and /run of a hello
        # it doubled the prewarmed start (docs/benchmarks.md, issue 17). A short activation defers it by a few
        # ms of a start that takes ~200; a long one by REFILL_DEFER_MAX_S at most.
        group = (cell.kind or "", cell.memory_mb)
        self._stem_cells_in_use[group] = self._stem_cells_in_use.get(group, 0) + 1
        timer = asyncio.get_running_loop().call_later(REFILL_DEFER_MAX_S, self._replace_stem_cell, cell)
        self._deferred_refills[cell] = timer
        return cell

    def _replace_stem_cell(self, cell: Instance) -> None:
        """Give back the place of a stem cell taken by an activation (_stem_cell) and refill it."""
        timer = self._deferred_refills.pop(cell, None)
        if timer is None:
            return
        timer.cancel()
        group = (cell.kind or "", cell.memory_mb)
        self._stem_cells_in_use[group] -= 1
        if not self._stem_cells_in_use[group]:
            del self._stem_cells_in_use[group]
        if not self._closed:
            self._refill()

    def _reserve(self, request: _Request) -> Instance | None:
        if not self._fits(request.memory_mb, request.key.namespace):
            return None
        instance = Instance(request.key, request.executor, request.memory_mb, request.concurrency, kind=request.kind)
        self._instances.setdefault(request.key, []).append(instance)
        self._recharge(instance)
        return instance

    def _fits(self, memory_mb: int, namespace: str) -> bool:
        """Whether ``memory_mb`` more can be charged for ``namespace``, evicting idle instances if need be."""
        if memory_mb == 0:
            return True
        # A namespace already running something leaves the reserve to those running nothing.
        reserve = self.reserve_mb if self.running_mb(namespace) else 0
        free = self.user_memory_mb - self._used_mb
        if free >= memory_mb + reserve:
            return True
        idle = sorted((i for i in self.instances() if i.in_flight == 0), key=lambda i: i.last_used)
        if reserve:
            # The reserve is for namespaces running nothing, and such a namespace's idle warm instance is that
            # reserve already in use: evicting it for a namespace that runs something would only make its next
            # activation start cold, from the reserve. (A flooding namespace did that to another's hello at each
            # wave of its runs, 2-9 cold starts of 100-270 ms per cpu class; docs/benchmarks.md, issue 12.)
            kept = self._warm_reserve(idle, namespace)
            idle = [i for i in idle if i not in kept]
            reserve -= sum(i.charged_mb for i in kept)
        needed = memory_mb + reserve
        if free >= needed:
            return True
        if free + sum(i.charged_mb for i in idle) < needed:
            return False
        for instance in idle:  # least recently used first
            if free >= needed:
                break
            free += instance.charged_mb
            self._remove(instance)
        return True

    def _warm_reserve(self, idle: list[Instance], namespace: str) -> set[Instance]:
        """Of ``idle`` (least recently used first), the instances of namespaces running nothing, other than
        ``namespace``, that the reserve keeps: the most recently used first, as many as it holds.

        OpenWhisk's ContainerPool evicts the least recently used free container of any namespace; it has no
        reserve. A third namespace running nothing may still evict these (it gets the whole budget, as today).
        """
        kept: set[Instance] = set()
        left = self.reserve_mb
        for instance in reversed(idle):
            owner = instance.key.namespace if instance.key is not None else namespace
            if owner == namespace or self.running_mb(owner) or instance.charged_mb > left:
                continue
            kept.add(instance)
            left -= instance.charged_mb
        return kept

    # the books -----------------------------------------------------------------------------------

    def _recharge(self, instance: Instance) -> None:
        """Bring the instance's share of the budget in line with its runs (``Instance.charge``)."""
        charge = instance.charge()
        self._used_mb += charge - instance.charged_mb
        instance.charged_mb = charge

    def _add_running(self, namespace: str, memory_mb: int) -> None:
        running = self._running_mb.get(namespace, 0) + memory_mb
        if running:
            self._running_mb[namespace] = running
        else:
            self._running_mb.pop(namespace, None)

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
        instance.removed = True
        instance.settled.set()  # runs that joined it while it was starting start over (acquire)
        self._recharge(instance)  # runs still in flight keep their memory until they are released
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
