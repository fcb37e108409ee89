"""The pool with ``limits.concurrency`` > 1: runs sharing a container, and what the budget is charged for them.

A container (Docker) holds all its runs in one cgroup, so the pool charges its memory once however many runs
share it; a ``ConcurrentExecutor`` instance (WASM) gives each run its own memory and is charged per run
(invoker/pool.py). Fair queueing still counts every run's memory for its namespace.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest

from invoker.pool import ActionKey, Instance, Pool
from tests.doubles import ScriptedExecutor

pytestmark = pytest.mark.unit

SLEEP = ActionKey("guest", "/guest/sleep", "1-aaa")
OTHER = ActionKey("guest", "/guest/other", "1-bbb")


class ContainerExecutor(ScriptedExecutor):
    """Like the Docker executor for the pool: runs share the instance's memory, an idle one can be paused."""

    name = "docker"

    def __init__(self) -> None:
        super().__init__()
        self.paused: list[str] = []
        self.resumed: list[str] = []

    async def pause(self, instance_id: str) -> None:
        self.paused.append(instance_id)

    async def resume(self, instance_id: str) -> None:
        self.resumed.append(instance_id)


class SlotExecutor(ScriptedExecutor):
    """Like the WASM executor for the pool: a ``ConcurrentExecutor``, every run with its own memory."""

    max_runs_per_instance = 100


@pytest.fixture
async def pool() -> AsyncIterator[Pool]:
    """One 256 MB container's worth of budget, no reserve, no reaper."""
    pool = Pool(user_memory_mb=256, idle_timeout_s=600)
    yield pool
    await pool.close()


