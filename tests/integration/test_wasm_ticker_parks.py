"""The WASM executor's epoch ticker parks while no pool job runs (executor_wasm/ticker.py, issue 15).

A real executor, real guests (tests/executors.py's ``hello`` and ``loop``): the ticker has no pass to make while
nothing runs on the pool, and a time limit is still kept by a ticker woken from idle by the run's job.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio

from executor_wasm.executor import WasmExecutor
from executor_wasm.settings import WasmSettings, module_cache_dir
from pywhisk.executor import InitRequest, InstanceSpec, ProxyResult
from tests.executors import LOG_LIMIT, run_request
from tests.executors import wasm_module as action_bytes
from tests.integration.test_wasm_executor import b64

pytestmark = pytest.mark.integration

WAIT_S = 10.0


def wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


@pytest_asyncio.fixture
async def executor(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[WasmExecutor]:
    # Every run on the pool: an inline run (inline.py) uses an Engine and a timer of its own, not the ticker.
    settings = WasmSettings(threads=4, inline=False)
    wasm = WasmExecutor(settings, module_cache_dir(tmp_path_factory.mktemp("wasm")))
    await wasm.start()
    yield wasm
    await wasm.close()


async def invoke(executor: WasmExecutor, action: str, timeout_ms: int) -> ProxyResult:
    instance_id = uuid.uuid4().hex
    await executor.create(InstanceSpec(instance_id=instance_id, kind="wasm:wasi", memory_mb=128))
    init = InitRequest(name=action, code=b64(action_bytes(action)), binary=True)
    assert (await executor.init(instance_id, init, 30_000, LOG_LIMIT)).status == 200
    try:
        return await executor.run(instance_id, run_request({"name": "idle"}), timeout_ms, LOG_LIMIT)
    finally:
        await executor.destroy(instance_id)


async def test_the_ticker_parks_between_runs_and_a_run_from_idle_keeps_its_time_limit(executor: WasmExecutor) -> None:
    ticker = executor._ticker
    hello = await invoke(executor, "hello", 5_000)
    assert hello.status == 200
    wait_for(lambda: ticker.idle)
    ticks = ticker.ticks

    started = time.monotonic()
    looped = await invoke(executor, "loop", 300)  # its job wakes the ticker, from idle
    took = time.monotonic() - started

    assert looped.timed_out and looped.status is None
    assert ticker.ticks > ticks, "the loop's deadline came from the ticker's passes"
    assert 0.3 <= took < 3.0, f"a 300 ms limit ended after {took * 1000:.0f} ms"
    wait_for(lambda: ticker.idle)


async def test_a_job_the_executor_does_not_know_keeps_the_ticker_ticking(executor: WasmExecutor) -> None:
    # The Python runner's reclaimer instantiates ready instances outside its jobs, under epoch deadlines.
    assert executor._ticker.parks
    await executor._in_pool(lambda: None, timeout_s=5, namespace="guest")
    assert not executor._ticker.parks
    wait_for(lambda: not executor._ticker.idle)
