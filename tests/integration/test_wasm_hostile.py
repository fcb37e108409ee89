"""Hostile ``wasm:wasi`` code against real Wasmtime: every untrusted input is bounded before it is paid for.

The attacks are generated here (tests/hostile.py): zip bombs of every compression method with lying
and honest headers, archives of many members and nested archives; modules with several memories, big
or growing tables, many tables; modules slow to compile or too big to compile in the compiler's memory;
host calls with huge counts and lengths. Each must end with OpenWhisk's answer for it (through
invoker/results.py, as the activation record gets it), and a hello beside it must still be served
promptly (a generous bound: this is not a benchmark, docs/benchmarks.md has the numbers).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
import wasmtime

from executor_wasm.executor import WasmExecutor
from executor_wasm.settings import WasmSettings, module_cache_dir
from invoker.results import init_failure, run_response
from pywhisk.activation import ActivationResponse, Messages, StatusCode
from pywhisk.executor import InitRequest, InstanceSpec
from tests import hostile
from tests.executors import LOG_LIMIT, run_request
from tests.executors import wasm_module as action_bytes

pytestmark = pytest.mark.integration

MAX_MODULE = 4 * 1_048_576  # the executor's budget here: bombs of 4x that are cheap to build
PROMPT_S = 2.0  # what "promptly" means for a hello beside an attack (quiet: ~1 ms)


@pytest_asyncio.fixture(scope="module")
async def executor(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[WasmExecutor]:
    settings = WasmSettings(threads=2, max_module_bytes=MAX_MODULE, grant_net=True)
    wasm = WasmExecutor(settings, module_cache_dir(tmp_path_factory.mktemp("hostile")))
    await wasm.start()
    yield wasm
    await wasm.close()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def wat(text: str) -> str:
    return b64(bytes(wasmtime.wat2wasm(text)))


async def activate(
    executor: WasmExecutor,
    code: str,
    *,
    memory_mb: int = 128,
    timeout_ms: int = 5_000,
    init_timeout_ms: int = 30_000,
    annotations: dict[str, object] | None = None,
) -> ActivationResponse:
    """Create, init and run one instance as the invoker does; the activation's response."""
    instance_id = uuid.uuid4().hex
    spec = InstanceSpec(instance_id=instance_id, kind="wasm:wasi", memory_mb=memory_mb, annotations=annotations or {})
    await executor.create(spec)
    try:
        init = await executor.init(instance_id, InitRequest(name="hostile", code=code), init_timeout_ms, LOG_LIMIT)
        failed = init_failure(init, init_timeout_ms)
        if failed is not None:
            return failed
        return run_response(await executor.run(instance_id, run_request(), timeout_ms, LOG_LIMIT), timeout_ms)
    finally:
        await executor.destroy(instance_id)


async def hello_latency(executor: WasmExecutor) -> float:
    """Seconds for a whole cold hello (its module cached) beside whatever else runs."""
    started = time.monotonic()
    response = await activate(executor, b64(action_bytes("hello")))
    assert response.result == {"greeting": "Hello, stranger!"}, response
    return time.monotonic() - started


def developer_error(response: ActivationResponse) -> str:
    assert response.statusCode == StatusCode.DEVELOPER_ERROR, response
    assert isinstance(response.result, dict)
    return str(response.result["error"])


# --- zip bombs ------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", sorted(hostile.METHODS))
@pytest.mark.parametrize("lying", [True, False], ids=["lying-header", "honest-header"])
async def test_a_zip_bomb_is_an_invalid_module_refused_at_the_budget(
    executor: WasmExecutor, method: str, lying: bool
) -> None:
    bomb = hostile.zip_bomb(method, 4 * MAX_MODULE, declared_size=1_000 if lying else None)

    error = developer_error(await activate(executor, b64(bomb)))

    assert error.startswith("Invalid WebAssembly module: ")
    if lying:
        assert "bomb.wasm is larger than its header says" in error
    else:
        assert f"bomb.wasm is larger than {MAX_MODULE} bytes" in error


async def test_a_zip_of_many_members_is_refused_before_it_is_listed(executor: WasmExecutor) -> None:
    error = developer_error(await activate(executor, b64(hostile.many_members(5_000))))

    assert "the zip holds more than 1024 entries" in error


async def test_a_nested_zip_is_not_opened_twice(executor: WasmExecutor) -> None:
    # The outer zip's member is itself a zip: bytes without WebAssembly's magic number.
    code = b64(hostile.nested_zip(2, action_bytes("hello")))

    error = developer_error(await activate(executor, code))

    assert "not a WebAssembly binary (bad magic number)" in error


async def test_an_unzipped_module_above_the_budget_is_refused(executor: WasmExecutor) -> None:
    error = developer_error(await activate(executor, b64(b"\0asm\x01\0\0\0" + bytes(MAX_MODULE))))

    assert f"the module is larger than {MAX_MODULE} bytes" in error


def test_a_gigabyte_zip_bomb_costs_the_host_at_most_its_budget(tmp_path: Path) -> None:
    # In a child process, so its peak RSS is the decode's alone: a 1 GiB deflate bomb (~1 MB) against
    # the default 64 MiB budget. Before the budget was counted while inflating this cost ~1 GiB.
    bomb = tmp_path / "bomb.zip"
    bomb.write_bytes(hostile.zip_bomb("deflate", 1 << 30))
    probe = (
        "import base64, resource, sys\n"
        "from executor_wasm.cache import InvalidModule\n"
        "from executor_wasm.executor import decode_module\n"
        "code = base64.b64encode(open(sys.argv[1], 'rb').read()).decode()\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "try:\n    decode_module(code)\nexcept InvalidModule as error:\n    print(error, file=sys.stderr)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe, str(bomb)], capture_output=True, text=True, check=True)

    grown_kib = int(done.stdout.strip())
    assert "bomb.wasm is larger than its header says" in done.stderr
    assert grown_kib < 64 * 1024 * 2 + 32 * 1024, f"the host grew by {grown_kib} KiB"


