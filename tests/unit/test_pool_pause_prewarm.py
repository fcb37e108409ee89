"""The pool's pause/resume of idle instances and its prewarmed stem cells."""

from __future__ import annotations

import asyncio

import pytest

from invoker.pool import ActionKey, Pool, StemCells
from pywhisk.executor import InitRequest, InstanceSpec, PausableExecutor, ProxyResult, RunRequest
from tests.doubles import ScriptedExecutor

pytestmark = pytest.mark.unit

KEY = ActionKey("guest", "/guest/hello", "1-a")


class PausingExecutor(ScriptedExecutor):
    """The scripted double plus pause/resume, recording every call in order."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, str]] = []

    async def create(self, spec: InstanceSpec) -> None:
        await super().create(spec)
        self.calls.append(("create", spec.instance_id))

    async def init(self, instance_id: str, request: InitRequest, timeout_ms: int, log_limit_bytes: int) -> ProxyResult:
        return await super().init(instance_id, request, timeout_ms, log_limit_bytes)

    async def run(self, instance_id: str, request: RunRequest, timeout_ms: int, log_limit_bytes: int) -> ProxyResult:
        return await super().run(instance_id, request, timeout_ms, log_limit_bytes)

    async def pause(self, instance_id: str) -> None:
        self.calls.append(("pause", instance_id))

    async def resume(self, instance_id: str) -> None:
        self.calls.append(("resume", instance_id))


async def _until(condition: object, timeout_s: float = 2.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.005)


async def test_an_idle_instance_is_paused_after_the_grace_period_and_resumed_for_the_next_run() -> None:
    executor = PausingExecutor()
    assert isinstance(executor, PausableExecutor)
    pool = Pool(user_memory_mb=1024, idle_timeout_s=60, pause_grace_s=0.05)
    instance = await pool.acquire(KEY, executor, 256, 1)
    instance.created = instance.initialized = True
    pool.release(instance, healthy=True)

    await _until(lambda: instance.paused)
    again = await pool.acquire(KEY, executor, 256, 1)

    assert again is instance
    assert not again.paused
    assert executor.calls == [("pause", instance.id), ("resume", instance.id)]
    pool.release(again, healthy=True)
    await pool.close()


async def test_work_within_the_grace_period_keeps_the_instance_running() -> None:
    executor = PausingExecutor()
    pool = Pool(user_memory_mb=1024, idle_timeout_s=60, pause_grace_s=0.2)
    instance = await pool.acquire(KEY, executor, 256, 1)
    instance.created = instance.initialized = True
    pool.release(instance, healthy=True)
    await asyncio.sleep(0.1)
    again = await pool.acquire(KEY, executor, 256, 1)
    await asyncio.sleep(0.15)  # the first release's grace has passed, but the instance was busy

    assert ("pause", instance.id) not in executor.calls
    pool.release(again, healthy=True)
    await _until(lambda: instance.paused)
    await pool.close()


async def test_executors_that_cannot_pause_are_never_asked_to() -> None:
    executor = ScriptedExecutor()
    assert not isinstance(executor, PausableExecutor)
    pool = Pool(user_memory_mb=1024, idle_timeout_s=60, pause_grace_s=0.01)
    instance = await pool.acquire(KEY, executor, 256, 1)
    instance.created = instance.initialized = True
    pool.release(instance, healthy=True)
    await asyncio.sleep(0.05)

    assert not instance.paused
    await pool.close()


async def test_a_stem_cell_of_the_same_kind_and_memory_serves_a_cold_start_and_is_refilled() -> None:
    executor = PausingExecutor()
    pool = Pool(user_memory_mb=1024, idle_timeout_s=60, pause_grace_s=60)
    pool.prewarm(StemCells(executor, "python:3.11", 256, 2))
    await _until(lambda: all(c.created for c in pool.stem_cells()) and len(pool.stem_cells()) == 2)
    assert pool.used_mb == 512
    stem_ids = {c.id for c in pool.stem_cells()}

    instance = await pool.acquire(KEY, executor, 256, 1, kind="python:3.11")

    assert instance.id in stem_ids, "a prewarmed instance was used"
    assert instance.created and not instance.initialized, "started already, the action still to init"
    await _until(lambda: len(pool.stem_cells()) == 2 and all(c.created for c in pool.stem_cells()))
    assert pool.used_mb == 768
    pool.release(instance, healthy=True)
    await pool.close()
    assert len(executor.destroyed) == 3


async def test_a_taken_stem_cell_is_replaced_when_its_activation_ends_not_while_it_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("invoker.pool.REFILL_DEFER_MAX_S", 60.0)
    executor = PausingExecutor()
    pool = Pool(user_memory_mb=1024, idle_timeout_s=60, pause_grace_s=60)
    pool.prewarm(StemCells(executor, "python:3.11", 256, 1))
    await _until(lambda: all(c.created for c in pool.stem_cells()) and pool.stem_cells())

    instance = await pool.acquire(KEY, executor, 256, 1, kind="python:3.11")
    for _ in range(20):  # the loop turns over: a replacement spawned now would have called create
        await asyncio.sleep(0)
    creates_while_it_ran = [c for c in executor.calls if c[0] == "create"]
    pool.release(instance, healthy=True)
    await _until(lambda: len(pool.stem_cells()) == 1 and all(c.created for c in pool.stem_cells()))

    # Its container start would compete with the activation's /init and /run for the same cores (issue 17).
    assert creates_while_it_ran == [("create", instance.id)]
    assert pool.stem_cells()[0] is not instance
    await pool.close()


async def test_a_stem_cell_taken_by_a_long_activation_is_replaced_after_a_bounded_delay(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("invoker.pool.REFILL_DEFER_MAX_S", 0.01)
    executor = PausingExecutor()
    pool = Pool(user_memory_mb=1024, idle_timeout_s=60, pause_grace_s=60)
    pool.prewarm(StemCells(executor, "python:3.11", 256, 1))
    await _until(lambda: all(c.created for c in pool.stem_cells()) and pool.stem_cells())

    instance = await pool.acquire(KEY, executor, 256, 1, kind="python:3.11")
    await _until(lambda: len(pool.stem_cells()) == 1 and all(c.created for c in pool.stem_cells()))

    assert instance.in_flight == 1, "replaced while its activation still runs"
    pool.release(instance, healthy=True)
    assert len(pool.stem_cells()) == 1, "the release refills no second time"
    await pool.close()


async def test_stem_cells_of_another_kind_or_memory_are_not_used() -> None:
    executor = PausingExecutor()
    pool = Pool(user_memory_mb=2048, idle_timeout_s=60)
    pool.prewarm(StemCells(executor, "python:3.11", 256, 1))
    await _until(lambda: all(c.created for c in pool.stem_cells()) and pool.stem_cells())
    stem = pool.stem_cells()[0]

    other_kind = await pool.acquire(KEY, executor, 256, 1, kind="wasm:wasi")
    other_memory = await pool.acquire(ActionKey("guest", "/guest/big", "1"), executor, 512, 1, kind="python:3.11")

    assert other_kind is not stem and not other_kind.created
    assert other_memory is not stem and not other_memory.created
    assert pool.stem_cells() == [stem]
    await pool.close()


async def test_stem_cells_leave_the_reserve_for_namespaces_running_nothing() -> None:
    executor = PausingExecutor()
    pool = Pool(user_memory_mb=1024, idle_timeout_s=60, reserve_mb=256)
    pool.prewarm(StemCells(executor, "python:3.11", 256, 4))
    await _until(lambda: len(pool.stem_cells()) == 3 and all(c.created for c in pool.stem_cells()))

    assert pool.used_mb == 768, "three stem cells: the fourth would take the reserve"
    anyone = await asyncio.wait_for(pool.acquire(KEY, executor, 256, 1, kind="wasm:wasi"), 1)
    assert anyone.key == KEY
    await pool.close()
