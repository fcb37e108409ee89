"""The Python runner on Wasmtime's pooling allocator, with ready instances: real Wasmtime, no server."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson
import pytest
import wasmtime
import wasmtime.component

from executor_wasm.cache import create_engine
from executor_wasm.python import calls
from executor_wasm.python import runner as python_runner
from executor_wasm.python.build import load_runner
from executor_wasm.python.executor import WasmPythonExecutor
from executor_wasm.python.pooling import PoolPlan, create_pooled_engine
from executor_wasm.python.runner import CallLimits, Runner
from executor_wasm.settings import WasmSettings
from executor_wasm.ticker import EpochTicker
from pywhisk.executor import InitRequest, InstanceSpec, ProxyResult, RunRequest
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


def _prepare(runner: Runner, source: str) -> str:
    result, code = python_runner.prepare(runner, source, "main", LIMITS)
    assert result.status == 200, result.body
    assert code is not None
    return code


def _run(runner: Runner, code: str, limits: CallLimits = LIMITS) -> ProxyResult:
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
    results: dict[str, ProxyResult] = {}

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


def test_large_code_and_results_cross_as_text_without_wasmtime_pys_conversions(
    built_runner: Runner,  # noqa: F811
    ticker: EpochTicker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # calls.py writes the arguments and reads the result itself: wasmtime-py's call is never used for them.
    def through_wasmtime_py(*_: object) -> None:
        raise AssertionError("called through wasmtime-py")

    monkeypatch.setattr(wasmtime.component.Func, "__call__", through_wasmtime_py)
    text = "".join(chr(code) for code in range(32, 0x800) if not 0xD800 <= code < 0xE000) + '🐍"\\'
    # ~200 KB of marshalled code (every byte value in it), a ~600 KB result, params and text outside ASCII.
    source = f"BIG = {bytes(range(256)) * 800!r}\nTEXT = {text!r}\n\ndef main(args):\n"
    source += "    return {'size': len(BIG), 'sum': sum(BIG), 'text': TEXT, 'echo': args, 'pad': 'x' * 600_000}\n"
    lone_surrogate = "def main(args):\n    return {'bad': chr(0xD800)}\n"
    runner = _pooled(ticker, instances=2)
    try:
        code = _prepare(runner, source)
        params = {"name": "Ada ✓", "quote": '"\\'}
        results = [python_runner.run(runner, code, "main", orjson.dumps(params), {}, LIMITS) for _ in range(2)]
        refused = _run(runner, _prepare(runner, lone_surrogate))  # no WIT string can hold it: as before
    finally:
        runner.close()

    assert len(code) > 250_000  # ~200 KB of marshalled code, in base64
    for result in results:
        assert result.status == 200, result.body
        answer = {"size": 204_800, "sum": 800 * 255 * 128, "text": text, "echo": params, "pad": "x" * 600_000}
        assert orjson.loads(result.body) == answer
    assert refused.status == 502, refused.body
    assert orjson.loads(refused.body) == {"error": "The action did not return a dictionary or array."}
    assert runner.pooled is not None and runner.pooled.direct == {"prepare": True, "run": True}


def test_an_export_of_another_signature_is_called_through_wasmtime_py(
    built_runner: Runner,  # noqa: F811
) -> None:
    store = wasmtime.Store(built_runner.engine)
    store.set_epoch_deadline(1 << 30)  # nothing advances this Engine's epoch
    store.set_wasi(wasmtime.WasiConfig())
    instance = built_runner.linker.instantiate(store, built_runner.component)
    run = instance.get_func(store, "run")
    assert run is not None

    prepare = instance.get_func(store, "prepare")
    assert run is not None and prepare is not None

    assert calls.supports(run, store, python_runner.ARITY["run"])
    assert calls.supports(prepare, store, python_runner.ARITY["prepare"])
    assert not calls.supports(run, store, 3), "run takes four strings"
    assert not calls.supports(prepare, store, 4), "prepare takes two"
    store.close()


@pytest.mark.parametrize("ready", [False, True], ids=["one slot, every run in it", "ready instances"])
def test_nothing_a_run_leaves_behind_reaches_the_next_run(
    built_runner: Runner,  # noqa: F811
    ticker: EpochTicker,
    ready: bool,
) -> None:
    # One slot without ready instances: every run is in the slot the previous run wrote to. With ready
    # instances, a run's slot is reset by the reclaimer after the answer (or on demand, when it lags).
    source = (
        "import os, sys\n"
        "seen = []\n\n"
        "def main(args):\n"
        "    before = {'global': list(seen), 'env': os.environ.get('LEFT'), 'module': 'left' in sys.modules,\n"
        "              'id': os.environ['__OW_ACTIVATION_ID'], 'init': os.environ.get('FROM_INIT')}\n"
        "    seen.append(1)\n"
        "    os.environ['LEFT'] = 'behind'\n"
        "    sys.modules['left'] = sys\n"
        "    try:\n"
        "        open('/tmp/left', 'w').write('behind')\n"
        "        before['file'] = 'written'\n"
        "    except OSError as error:\n"
        "        before['file'] = type(error).__name__\n"
        "    return before\n"
    )
    runner = _pooled(ticker, instances=2 if ready else 1, ready=ready)
    try:
        code = _prepare(runner, source)
        env = {"FROM_INIT": 'a=b "c"\n ✓'}
        results = [
            python_runner.run(runner, code, "main", b"{}", {**env, "__OW_ACTIVATION_ID": str(n)}, LIMITS)
            for n in range(6)
        ]
    finally:
        runner.close()

    for n, result in enumerate(results):
        assert result.status == 200, result.body
        assert orjson.loads(result.body) == {
            "global": [],
            "env": None,
            "module": False,
            "id": str(n),
            "init": env["FROM_INIT"],
            "file": "FileNotFoundError",  # no preopened directory: there is no /tmp to write to
        }
    if not ready:
        assert runner.pool_exhausted == 0, "every run was in the pool's one slot"
