"""A CPU-bound guest's thread is reniced, a hello's is not (executor_wasm/priority.py, issue 12), in real Wasmtime.

The nice value is read as the kernel reports it: field 19 of ``/proc/self/task/<tid>/stat``. The burners are
generated here (WAT, and a Python ``while True``); hello is the sample action. Every wait is on a condition with
a deadline.
"""

from __future__ import annotations

import asyncio
import base64
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import wasmtime

import executor_wasm.executor as executor_module
from executor_wasm.executor import WasmExecutor
from executor_wasm.python.executor import WasmPythonExecutor
from executor_wasm.python.runner import Runner
from executor_wasm.settings import WasmSettings, module_cache_dir
from pywhisk.executor import InitRequest, InstanceSpec, ProxyResult
from tests.executors import LOG_LIMIT, run_request
from tests.executors import wasm_module as action_bytes
from tests.python_wasm import python_runner  # noqa: F401

pytestmark = pytest.mark.integration

BURN_MS = 1500
WAIT_S = 30.0
BURN = """
(module
  (memory (export "memory") 1)
  (func (export "_start") (loop $spin (br $spin))))
"""
PY_BURN = "def main(args):\n    while True:\n        pass\n"


def nice_of(tid: int) -> int:
    """The nice value of thread ``tid`` of this process, as the kernel reports it."""
    stat = Path(f"/proc/self/task/{tid}/stat").read_text()
    return int(stat.rpartition(")")[2].split()[16])  # field 19; fields after the name start at 3


def make_executor(tmp_path: Path, renice: bool) -> WasmPythonExecutor:
    return WasmPythonExecutor(WasmSettings(threads=4, renice=renice), module_cache_dir(tmp_path))


@pytest_asyncio.fixture
async def executor(tmp_path: Path) -> AsyncIterator[WasmPythonExecutor]:
    wasm = make_executor(tmp_path, renice=True)
    await wasm.start()
    yield wasm
    await wasm.close()


async def deploy(executor: WasmExecutor, namespace: str, code: str, *, kind: str = "wasm:wasi") -> str:
    instance_id = uuid.uuid4().hex
    await executor.create(InstanceSpec(instance_id=instance_id, kind=kind, memory_mb=128))
    init = InitRequest(name="action", code=code, binary=kind.startswith("wasm"), env={"__OW_NAMESPACE": namespace})
    result = await executor.init(instance_id, init, 30_000, LOG_LIMIT)
    assert result.status == 200, result
    return instance_id


async def run(executor: WasmExecutor, instance_id: str, namespace: str, timeout_ms: int) -> ProxyResult:
    request = run_request({"name": namespace}, action_name=f"/{namespace}/action")
    request.namespace = namespace
    return await executor.run(instance_id, request, timeout_ms, LOG_LIMIT)


async def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.002)


def record_threads(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Wrap the ``wasm:wasi`` run so each run reports its thread and that thread's nice value as it returns."""
    seen: list[dict[str, Any]] = []
    real = executor_module.run_module

    def recording(*args: Any) -> ProxyResult:
        tid = threading.get_native_id()
        entry: dict[str, Any] = {"tid": tid, "argv0": args[2].argv0, "nice_at_end": None}
        seen.append(entry)
        result = real(*args)
        entry["nice_at_end"] = nice_of(tid)
        return result

    monkeypatch.setattr(executor_module, "run_module", recording)
    return seen


async def test_a_cpu_bound_guests_thread_is_reniced_and_a_hellos_is_not(
    executor: WasmPythonExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = record_threads(monkeypatch)
    burner = await deploy(executor, "mallory", base64.b64encode(bytes(wasmtime.wat2wasm(BURN))).decode())
    hello = await deploy(executor, "guest", base64.b64encode(action_bytes("hello")).decode())

    burning = asyncio.create_task(run(executor, burner, "mallory", BURN_MS))
    await wait_until(lambda: bool(seen), "the burner to start")
    loop_tid = seen[0]["tid"]
    await wait_until(lambda: nice_of(loop_tid) == 19, "the burner's thread to be reniced to 19")

    result = await run(executor, hello, "guest", 10_000)
    assert result.status == 200 and "Hello, guest!" in result.body, result
    hello_seen = seen[1]
    assert hello_seen["tid"] != loop_tid
    assert hello_seen["nice_at_end"] == 0, "hello ran at nice 0 beside the reniced burner"
    assert nice_of(loop_tid) == 19, "the burner was still reniced while hello ran"
    assert nice_of(threading.get_native_id()) == 0, "the event loop's thread is never reniced"

    burned = await burning
    assert burned.timed_out, burned
    # Its run is over: its thread is back at nice 0 for whatever it runs next (root may lower nice again).
    assert executor.priority is not None and executor.priority.retired == 0
    await wait_until(lambda: nice_of(loop_tid) == 0, "the burner's thread back at nice 0")


async def test_a_python_guests_thread_is_reniced_too(
    executor: WasmPythonExecutor,
    python_runner: Runner,  # noqa: F811
) -> None:
    burner = await deploy(executor, "mallory", PY_BURN, kind="python:3")
    assert executor.priority is not None
    burning = asyncio.create_task(run(executor, burner, "mallory", BURN_MS))

    await wait_until(lambda: 19 in executor.priority.executing().values(), "the Python burner to be reniced")
    (tid,) = executor.priority.executing()
    assert nice_of(tid) == 19
    assert (await burning).timed_out


async def test_with_renicing_off_a_cpu_bound_guest_keeps_nice_0(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = record_threads(monkeypatch)
    executor = make_executor(tmp_path, renice=False)
    await executor.start()
    try:
        burner = await deploy(executor, "mallory", base64.b64encode(bytes(wasmtime.wat2wasm(BURN))).decode())
        burning = asyncio.create_task(run(executor, burner, "mallory", 300))
        await wait_until(lambda: bool(seen), "the burner to start")
        nices = set()
        while not burning.done():  # sampled until the run ends at its time limit
            nices.add(nice_of(seen[0]["tid"]))
            await asyncio.sleep(0.005)
        assert (await burning).timed_out
        # On a loaded machine the run guard may answer before the guest's thread has left run_module.
        await wait_until(lambda: seen[0]["nice_at_end"] is not None, "the burner's run to return")
        assert nices == {0} and seen[0]["nice_at_end"] == 0
    finally:
        await executor.close()
