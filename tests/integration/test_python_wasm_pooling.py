"""The Python runner on Wasmtime's pooling allocator, with ready instances: real Wasmtime, no server."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from executor_wasm.cache import create_engine
from executor_wasm.python import runner as python_runner
from executor_wasm.python.build import load_runner
from executor_wasm.python.executor import WasmPythonExecutor
from executor_wasm.python.pooling import PoolPlan, create_pooled_engine
from executor_wasm.python.runner import CallLimits, Runner
from executor_wasm.runner import EpochTicker
from executor_wasm.settings import WasmSettings
from pywhisk.executor import InitRequest, InstanceSpec, RunRequest
from tests.python_wasm import python_runner as built_runner  # noqa: F401

pytestmark = pytest.mark.integration

LIMITS = CallLimits(memory_bytes=256 * 1_048_576, timeout_ms=10_000, log_limit_bytes=1_048_576)
COUNTER = (
    "count = 0\n\n"
    "def main(args):\n    global count\n    count += 1\n    print('run', count)\n    return {'count': count}\n"
)


@pytest.fixture
def ticker() -> Iterator[EpochTicker]:
    ticker = EpochTicker(create_engine())
    ticker.start()
    yield ticker
    ticker.stop()


def _pooled(ticker: EpochTicker, instances: int, *, ready: bool = True) -> Runner:
    cache_dir = WasmSettings().python_cache_dir
    settings = WasmSettings(pooling_instances=instances, user_memory_mb=1024)
    plan = PoolPlan.from_settings(settings)
    assert plan.instances == instances
    engine = create_pooled_engine(plan)
    assert engine is not None, "Wasmtime refused a small pool"
    ticker.add(engine)
    on_demand = ticker.engine
    return python_runner.create_runner(
        on_demand, load_runner(on_demand, cache_dir), (engine, load_runner(engine, cache_dir)), ready=ready
    )


def _prepare(runner: Runner, source: str) -> bytes:
    result, code = python_runner.prepare(runner, source, "main", LIMITS)
    assert result.status == 200, result.body
    assert code is not None
    return code


def _run(runner: Runner, code: bytes, limits: CallLimits = LIMITS) -> python_runner.ProxyResult:
    return python_runner.run(runner, code, "main", b"{}", {}, limits)


def test_a_pooled_slot_reused_by_the_next_run_starts_from_the_image_again(
    built_runner: Runner,  # noqa: F811
    ticker: EpochTicker,
) -> None:
    # One slot, instances made on the run's path: every run is in the slot the previous run wrote to.
    runner = _pooled(ticker, instances=1, ready=False)
    try:
        code = _prepare(runner, COUNTER)
        results = [_run(runner, code) for _ in range(4)]
    finally:
        runner.close()

    assert [result.body for result in results] == ['{"count": 1}'] * 4
    assert all(result.logs and result.logs[-1].endswith("stdout: run 1") for result in results)
    assert runner.pool_exhausted == 0, "every run was in the pool's one slot"


def test_ready_instances_are_fresh_for_every_run(
    built_runner: Runner,  # noqa: F811
    ticker: EpochTicker,
) -> None:
    runner = _pooled(ticker, instances=4)
    try:
        code = _prepare(runner, COUNTER)
        results = [_run(runner, code) for _ in range(8)]
        # Another shape of limits gets its own ready instance, with its own limits.
        small = CallLimits(memory_bytes=128 * 1_048_576, timeout_ms=10_000, log_limit_bytes=4096)
        other = [_run(runner, code, small) for _ in range(2)]
    finally:
        runner.close()

    assert [result.body for result in results + other] == ['{"count": 1}'] * 10
    assert all(result.logs and result.logs[-1].endswith("stdout: run 1") for result in results + other)


def test_a_full_pool_falls_back_to_on_demand_instances_and_says_so_once(
    built_runner: Runner,  # noqa: F811
    ticker: EpochTicker,
    caplog: pytest.LogCaptureFixture,
) -> None:
    runner = _pooled(ticker, instances=1, ready=False)
    code = _prepare(runner, "import time\n\ndef main(args):\n    time.sleep(0.3)\n    return {'ok': True}\n")
    try:
        with caplog.at_level(logging.WARNING), ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda _: _run(runner, code), range(4)))
    finally:
        runner.close()

    assert [result.body for result in results] == ['{"ok": true}'] * 4
    assert runner.pool_exhausted >= 1  # four at once in a pool of one
    assert sum("instance pool is full" in record.message for record in caplog.records) == 1


def test_limits_hold_in_pooled_instances(
    built_runner: Runner,  # noqa: F811
    ticker: EpochTicker,
) -> None:
    runner = _pooled(ticker, instances=2, ready=False)  # every instance from the pool
    small = CallLimits(memory_bytes=128 * 1_048_576, timeout_ms=10_000, log_limit_bytes=1_048_576)
    short = CallLimits(memory_bytes=128 * 1_048_576, timeout_ms=200, log_limit_bytes=1_048_576)
    results: dict[str, python_runner.ProxyResult] = {}

    def runs() -> None:
        hog = _prepare(runner, "def main(args):\n    b = []\n    while True:\n        b.append(bytearray(1 << 20))\n")
        loop = _prepare(runner, "def main(args):\n    while True:\n        pass\n")
        results["exhausted"] = _run(runner, hog, small)
        results["timed_out"] = _run(runner, loop, short)  # only the pooled Engine's epoch ends it
        results["after"] = _run(runner, _prepare(runner, COUNTER))

    # A daemon thread: were the pooled Engine's epoch never advanced, the loop would never end.
    thread = threading.Thread(target=runs, daemon=True)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive(), "the infinite loop was not interrupted"
    runner.close()

    assert results["exhausted"].memory_exhausted
    assert results["timed_out"].timed_out
    assert results["after"].body == '{"count": 1}'
    assert runner.pool_exhausted == 0


def test_a_pool_the_host_refuses_means_on_demand_with_one_warning(built_runner: Runner) -> None:  # noqa: F811
    # 64 slots reserve ~256 GiB of address space: an 8 GiB RLIMIT_AS cannot hold it.
    script = (
        "import logging, resource\n"
        "logging.basicConfig(format='%(levelname)s %(message)s')\n"
        "resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))\n"
        "from executor_wasm.python.pooling import PoolPlan, create_pooled_engine\n"
        "from executor_wasm.settings import WasmSettings\n"
        "settings = WasmSettings(pooling_instances=64, user_memory_mb=1 << 20)\n"
        "print('engine', create_pooled_engine(PoolPlan.from_settings(settings)))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)

    assert done.returncode == 0, done.stderr
    assert "engine None" in done.stdout
    assert "WARNING Wasmtime refused a pool of 64 Python runner instances" in done.stderr


async def test_the_executor_runs_python_on_the_pool_and_closes_cleanly(
    built_runner: Runner,  # noqa: F811
    tmp_path: Path,
) -> None:
    executor = WasmPythonExecutor(WasmSettings(threads=2, max_runs=8), tmp_path / "modules")
    await executor.start()
    try:
        spec = InstanceSpec(instance_id="i1", kind="python:3", memory_mb=256)
        await executor.create(spec)
        init = await executor.init("i1", InitRequest(name="a", main="main", code=COUNTER), 10_000, 1_048_576)
        request = RunRequest(
            namespace="guest",
            action_name="a",
            action_version="0.0.1",
            activation_id="0" * 32,
            transaction_id="t",
            deadline="0",
        )
        runs = [await executor.run("i1", request, 10_000, 1_048_576) for _ in range(3)]
        runner = await executor._ready_runner()
    finally:
        await executor.close()

    assert init.status == 200, init.body
    assert [run.body for run in runs] == ['{"count": 1}'] * 3
    assert runner.pooled is not None, "the default settings pool the Python runner"
    assert runner.pool_exhausted == 0
    assert not runner._ready, "close() released the ready instances"
