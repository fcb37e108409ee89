"""The pool's concurrency, its charges and its queue: every run inside the budget, and fair across namespaces.

An instance takes at most the action's ``concurrency`` runs ([OW] ContainerPool.schedule). A container's
runs share its charge; a ``ConcurrentExecutor``'s instance (WASM: one Store per run) is charged per run.
Waiting requests are served by namespace, the one holding the least memory first (invoker/pool.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from invoker.pool import ActionKey, Instance, Pool
from pywhisk.executor import ConcurrentExecutor
from tests.doubles import ScriptedExecutor

pytestmark = pytest.mark.unit

SLEEP = ActionKey("alice", "/alice/sleep", "1-a")
HELLO = ActionKey("bob", "/bob/hello", "1-b")
CAROL = ActionKey("carol", "/carol/hello", "1-c")


class StorePerRunExecutor(ScriptedExecutor):
    """The scripted double as a ``ConcurrentExecutor``: every run has memory of its own, like WASM's Stores."""

    max_runs_per_instance = 4096


@pytest.fixture
def wasm() -> StorePerRunExecutor:
    executor = StorePerRunExecutor()
    assert isinstance(executor, ConcurrentExecutor)
    return executor


@pytest.fixture
def docker() -> ScriptedExecutor:
    return ScriptedExecutor()


@pytest.fixture
async def pool() -> AsyncIterator[Pool]:
    pool = Pool(user_memory_mb=1024, idle_timeout_s=600)
    yield pool
    await pool.close()


async def _run(pool: Pool, key: ActionKey, executor: ScriptedExecutor, concurrency: int = 1, mb: int = 256) -> Instance:
    instance = await pool.acquire(key, executor, mb, concurrency)
    instance.created = instance.initialized = True
    return instance


def _queue(pool: Pool, key: ActionKey, executor: ScriptedExecutor, mb: int = 256) -> asyncio.Task[Instance]:
    return asyncio.create_task(pool.acquire(key, executor, mb, 1), name=f"acquire-{key.namespace}")


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


# concurrency and charges ------------------------------------------------------------------------


async def test_a_concurrency_1_action_never_shares_an_instance_even_on_a_store_per_run_executor(
    pool: Pool, wasm: StorePerRunExecutor
) -> None:
    first = await _run(pool, SLEEP, wasm)
    second = await _run(pool, SLEEP, wasm)

    assert second is not first
    assert (first.in_flight, second.in_flight) == (1, 1)
    assert pool.used_mb == 512


async def test_a_store_per_run_instance_is_charged_once_per_run_in_flight(
    pool: Pool, wasm: StorePerRunExecutor
) -> None:
    first = await _run(pool, SLEEP, wasm, concurrency=3)
    assert pool.used_mb == 256
    second = await pool.acquire(SLEEP, wasm, 256, 3)
    third = await pool.acquire(SLEEP, wasm, 256, 3)
    assert second is first and third is first
    assert pool.used_mb == 768, "three runs, three memories"

    fourth = await pool.acquire(SLEEP, wasm, 256, 3)
    assert fourth is not first, "concurrency 3 reached: a further run gets a further instance"
    assert pool.used_mb == 1024

    for _ in range(3):
        pool.release(first, healthy=True)
    assert pool.used_mb == 512, "an idle warm instance keeps one charge until it is evicted"


async def test_a_containers_concurrent_runs_share_its_single_charge(pool: Pool, docker: ScriptedExecutor) -> None:
    first = await _run(pool, SLEEP, docker, concurrency=3)
    again = [await pool.acquire(SLEEP, docker, 256, 3) for _ in range(2)]

    assert all(i is first for i in again)
    assert first.in_flight == 3
    assert pool.used_mb == 256


async def test_a_further_run_on_a_warm_store_per_run_instance_waits_for_memory(wasm: StorePerRunExecutor) -> None:
    pool = Pool(user_memory_mb=512, idle_timeout_s=600)
    first = await _run(pool, SLEEP, wasm, concurrency=4)
    await pool.acquire(SLEEP, wasm, 256, 4)
    assert pool.used_mb == 512

    waiting = asyncio.create_task(pool.acquire(SLEEP, wasm, 256, 4))
    await _settle()
    assert not waiting.done(), "the instance has room for 4 runs but the budget has none for a third"
    assert pool.queued == 1

    pool.release(first, healthy=True)
    assert await asyncio.wait_for(waiting, 1) is first
    assert pool.used_mb == 512
    await pool.close()