async def _eventually(condition: Callable[[], bool], timeout_s: float = 2.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


async def _warm(pool: Pool, key: ActionKey, executor: ScriptedExecutor, concurrency: int) -> Instance:
    instance = await pool.acquire(key, executor, 256, concurrency)
    instance.created = instance.initialized = True
    return instance


async def test_a_container_takes_up_to_its_concurrency_and_is_charged_once() -> None:
    pool = Pool(user_memory_mb=1024, idle_timeout_s=600)
    executor = ContainerExecutor()
    first = await _warm(pool, SLEEP, executor, 3)
    shared = [await pool.acquire(SLEEP, executor, 256, 3) for _ in range(2)]
    assert shared == [first, first]
    assert (first.in_flight, pool.used_mb) == (3, 256), "three runs, one container's memory"
    assert pool.running_mb("guest") == 768, "fair queueing still weighs every run"

    fourth = await pool.acquire(SLEEP, executor, 256, 3)
    assert fourth is not first, "a full container sends the next run to another one"
    assert pool.used_mb == 512
    for _ in range(3):
        pool.release(first, healthy=True)
    pool.release(fourth, healthy=False)
    assert (pool.used_mb, pool.running_mb("guest")) == (256, 0), "the idle warm container stays charged once"
    await pool.close()


async def test_an_instance_of_a_concurrent_executor_is_charged_per_run() -> None:
    pool = Pool(user_memory_mb=1024, idle_timeout_s=600)
    executor = SlotExecutor()
    first = await _warm(pool, SLEEP, executor, 3)
    assert [await pool.acquire(SLEEP, executor, 256, 3) for _ in range(2)] == [first, first]
    assert pool.used_mb == 768
    await pool.close()


async def _burst(pool: Pool, executor: ScriptedExecutor, n: int, concurrency: int) -> list[Instance]:
    """``n`` activations at once, each creating and initialising its instance if it is the first run on it, then
    sleeping until all ``n`` are in: the instances they ran on."""
    running: list[Instance] = []
    everyone_in = asyncio.Event()

    async def activation() -> None:
        instance = await pool.acquire(SLEEP, executor, 256, concurrency)
        try:
            if not instance.initialized:
                await asyncio.sleep(0.01)  # docker create + start
                instance.created = True
                await asyncio.sleep(0)  # the /init
                instance.initialized = True
            running.append(instance)
            if len(running) == n:
                everyone_in.set()
            await everyone_in.wait()
        finally:
            pool.release(instance, healthy=True)

    await asyncio.wait_for(asyncio.gather(*(activation() for _ in range(n))), 5)
    return running


async def test_a_burst_starts_one_container_per_concurrency_runs() -> None:
    """[OW] ContainerPool.schedule: runs join a container still starting for their action, up to its
    concurrency, rather than each starting its own while the budget allows (4 containers fit here)."""
    pool = Pool(user_memory_mb=1024, idle_timeout_s=600)
    executor = ContainerExecutor()
    running = await _burst(pool, executor, 6, concurrency=3)
    assert len(set(running)) == 2 and all(running.count(i) == 3 for i in running)
    assert len(pool.instances()) == 2 and pool.used_mb == 512
    await pool.close()


async def test_a_burst_larger_than_the_budget_fills_its_containers(pool: Pool) -> None:
    """One container's budget, concurrency 3: all three runs sleep at once in it."""
    running = await _burst(pool, ContainerExecutor(), 3, concurrency=3)
    assert len(set(running)) == 1 and pool.used_mb == 256


async def test_runs_that_joined_a_container_whose_init_failed_start_over() -> None:
    pool = Pool(user_memory_mb=1024, idle_timeout_s=600)
    executor = ContainerExecutor()
    failing = await pool.acquire(SLEEP, executor, 256, 3)
    joined = [asyncio.create_task(pool.acquire(SLEEP, executor, 256, 3)) for _ in range(2)]
    await _eventually(lambda: failing.in_flight == 3)
    assert not any(task.done() for task in joined), "they wait for the /init"
    pool.release(failing, healthy=False)  # its /init failed: a developer error for its own activation
    done, _ = await asyncio.wait(joined, timeout=2, return_when=asyncio.FIRST_COMPLETED)
    assert len(done) == 1, "the first to start over starts a new container, the other joins it"
    fresh = done.pop().result()
    assert fresh is not failing and not fresh.initialized
    fresh.created = fresh.initialized = True
    assert {await asyncio.wait_for(task, 2) for task in joined} == {fresh}
    assert (fresh.in_flight, pool.used_mb) == (2, 256), "the failed container's memory is given back"
    await _eventually(lambda: executor.destroyed == [failing.id])
    await pool.close()


async def test_a_joined_run_that_is_cancelled_leaves_the_starting_container_alone(pool: Pool) -> None:
    starting = await pool.acquire(SLEEP, ContainerExecutor(), 256, 3)
    joined = asyncio.create_task(pool.acquire(SLEEP, starting.executor, 256, 3))
    await _eventually(lambda: starting.in_flight == 2)
    joined.cancel()
    with pytest.raises(asyncio.CancelledError):
        await joined
    assert starting.in_flight == 1 and pool.instances() == [starting] and not starting.removed
    starting.created = starting.initialized = True
    assert await pool.acquire(SLEEP, starting.executor, 256, 3) is starting


async def test_a_full_container_takes_no_queued_request_when_it_is_initialised(pool: Pool) -> None:
    executor = ContainerExecutor()
    first = await pool.acquire(SLEEP, executor, 256, 1)
    waiting = asyncio.create_task(pool.acquire(SLEEP, executor, 256, 1))
    await _eventually(lambda: pool.queued == 1)
    first.created = first.initialized = True
    await asyncio.sleep(0)
    assert not waiting.done(), "concurrency 1: the initialised container is still busy"
    pool.release(first, healthy=True)
    assert await asyncio.wait_for(waiting, 2) is first


async def test_initialisation_serves_the_fair_queue_in_order(pool: Pool) -> None:
    """The head of the queue (another action) is not overtaken by a request the new room would fit."""
    executor = ContainerExecutor()
    first = await pool.acquire(SLEEP, executor, 256, 3)
    other = asyncio.create_task(pool.acquire(OTHER, executor, 256, 1))
    same = asyncio.create_task(pool.acquire(SLEEP, executor, 256, 3))
    await _eventually(lambda: pool.queued == 2)
    first.created = first.initialized = True
    await asyncio.sleep(0)
    assert not other.done() and not same.done(), "the other action's request came first and waits for memory"
    pool.release(first, healthy=True)  # idle now: evicted for the head, then the next one gets its own
    assert (await asyncio.wait_for(other, 2)).key == OTHER
    pool.release(other.result(), healthy=True)
    assert (await asyncio.wait_for(same, 2)).key == SLEEP


async def test_a_shared_container_is_paused_only_when_its_last_run_ends() -> None:
    pool = Pool(user_memory_mb=256, idle_timeout_s=600, pause_grace_s=0.01)
    executor = ContainerExecutor()
    instance = await _warm(pool, SLEEP, executor, 2)
    assert await pool.acquire(SLEEP, executor, 256, 2) is instance
    pool.release(instance, healthy=True)
    assert not pool._pause_timers, "a run is still in flight: no pause scheduled"
    pool.release(instance, healthy=True)
    await _eventually(lambda: instance.paused)
    assert executor.paused == [instance.id]
    again = await pool.acquire(SLEEP, executor, 256, 2)
    assert again is instance and not instance.paused and executor.resumed == [instance.id]
    await pool.close()