# --- guest memory -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "module",
    [
        hostile.multi_memory(4, 100),  # 4 x 6.25 MiB, each under a per-memory limit of 16 MiB
        hostile.growing_memories(3),
        hostile.growing_memories(1),
        hostile.big_table(10_000_000),
        hostile.many_tables(16),
    ],
    ids=["four-memories", "three-growing-memories", "one-growing-memory", "big-table", "many-tables"],
)
async def test_guest_memory_beyond_the_limit_is_memory_exhausted(executor: WasmExecutor, module: str) -> None:
    response = await activate(executor, wat(module), memory_mb=16)

    assert developer_error(response) == Messages.memory_exhausted


async def test_a_table_grown_past_its_share_is_refused_and_the_guest_fails(executor: WasmExecutor) -> None:
    # table.grow answers -1 at the limit (no host memory is spent); this guest then traps on purpose.
    response = await activate(executor, wat(hostile.growing_table()), memory_mb=16)

    assert "The action trapped" in developer_error(response)


async def test_the_memory_limit_is_still_the_actions_for_an_ordinary_module(executor: WasmExecutor) -> None:
    # 15/16 of the limit is linear memory: a module declaring 14 MiB of 16 runs.
    module = '(module (memory (export "memory") 224) (func (export "_start")))'

    response = await activate(executor, wat(module), memory_mb=16)

    # It runs (and, printing nothing, answers no result): not refused for its memory.
    assert Messages.memory_exhausted not in str(response.result)
    assert Messages.invalid_run_response("") in str(response.result)


# --- compilation ------------------------------------------------------------------------------------


async def test_a_slow_compile_times_out_gives_its_process_back_and_hellos_go_on(executor: WasmExecutor) -> None:
    await hello_latency(executor)  # hello's artifact cached, as for a tenant already running
    slow = wat(hostile.slow_to_compile(functions=2_000))  # ~3 MB, ~1 s of Cranelift
    attack = asyncio.create_task(activate(executor, slow, init_timeout_ms=500))
    await asyncio.sleep(0.1)
    latencies = [await hello_latency(executor) for _ in range(3)]

    response = await attack

    assert developer_error(response) == Messages.timed_out_during_init(500)
    assert max(latencies) < PROMPT_S, latencies
    # The compile was killed, not left running: no compile in progress once its only waiter gave up.
    deadline = time.monotonic() + 10
    while executor.compiler._compiling and time.monotonic() < deadline:  # noqa: ASYNC110 (no event to wait on)
        await asyncio.sleep(0.01)
    assert not executor.compiler._compiling


async def test_a_module_compiled_in_a_process_is_cached_as_an_artifact(executor: WasmExecutor) -> None:
    # A module this executor has never seen (a custom section makes its digest new).
    module = action_bytes("hello") + bytes([0, 12]) + b"\x04test" + os.urandom(7)

    response = await activate(executor, b64(module))

    assert response.result == {"greeting": "Hello, stranger!"}
    assert executor.cache.artifact_path(hashlib.sha256(module).hexdigest()).stat().st_size > 1_000


async def test_a_module_needing_more_than_the_compilers_memory_is_an_invalid_module(tmp_path: Path) -> None:
    wasm = WasmExecutor(WasmSettings(threads=2, compile_memory_mb=256), module_cache_dir(tmp_path))
    await wasm.start()
    try:
        # One function of 300,000 operations: Cranelift needs far more than 256 MiB for it.
        response = await activate(wasm, wat(hostile.slow_to_compile(functions=1, ops=300_000)))
    finally:
        await wasm.close()

    error = developer_error(response)
    assert error.startswith("Invalid WebAssembly module: compiling the module failed")
    assert "256 MiB" in error


# --- host calls ---------------------------------------------------------------------------------------


async def test_poll_oneoff_with_two_billion_subscriptions_is_refused_with_einval(executor: WasmExecutor) -> None:
    response = await activate(executor, wat(hostile.poll_oneoff(0x7FFF_FFFF)))

    assert developer_error(response) == "The action exited with status 28."  # EINVAL, nothing allocated


@pytest.mark.parametrize(
    ("module", "annotations"),
    [
        (hostile.fd_write(0x7FFF_FFFF, 65_536), None),  # an iovec array far beyond the memory
        (hostile.fd_write(4_096, 1_048_576), None),  # 4 GiB of output a call, against a capped stdout
        (hostile.random_get(16 * 1_048_576), None),  # the whole memory filled a call, forever
        (hostile.http_get_loop(), {"net_access": True}),  # WoW's blocking http.get, forever
    ],
    ids=["huge-iovec-count", "huge-writes", "huge-random-get", "http-get-loop"],
)
async def test_host_call_abuse_ends_at_the_deadline_and_hellos_go_on(
    executor: WasmExecutor, module: str, annotations: dict[str, object] | None
) -> None:
    started = time.monotonic()
    attack = asyncio.create_task(activate(executor, wat(module), timeout_ms=1_000, annotations=annotations))
    await asyncio.sleep(0.2)
    latency = await hello_latency(executor)

    response = await attack

    assert developer_error(response) == Messages.timed_out(1_000)
    assert time.monotonic() - started < 1.0 + PROMPT_S
    assert latency < PROMPT_S


async def test_poll_oneoff_pointing_outside_the_memory_is_refused_with_efault(executor: WasmExecutor) -> None:
    response = await activate(executor, wat(hostile.poll_oneoff(2, subscriptions_at=65_500)))

    assert developer_error(response) == "The action exited with status 21."  # EFAULT