async def test_an_idle_store_per_run_instance_is_evicted_for_another_action(wasm: StorePerRunExecutor) -> None:
    pool = Pool(user_memory_mb=512, idle_timeout_s=600)
    idle = await _run(pool, SLEEP, wasm, concurrency=2)
    await pool.acquire(SLEEP, wasm, 256, 2)
    pool.release(idle, healthy=True)
    pool.release(idle, healthy=True)
    await _run(pool, CAROL, wasm)

    other = await asyncio.wait_for(pool.acquire(HELLO, wasm, 256, 1), 1)

    assert other.key == HELLO
    assert idle not in pool.instances()
    assert pool.used_mb == 512
    await pool.close()


async def test_a_removed_instance_keeps_the_charge_of_its_runs_until_they_end(
    pool: Pool, wasm: StorePerRunExecutor
) -> None:
    instance = await _run(pool, SLEEP, wasm, concurrency=2)
    await pool.acquire(SLEEP, wasm, 256, 2)

    pool.release(instance, healthy=False)  # one run failed: the instance goes, the other run goes on
    assert instance not in pool.instances()
    assert pool.used_mb == 256, "the run still in progress holds its memory"

    pool.release(instance, healthy=True)
    assert pool.used_mb == 0


async def test_a_removed_container_is_charged_until_its_last_run_returns(pool: Pool, docker: ScriptedExecutor) -> None:
    container = await _run(pool, SLEEP, docker, concurrency=2)
    await pool.acquire(SLEEP, docker, 256, 2)

    pool.release(container, healthy=False)
    assert pool.used_mb == 256
    pool.release(container, healthy=True)
    assert pool.used_mb == 0


async def test_concurrency_below_one_is_a_value_error(pool: Pool, wasm: StorePerRunExecutor) -> None:
    with pytest.raises(ValueError, match="at least one run"):
        await pool.acquire(SLEEP, wasm, 256, 0)


# fairness across namespaces ---------------------------------------------------------------------


async def test_a_namespace_holding_nothing_is_served_before_a_flooding_one(
    pool: Pool, wasm: StorePerRunExecutor
) -> None:
    running = [await _run(pool, SLEEP, wasm) for _ in range(4)]
    flood = [_queue(pool, SLEEP, wasm) for _ in range(20)]
    await _settle()
    hello = _queue(pool, HELLO, wasm)
    await _settle()
    assert pool.queued == 21

    pool.release(running[0], healthy=True)
    await _settle()

    assert hello.done(), "bob holds nothing, alice 768 MB: bob's hello goes first"
    assert not any(task.done() for task in flood)
    assert pool.running_mb("bob") == 256 and pool.running_mb("alice") == 768
    for task in flood:
        task.cancel()


async def test_each_release_goes_to_the_namespace_holding_the_least(pool: Pool, wasm: StorePerRunExecutor) -> None:
    running = [await _run(pool, SLEEP, wasm) for _ in range(4)]
    alice = [_queue(pool, SLEEP, wasm) for _ in range(6)]
    await _settle()
    bob = [_queue(pool, HELLO, wasm) for _ in range(6)]
    await _settle()

    for instance in running:
        pool.release(instance, healthy=True)
        await _settle()

    # Held (alice, bob) before each release's grant: (768, 0) → bob; (512, 256) → bob; (256, 512) → alice;
    # (256, 512) → alice. Two each: the flood took no more than its share.
    assert sum(t.done() for t in bob) == 2
    assert sum(t.done() for t in alice) == 2
    assert pool.running_mb("alice") == pool.running_mb("bob") == 512
    for task in alice + bob:
        task.cancel()


async def test_between_namespaces_holding_as_much_the_earlier_head_goes_first(
    pool: Pool, wasm: StorePerRunExecutor
) -> None:
    holders = [await _run(pool, CAROL, wasm) for _ in range(4)]
    first = _queue(pool, SLEEP, wasm)
    await _settle()
    second = _queue(pool, HELLO, wasm)
    await _settle()

    pool.release(holders[0], healthy=True)
    await _settle()

    assert first.done() and not second.done()
    second.cancel()


