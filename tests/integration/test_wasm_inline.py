"""Warm runs of tiny guests on the event loop (executor_wasm/inline.py), against real Wasmtime.

What must hold: a guest runs inline only when it cannot block and after a streak of short runs; an inline
result is the pooled one; a guest that reaches the inline budget is not reported as failed but run again on
the pool, with its own time limit, and waits a longer streak next time.
"""

from __future__ import annotations

import base64
import threading
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from executor_wasm.executor import WasmExecutor
from executor_wasm.grants import Grants
from executor_wasm.inline import SHORT_RUNS, InlineRunner, may_run_inline
from executor_wasm.settings import WasmSettings, module_cache_dir
from pywhisk.executor import InitRequest, InstanceSpec
from tests.executors import LOG_LIMIT, log_text, run_request
from tests.executors import wasm_module as action_bytes

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture
async def executor(tmp_path: Path) -> AsyncIterator[WasmExecutor]:
    wasm = WasmExecutor(WasmSettings(threads=4), module_cache_dir(tmp_path))
    await wasm.start()
    yield wasm
    await wasm.close()


async def deploy(executor: WasmExecutor, action: str, annotations: dict[str, object] | None = None) -> str:
    instance_id = uuid.uuid4().hex
    spec = InstanceSpec(instance_id=instance_id, kind="wasm:wasi", memory_mb=128, annotations=annotations or {})
    await executor.create(spec)
    code = base64.b64encode(action_bytes(action)).decode()
    ready = await executor.init(instance_id, InitRequest(name=action, code=code, binary=True), 30_000, LOG_LIMIT)
    assert ready.status == 200, ready
    return instance_id


def inline_of(executor: WasmExecutor) -> InlineRunner:
    assert executor.inline is not None, "expected POSIX timers on this host"
    return executor.inline


async def test_a_short_guest_runs_inline_after_its_streak_with_the_same_result(executor: WasmExecutor) -> None:
    inline = inline_of(executor)
    instance_id = await deploy(executor, "hello")
    results = [
        await executor.run(instance_id, run_request({"name": "Ada"}), 10_000, LOG_LIMIT) for _ in range(SHORT_RUNS + 5)
    ]

    assert inline.runs >= 1, "expected hello to run inline once its streak of short runs was there"
    # An inline run waited for no thread: its queue is 0. On a machine busy with other tests one run may reach
    # the inline bound and go back to the pool (its streak starts again), so the last is not always inline.
    ran_inline = [result for result in results if result.queued_ms == 0]
    assert len(ran_inline) == inline.runs, (inline.runs, [result.queued_ms for result in results])
    pooled, last_inline = results[0], ran_inline[-1]
    assert pooled.queued_ms > 0  # the first run is on the pool, before any streak
    assert pooled.status == last_inline.status == 200
    assert pooled.body == last_inline.body
    assert log_text(pooled) == log_text(last_inline)


async def test_pooled_runs_slow_by_the_clock_but_short_on_cpu_still_make_the_streak(
    executor: WasmExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Under load a pooled hello waits for the GIL and a core, so its wall time is over SHORT_MS while it uses a
    # fraction of a millisecond of CPU. Judged by the clock its instance never got back inline, and one worker
    # ran ~2x the CPU per request (docs/benchmarks.md, issue 15, 2026-12-07): the streak counts CPU time.
    import executor_wasm.executor as executor_module

    real_run_module = executor_module.run_module

    def waiting_run_module(*args: Any, **kwargs: Any) -> Any:
        result = real_run_module(*args, **kwargs)
        waited = threading.Event()
        waited.wait(0.01)  # off the CPU, as waiting for the GIL or a core is (the run's clock goes on)
        result.duration_ms = (result.duration_ms or 0) + 10
        return result

    monkeypatch.setattr(executor_module, "run_module", waiting_run_module)
    inline = inline_of(executor)
    instance_id = await deploy(executor, "hello")
    for _ in range(SHORT_RUNS + 2):
        result = await executor.run(instance_id, run_request({"name": "Ada"}), 10_000, LOG_LIMIT)
        assert result.status == 200

    assert inline.runs >= 1, "expected the streak to count the pooled runs' CPU time, not their wall time"


async def test_a_guest_that_reaches_the_budget_runs_again_on_the_pool_with_its_own_limit(
    executor: WasmExecutor,
) -> None:
    inline = inline_of(executor)
    instance_id = await deploy(executor, "loop")  # imports nothing that blocks: eligible by its module
    streak = executor._instances[instance_id].streak
    assert streak is not None
    streak.short = streak.needed  # as if its last runs had been short: the next one is tried inline
    needed = streak.needed

    result = await executor.run(instance_id, run_request(None), 300, LOG_LIMIT)

    assert inline.overruns == 1 and inline.runs == 0
    # Its outcome is the pooled run's: stopped at its own 300 ms limit, not at the inline budget.
    assert result.timed_out and result.status is None
    assert result.duration_ms is not None and result.duration_ms >= 300
    assert streak.short == 0  # and a longer streak is needed if the guest, not the machine, used the budget
    assert streak.needed in (needed, 2 * needed)


async def test_guests_that_can_block_or_hold_grants_never_run_inline(executor: WasmExecutor) -> None:
    sleeper = await deploy(executor, "sleep")  # imports poll_oneoff
    assert executor._instances[sleeper].streak is None
    hello = await deploy(executor, "hello")
    compiled = executor._instances[hello].compiled
    assert executor._instances[hello].streak is not None and compiled is not None
    assert not may_run_inline(compiled.module, Grants(net_access=True))
    assert not may_run_inline(compiled.module, Grants(preopens=(("/data", "/tmp"),)))


async def test_inline_runs_can_be_turned_off(tmp_path: Path) -> None:
    wasm = WasmExecutor(WasmSettings(inline=False), module_cache_dir(tmp_path))
    await wasm.start()
    try:
        assert wasm.inline is None
        instance_id = await deploy(wasm, "hello")
        for _ in range(SHORT_RUNS + 2):
            result = await wasm.run(instance_id, run_request({"name": "x"}), 10_000, LOG_LIMIT)
            assert result.status == 200
    finally:
        await wasm.close()
