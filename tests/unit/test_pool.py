"""The instance pool: warm reuse, the memory budget, LRU eviction, FIFO waiting, idle reaping."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest

from invoker.pool import ActionKey, Instance, Pool
from tests.doubles import ScriptedExecutor

pytestmark = pytest.mark.unit

HELLO = ActionKey("guest", "/guest/hello", "1-aaa")
OTHER = ActionKey("guest", "/guest/other", "1-bbb")
THIRD = ActionKey("guest", "/guest/third", "1-ccc")


@pytest.fixture
def executor() -> ScriptedExecutor:
    return ScriptedExecutor()


@pytest.fixture
async def pool() -> AsyncIterator[Pool]:
    """A 512 MB pool without its idle reaper (tests of the reaper start their own)."""
    pool = Pool(user_memory_mb=512, idle_timeout_s=600)
    yield pool
    await pool.close()


async def _warm(pool: Pool, key: ActionKey, executor: ScriptedExecutor, memory_mb: int = 256) -> Instance:
    """Acquire an instance and pretend the caller created and initialised it."""
    instance = await pool.acquire(key, executor, memory_mb, 1)
    instance.initialized = True
    return instance


async def _eventually(condition: Callable[[], bool], timeout_s: float = 2.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


async def _settle() -> None:
    """Let tasks woken by a release (grants, destroys) run."""
    for _ in range(3):
        await asyncio.sleep(0)


# warm reuse -------------------------------------------------------------------------------------


async def test_new_instance_is_reserved_and_not_initialised(pool: Pool, executor: ScriptedExecutor) -> None:
    instance = await pool.acquire(HELLO, executor, 256, 1)
    assert instance.initialized is False
    assert instance.key == HELLO
    assert instance.executor is executor
    assert pool.used_mb == 256


async def test_released_warm_instance_is_reused_for_the_same_action(pool: Pool, executor: ScriptedExecutor) -> None:
    first = await _warm(pool, HELLO, executor)
    pool.release(first, healthy=True)

    second = await pool.acquire(HELLO, executor, 256, 1)

    assert second is first
    assert second.initialized is True
    assert pool.used_mb == 256
    assert len(pool.instances()) == 1


async def test_a_new_revision_gets_a_new_instance(pool: Pool, executor: ScriptedExecutor) -> None:
    old = await _warm(pool, HELLO, executor)
    pool.release(old, healthy=True)

    new = await pool.acquire(HELLO._replace(revision="2-zzz"), executor, 256, 1)

    assert new is not old
    assert new.initialized is False
    assert pool.used_mb == 512


async def test_another_namespace_never_shares_an_instance(pool: Pool, executor: ScriptedExecutor) -> None:
    mine = await _warm(pool, HELLO, executor)
    pool.release(mine, healthy=True)

    theirs = await pool.acquire(HELLO._replace(namespace="other"), executor, 256, 1)

    assert theirs is not mine


async def test_busy_instance_is_not_shared_when_concurrency_is_1(pool: Pool, executor: ScriptedExecutor) -> None:
    first = await _warm(pool, HELLO, executor)
    second = await pool.acquire(HELLO, executor, 256, 1)
    assert second is not first


async def test_instance_with_concurrency_2_takes_two_activations_at_once(
    pool: Pool, executor: ScriptedExecutor
) -> None:
    first = await pool.acquire(HELLO, executor, 256, 2)
    first.initialized = True
    second = await pool.acquire(HELLO, executor, 256, 2)
    third = await pool.acquire(HELLO, executor, 256, 2)

    assert second is first
    assert first.in_flight == 2
    assert third is not first
    assert pool.used_mb == 512


async def test_instance_still_initialising_takes_a_second_activation_once_it_is_initialised(
    pool: Pool, executor: ScriptedExecutor
) -> None:
    # [OW] ContainerPool.schedule: a container being started for the action (WarmingColdData) has capacity.
    initialising = await pool.acquire(HELLO, executor, 256, 2)
    other = asyncio.create_task(pool.acquire(HELLO, executor, 256, 2))
    await _settle()
    assert not other.done() and initialising.in_flight == 2, "it joined and waits for the /init"
    initialising.initialized = True
    assert await asyncio.wait_for(other, 2) is initialising
    assert pool.used_mb == 256


# memory budget ----------------------------------------------------------------------------------


async def test_third_instance_waits_for_memory_until_one_is_released(pool: Pool, executor: ScriptedExecutor) -> None:
    first = await _warm(pool, HELLO, executor)
    await _warm(pool, OTHER, executor)

    waiting = asyncio.create_task(pool.acquire(THIRD, executor, 256, 1))
    await _settle()
    assert not waiting.done()
    assert pool.queued == 1

    pool.release(first, healthy=True)
    third = await asyncio.wait_for(waiting, 1)

    assert third.key == THIRD
    assert pool.queued == 0
    assert pool.used_mb == 512
    await _eventually(lambda: executor.destroyed == [first.id])


async def test_waiting_activation_of_the_same_action_takes_the_released_warm_instance(
    pool: Pool, executor: ScriptedExecutor
) -> None:
    first = await _warm(pool, HELLO, executor)
    await _warm(pool, HELLO, executor)
    waiting = asyncio.create_task(pool.acquire(HELLO, executor, 256, 1))
    await _settle()

    pool.release(first, healthy=True)

    assert await asyncio.wait_for(waiting, 1) is first
    assert executor.destroyed == []


async def test_instance_larger_than_the_whole_budget_is_a_value_error(pool: Pool, executor: ScriptedExecutor) -> None:
    with pytest.raises(ValueError, match="1024 MB can never fit in 512 MB"):
        await pool.acquire(HELLO, executor, 1024, 1)
    assert pool.queued == 0
    assert pool.used_mb == 0


async def test_instance_of_exactly_the_budget_fits(pool: Pool, executor: ScriptedExecutor) -> None:
    instance = await pool.acquire(HELLO, executor, 512, 1)
    assert pool.used_mb == 512
    assert instance.memory_mb == 512


# eviction ---------------------------------------------------------------------------------------


async def test_idle_instances_are_evicted_least_recently_used_first(pool: Pool, executor: ScriptedExecutor) -> None:
    hello = await _warm(pool, HELLO, executor)
    other = await _warm(pool, OTHER, executor)
    pool.release(hello, healthy=True)
    pool.release(other, healthy=True)
    # Use hello again, so other becomes the least recently used.
    again = await pool.acquire(HELLO, executor, 256, 1)
    assert again is hello
    pool.release(again, healthy=True)

    third = await pool.acquire(THIRD, executor, 256, 1)

    assert third.key == THIRD
    await _eventually(lambda: executor.destroyed == [other.id])
    assert {i.key for i in pool.instances()} == {HELLO, THIRD}
    assert pool.used_mb == 512


async def test_eviction_removes_as_many_idle_instances_as_needed(pool: Pool, executor: ScriptedExecutor) -> None:
    small = [await _warm(pool, ActionKey("guest", f"/guest/a{i}", "1"), executor, 128) for i in range(4)]
    for instance in small:
        pool.release(instance, healthy=True)

    big = await pool.acquire(HELLO, executor, 384, 1)

    assert big.memory_mb == 384
    await _eventually(lambda: len(executor.destroyed) == 3)
    assert executor.destroyed == [i.id for i in small[:3]]
    assert pool.used_mb == 512


async def test_busy_instances_are_never_evicted(pool: Pool, executor: ScriptedExecutor) -> None:
    await _warm(pool, HELLO, executor)  # busy
    idle = await _warm(pool, OTHER, executor)
    pool.release(idle, healthy=True)

    waiting = asyncio.create_task(pool.acquire(THIRD, executor, 512, 1))
    await _settle()

    # Evicting the idle instance would not make room, so nothing is destroyed and the request waits.
    assert not waiting.done()
    assert executor.destroyed == []
    assert idle in pool.instances()
    waiting.cancel()


# unhealthy instances ----------------------------------------------------------------------------


async def test_unhealthy_release_destroys_the_instance_and_frees_its_memory(
    pool: Pool, executor: ScriptedExecutor
) -> None:
    instance = await _warm(pool, HELLO, executor)

    pool.release(instance, healthy=False)

    assert pool.used_mb == 0
    assert pool.instances() == []
    await _eventually(lambda: executor.destroyed == [instance.id])
    assert (await pool.acquire(HELLO, executor, 256, 1)) is not instance


async def test_a_failing_destroy_is_logged_not_raised(pool: Pool, caplog: pytest.LogCaptureFixture) -> None:
    class BrokenDestroy(ScriptedExecutor):
        async def destroy(self, instance_id: str) -> None:
            raise RuntimeError("docker went away")

    instance = await _warm(pool, HELLO, BrokenDestroy())
    pool.release(instance, healthy=False)

    await _eventually(lambda: "destroying instance" in caplog.text)
    assert pool.used_mb == 0


# FIFO -------------------------------------------------------------------------------------------


async def test_waiting_requests_are_served_first_come_first_served(executor: ScriptedExecutor) -> None:
    pool = Pool(user_memory_mb=256, idle_timeout_s=600)
    holder = await _warm(pool, HELLO, executor)
    keys = [ActionKey("guest", f"/guest/w{i}", "1") for i in range(4)]
    waiters = []
    for key in keys:
        waiters.append(asyncio.create_task(pool.acquire(key, executor, 256, 1)))
        await asyncio.sleep(0)  # queue them in this order
    assert pool.queued == 4

    granted: list[ActionKey] = []
    current = holder
    for _ in keys:
        pool.release(current, healthy=True)
        done, _ = await asyncio.wait(waiters, timeout=1, return_when=asyncio.FIRST_COMPLETED)
        assert len(done) == 1
        task = done.pop()
        waiters.remove(task)
        current = task.result()
        current.initialized = True
        granted.append(current.key)

    assert granted == keys
    await pool.close()


async def test_a_small_request_does_not_overtake_a_waiting_large_one(executor: ScriptedExecutor) -> None:
    pool = Pool(user_memory_mb=512, idle_timeout_s=600)
    await _warm(pool, HELLO, executor)  # stays busy
    other = await _warm(pool, OTHER, executor)
    large = asyncio.create_task(pool.acquire(ActionKey("guest", "/guest/large", "1"), executor, 512, 1))
    await asyncio.sleep(0)
    small = asyncio.create_task(pool.acquire(THIRD, executor, 256, 1))
    await asyncio.sleep(0)

    pool.release(other, healthy=True)
    await _settle()

    # 256 MB are free, but the large request came first and still does not fit.
    assert not large.done()
    assert not small.done()
    assert pool.queued == 2
    await pool.close()
    assert large.cancelled()
    assert small.cancelled()


# cancellation -----------------------------------------------------------------------------------


async def test_cancelled_waiting_acquire_does_not_leak(executor: ScriptedExecutor) -> None:
    pool = Pool(user_memory_mb=256, idle_timeout_s=600)
    holder = await _warm(pool, HELLO, executor)
    waiting = asyncio.create_task(pool.acquire(OTHER, executor, 256, 1))
    await _settle()
    assert pool.queued == 1

    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    pool.release(holder, healthy=True)

    assert pool.queued == 0
    nxt = await asyncio.wait_for(pool.acquire(THIRD, executor, 256, 1), 1)
    assert nxt.key == THIRD
    assert pool.used_mb == 256
    await pool.close()


async def test_acquire_cancelled_right_after_its_grant_gives_the_memory_back(executor: ScriptedExecutor) -> None:
    pool = Pool(user_memory_mb=256, idle_timeout_s=600)
    holder = await _warm(pool, HELLO, executor)
    waiting = asyncio.create_task(pool.acquire(OTHER, executor, 256, 1))
    await _settle()

    pool.release(holder, healthy=True)  # grants the instance to the waiting task...
    waiting.cancel()  # ...which is cancelled before it could run
    with pytest.raises(asyncio.CancelledError):
        await waiting

    assert all(i.in_flight == 0 for i in pool.instances())
    nxt = await asyncio.wait_for(pool.acquire(THIRD, executor, 256, 1), 1)
    assert nxt.key == THIRD
    await pool.close()


# idle reaper and close --------------------------------------------------------------------------


async def test_idle_reaper_destroys_instances_idle_past_the_timeout(executor: ScriptedExecutor) -> None:
    pool = Pool(user_memory_mb=512, idle_timeout_s=0.05)
    await pool.start()
    idle = await _warm(pool, HELLO, executor)
    busy = await _warm(pool, OTHER, executor)
    pool.release(idle, healthy=True)

    await _eventually(lambda: executor.destroyed == [idle.id])

    assert pool.instances() == [busy]
    assert pool.used_mb == 256
    await pool.close()


async def test_idle_reaper_spares_instances_used_within_the_timeout(executor: ScriptedExecutor) -> None:
    pool = Pool(user_memory_mb=512, idle_timeout_s=5)
    await pool.start()
    instance = await _warm(pool, HELLO, executor)
    pool.release(instance, healthy=True)
    await asyncio.sleep(0.05)
    assert pool.instances() == [instance]
    await pool.close()


async def test_close_destroys_every_instance_and_cancels_waiters(executor: ScriptedExecutor) -> None:
    pool = Pool(user_memory_mb=512, idle_timeout_s=600)
    await pool.start()
    idle = await _warm(pool, HELLO, executor)
    busy = await _warm(pool, OTHER, executor)
    pool.release(idle, healthy=True)
    waiting = asyncio.create_task(pool.acquire(THIRD, executor, 512, 1))
    await _settle()

    await pool.close()

    assert sorted(executor.destroyed) == sorted([idle.id, busy.id])
    assert pool.instances() == []
    assert pool.used_mb == 0
    with pytest.raises(asyncio.CancelledError):
        await waiting