async def test_the_chosen_head_that_does_not_fit_is_not_overtaken(wasm: StorePerRunExecutor) -> None:
    pool = Pool(user_memory_mb=512, idle_timeout_s=600)
    a, b = await _run(pool, SLEEP, wasm), await _run(pool, SLEEP, wasm)
    large = asyncio.create_task(pool.acquire(HELLO, wasm, 512, 1))
    await _settle()
    small = _queue(pool, SLEEP, wasm)
    await _settle()

    pool.release(a, healthy=True)
    await _settle()
    # 256 MB free would take alice's small run, but bob (holding nothing) is first and needs 512.
    assert not large.done() and not small.done()

    pool.release(b, healthy=True)
    granted = await asyncio.wait_for(large, 1)
    assert granted.key == HELLO and granted.memory_mb == 512
    assert not small.done()
    await pool.close()
    assert small.cancelled()


async def test_a_cancelled_waiter_of_a_namespace_does_not_block_the_next(pool: Pool, wasm: StorePerRunExecutor) -> None:
    running = [await _run(pool, SLEEP, wasm) for _ in range(4)]
    gone = _queue(pool, HELLO, wasm)
    await _settle()
    after = _queue(pool, HELLO, wasm)
    await _settle()
    gone.cancel()
    await _settle()

    pool.release(running[0], healthy=True)

    assert (await asyncio.wait_for(after, 1)).key == HELLO
    assert pool.queued == 0


# the reserve for namespaces running nothing ------------------------------------------------------


async def test_a_namespace_running_nothing_starts_at_once_from_the_reserve(wasm: StorePerRunExecutor) -> None:
    pool = Pool(user_memory_mb=1024, idle_timeout_s=600, reserve_mb=256)
    for _ in range(3):
        await _run(pool, SLEEP, wasm)
    fourth = _queue(pool, SLEEP, wasm)
    await _settle()
    assert not fourth.done(), "alice runs something: she leaves the last 256 MB to the others"

    hello = await asyncio.wait_for(pool.acquire(HELLO, wasm, 256, 1), 1)

    assert hello.key == HELLO
    assert pool.used_mb == 1024
    second_hello = _queue(pool, HELLO, wasm)
    await _settle()
    assert not second_hello.done(), "bob now runs something too"
    await pool.close()


async def test_the_idle_warm_instance_of_a_namespace_running_nothing_is_not_evicted_for_a_busy_one(
    wasm: StorePerRunExecutor,
) -> None:
    # The cpu class (issue 12): each wave of the attacker's runs evicted the victim's one warm hello, whose next
    # activation then started cold. That instance is the reserve in use by a namespace running nothing.
    pool = Pool(user_memory_mb=1024, idle_timeout_s=600, reserve_mb=256)
    hello = await _run(pool, HELLO, wasm)
    pool.release(hello, healthy=True)
    sleeps = [await _run(pool, SLEEP, wasm) for _ in range(2)]

    third = await asyncio.wait_for(pool.acquire(SLEEP, wasm, 256, 1), 1)
    fourth = _queue(pool, SLEEP, wasm)
    await _settle()

    assert hello in pool.instances(), "bob's warm instance kept"
    assert third.key == SLEEP and not fourth.done(), "alice gets the budget but the reserve"
    again = await asyncio.wait_for(pool.acquire(HELLO, wasm, 256, 1), 1)
    assert again is hello, "bob's next hello is warm"
    pool.release(again, healthy=True)
    for instance in (*sleeps, third):
        pool.release(instance, healthy=True)
    await pool.close()


async def test_a_namespace_running_nothing_may_still_evict_another_ones_idle_instance(
    wasm: StorePerRunExecutor,
) -> None:
    pool = Pool(user_memory_mb=1024, idle_timeout_s=600, reserve_mb=256)
    hello = await _run(pool, HELLO, wasm)
    pool.release(hello, healthy=True)
    for _ in range(3):
        await _run(pool, SLEEP, wasm)
    assert pool.used_mb == 1024

    carol = await asyncio.wait_for(pool.acquire(CAROL, wasm, 256, 1), 1)

    assert carol.key == CAROL and hello not in pool.instances()
    await pool.close()


async def test_the_reserve_is_at_most_a_quarter_of_the_budget() -> None:
    assert Pool(user_memory_mb=1024, idle_timeout_s=600, reserve_mb=4096).reserve_mb == 256
    assert Pool(user_memory_mb=4096, idle_timeout_s=600, reserve_mb=512).reserve_mb == 512


async def test_the_first_run_of_a_namespace_may_use_the_whole_budget(wasm: StorePerRunExecutor) -> None:
    pool = Pool(user_memory_mb=512, idle_timeout_s=600, reserve_mb=128)
    only = await asyncio.wait_for(pool.acquire(SLEEP, wasm, 512, 1), 1)
    assert only.memory_mb == 512 and pool.used_mb == 512
    await pool.close()
