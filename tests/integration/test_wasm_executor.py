"""The Wasmtime executor against real Wasmtime, driven through the ``Executor`` seam.

Over 400 lines because it covers every limit and failure of one executor against real Wasmtime.

Actions come from actions/wasm (built from actions/src by actions/build.sh); a few edge cases use
small WAT modules assembled here.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import os
import threading
import time
import uuid
import zipfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import pytest_asyncio
import wasmtime

import executor_wasm.executor
from executor_wasm.executor import UnknownInstance, WasmExecutor
from executor_wasm.settings import WasmSettings, module_cache_dir
from pywhisk.activation import Messages
from pywhisk.errors import ExecutorError
from pywhisk.executor import Executor, InitRequest, InstanceSpec, ProxyResult
from tests.executors import LOG_LIMIT, log_text, run_request
from tests.executors import wasm_module as action_bytes

pytestmark = pytest.mark.integration


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def wat(text: str) -> str:
    return b64(bytes(wasmtime.wat2wasm(text)))


def in_process(data_dir: Path, settings: WasmSettings | None = None) -> WasmExecutor:
    """An in-process executor with its module cache in ``data_dir``, as the plugin builds it."""
    return WasmExecutor(settings or WasmSettings(), module_cache_dir(data_dir))


@pytest_asyncio.fixture(scope="module")
async def executor(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[WasmExecutor]:
    wasm = in_process(tmp_path_factory.mktemp("wasm"), WasmSettings(threads=4))
    await wasm.start()
    yield wasm
    await wasm.close()


async def deploy(
    executor: Executor,
    code: str | None,
    *,
    memory_mb: int = 256,
    env: dict[str, str] | None = None,
    name: str = "test",
) -> tuple[str, ProxyResult]:
    instance_id = uuid.uuid4().hex
    await executor.create(InstanceSpec(instance_id=instance_id, kind="wasm:wasi", memory_mb=memory_mb))
    init = InitRequest(name=name, code=code, binary=True, env=env or {})
    return instance_id, await executor.init(instance_id, init, 30_000, LOG_LIMIT)


async def invoke(
    executor: Executor,
    action: str,
    params: dict[str, object] | None = None,
    *,
    timeout_ms: int = 10_000,
    log_limit: int = LOG_LIMIT,
    memory_mb: int = 256,
) -> ProxyResult:
    instance_id, ready = await deploy(executor, b64(action_bytes(action)), memory_mb=memory_mb, name=action)
    assert ready.status == 200, ready
    try:
        return await executor.run(instance_id, run_request(params), timeout_ms, log_limit)
    finally:
        await executor.destroy(instance_id)


# --- results and logs --------------------------------------------------------------------------


async def test_hello_returns_its_greeting_and_logs_both_streams(executor: WasmExecutor) -> None:
    result = await invoke(executor, "hello", {"name": "Ada"})
    assert result.status == 200
    assert orjson.loads(result.body) == {"greeting": "Hello, Ada!"}
    assert log_text(result) == ["stdout: hello: greeting Ada", "stderr: hello: this line goes to stderr"]
    assert not (result.timed_out or result.memory_exhausted or result.exited)
    assert result.duration_ms is not None and result.duration_ms > 0


async def test_params_arrive_on_stdin_as_one_json_object(executor: WasmExecutor) -> None:
    params: dict[str, object] = {"text": "multi\nline \u2028 ü", "n": [1, 2.5, None], "nested": {"ok": True}}
    result = await invoke(executor, "echo", params)
    assert result.status == 200
    assert orjson.loads(result.body) == params


async def test_a_non_json_last_line_is_passed_through_raw(executor: WasmExecutor) -> None:
    result = await invoke(executor, "badjson")
    assert (result.status, result.body) == (200, "this is not json")
    assert log_text(result) == ["stdout: badjson: printing a non-JSON result"]


async def test_an_error_result_is_still_a_200_for_the_invoker_to_judge(executor: WasmExecutor) -> None:
    result = await invoke(executor, "apperror")
    assert result.status == 200
    assert orjson.loads(result.body) == {"error": "something went wrong"}


async def test_argv_is_the_action_name(executor: WasmExecutor) -> None:
    # Writes the argv buffer ("name\0") to stdout, without its final NUL.
    module = wat("""
      (module
        (import "wasi_snapshot_preview1" "args_sizes_get" (func $sizes (param i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "args_get" (func $args (param i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
        (memory (export "memory") 1)
        (func (export "_start")
          (drop (call $sizes (i32.const 0) (i32.const 4)))
          (drop (call $args (i32.const 16) (i32.const 256)))
          (i32.store (i32.const 8) (i32.const 256))
          (i32.store (i32.const 12) (i32.sub (i32.load (i32.const 4)) (i32.const 1)))
          (drop (call $write (i32.const 1) (i32.const 8) (i32.const 1) (i32.const 100)))))
    """)
    instance_id, ready = await deploy(executor, module, name="my-action")
    assert ready.status == 200
    result = await executor.run(instance_id, run_request(), 5_000, LOG_LIMIT)
    assert (result.status, result.body) == (200, "my-action")


async def test_every_run_gets_a_fresh_instance(executor: WasmExecutor) -> None:
    # A global counter, printed as one digit: a reused instance would print 2 the second time.
    module = wat("""
      (module
        (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
        (memory (export "memory") 1)
        (global $runs (mut i32) (i32.const 0))
        (func (export "_start")
          (global.set $runs (i32.add (global.get $runs) (i32.const 1)))
          (i32.store8 (i32.const 64) (i32.add (i32.const 48) (global.get $runs)))
          (i32.store (i32.const 0) (i32.const 64))
          (i32.store (i32.const 4) (i32.const 1))
          (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
    """)
    instance_id, _ = await deploy(executor, module)
    bodies = [(await executor.run(instance_id, run_request(), 5_000, LOG_LIMIT)).body for _ in range(3)]
    assert bodies == ["1", "1", "1"]


async def test_runs_do_not_depend_on_private_wasmtime_bindings(
    executor: WasmExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The fast paths (stdin bytes, calling _start through the C API) fall back to the public API.
    monkeypatch.delattr(wasmtime._ffi, "wasi_config_set_stdin_bytes")
    monkeypatch.delattr(wasmtime._ffi, "wasmtime_instance_export_get")
    echoed = await invoke(executor, "echo", {"via": "stdin file"})
    assert (echoed.status, orjson.loads(echoed.body)) == (200, {"via": "stdin file"})
    exited = await invoke(executor, "exit1")
    assert (exited.status, exited.body) == (502, '{"error":"The action exited with status 3."}')
    trapped = await invoke(executor, "trap")
    assert trapped.status == 502 and "unreachable" in trapped.body


# --- failures of the action --------------------------------------------------------------------


async def test_a_trap_is_a_502_naming_the_trap(executor: WasmExecutor) -> None:
    result = await invoke(executor, "trap")
    assert result.status == 502
    error = orjson.loads(result.body)["error"]
    assert error.startswith("The action trapped: ")
    assert "unreachable" in error
    assert log_text(result) == ["stdout: trap: about to trap"]


async def test_a_nonzero_exit_is_a_502_with_the_status(executor: WasmExecutor) -> None:
    result = await invoke(executor, "exit1")
    assert result.status == 502
    assert orjson.loads(result.body) == {"error": "The action exited with status 3."}
    assert result.exited is False  # WASM instances are per run: nothing to replace
    assert log_text(result) == ["stdout: exit1: exiting with status 3"]


async def test_an_infinite_loop_times_out_without_starving_other_runs(executor: WasmExecutor) -> None:
    started = time.monotonic()
    finished: dict[str, float] = {}

    async def timed(name: str, params: dict[str, object] | None, timeout_ms: int) -> ProxyResult:
        result = await invoke(executor, name, params, timeout_ms=timeout_ms)
        finished[name] = time.monotonic() - started
        return result

    # A 1 s limit, so that even on a loaded machine the guest has printed before it is stopped (at 300 ms it
    # sometimes had not even started), and the hello is sure to run while the loop spins.
    loop_task = asyncio.create_task(timed("loop", None, 1000))
    hello = await timed("hello", {"name": "meanwhile"}, 5_000)
    looped = await loop_task

    assert hello.status == 200
    assert finished["hello"] < finished["loop"]
    assert looped.timed_out and looped.status is None
    assert 1.0 <= finished["loop"] < 4.0
    assert log_text(looped) == ["stdout: loop: spinning forever"]


async def test_a_guest_blocked_in_a_host_sleep_still_answers_at_its_timeout(executor: WasmExecutor) -> None:
    started = time.monotonic()
    result = await invoke(executor, "sleep", {"ms": 1500}, timeout_ms=200)
    assert result.timed_out and result.status is None
    assert time.monotonic() - started < 1.4


async def test_a_sleep_past_the_timeout_ends_at_the_deadline_with_its_logs(executor: WasmExecutor) -> None:
    # The host poll_oneoff (sleeps.py) stops the sleep at the deadline itself, so the run ends in
    # its own thread (not by the executor's guard) and what the guest printed before is kept.
    started = time.monotonic()
    result = await invoke(executor, "sleep", {"ms": 60_000}, timeout_ms=300)
    elapsed = time.monotonic() - started
    assert result.timed_out and result.status is None
    assert 0.3 <= elapsed < 1.0
    assert log_text(result) == ["stdout: sleep: sleeping 60000 ms"]


async def test_sleeping_guests_do_not_hold_compute_slots(executor: WasmExecutor) -> None:
    # 40 guests sleeping 500 ms at once on 4 compute slots: all asleep together, done in ~0.5 s
    # rather than the 5 s that 10 rounds of 4 would take; a busy guest still gets a slot meanwhile.
    started = time.monotonic()
    sleeps = [asyncio.create_task(invoke(executor, "sleep", {"ms": 500})) for _ in range(40)]
    await asyncio.sleep(0.1)
    hello = await invoke(executor, "hello", {"name": "meanwhile"})
    results = await asyncio.gather(*sleeps)
    elapsed = time.monotonic() - started
    # Its wait for a slot, as the executor measured it (not the wall time since the start, which a loaded machine
    # stretches: 0.6 s once in CI): ~0 when sleepers give their slots back, most of a 500 ms sleep if they held them.
    assert hello.status == 200 and hello.queued_ms < 250, hello
    assert [r.status for r in results] == [200] * 40
    assert all(orjson.loads(r.body) == {"slept": 500} for r in results)
    assert elapsed < 2.5, f"40 sleeps of 0.5 s on 4 slots took {elapsed:.2f} s"


async def loops_holding_every_slot(executor: WasmExecutor) -> list[asyncio.Task[ProxyResult]]:
    """3 loops of 1 s of namespace ``guest``, once they hold every slot of it (all but the reserve, of 4)."""
    loops = [asyncio.create_task(invoke(executor, "loop", None, timeout_ms=1000)) for _ in range(3)]
    deadline = time.monotonic() + 10
    while executor._slots.holding("guest") < 3:
        assert time.monotonic() < deadline, "the loops never took their slots"
        await asyncio.sleep(0.01)
    return loops


async def test_a_job_queued_with_no_time_left_waits_for_its_slot_without_spinning_the_loop(
    executor: WasmExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A load whose earlier jobs used the init's budget submits its next job with a timeout of 0. While that job
    # waits for one of its namespace's slots, held here by loops, the executor must look at it a few times, not in
    # a loop that never sleeps: 11 such loads once spun the event loop 10,000 times each.
    waits = 0
    real_wait = asyncio.wait

    async def counted_wait(*args: Any, **kwargs: Any) -> Any:
        nonlocal waits
        waits += 1
        return await real_wait(*args, **kwargs)

    loops = await loops_holding_every_slot(executor)
    monkeypatch.setattr(asyncio, "wait", counted_wait)
    ran = await executor._in_pool(lambda: "ran", timeout_s=0.0, namespace="guest")
    monkeypatch.setattr(asyncio, "wait", real_wait)
    await asyncio.gather(*loops)

    assert ran == "ran"  # queued for ~1 s, then given its slot; a job done at once is not timed out
    assert waits < 100, f"{waits} waits for one queued job"


async def test_a_memory_bomb_exhausts_its_memory(executor: WasmExecutor) -> None:
    result = await invoke(executor, "membomb", memory_mb=128)
    assert result.memory_exhausted and result.status is None
    assert any("malloc failed" in line for line in log_text(result))


async def test_a_declared_minimum_memory_above_the_limit_exhausts_memory(executor: WasmExecutor) -> None:
    # 2048 pages = 128 MiB of minimum memory, in a 64 MB instance.
    instance_id, ready = await deploy(executor, wat('(module (memory 2048) (func (export "_start")))'), memory_mb=64)
    assert ready.status == 200
    result = await executor.run(instance_id, run_request(), 5_000, LOG_LIMIT)
    assert result.memory_exhausted and result.status is None


# --- sandbox -----------------------------------------------------------------------------------


async def test_the_environment_holds_only_init_env_and_ow_values_and_no_files(executor: WasmExecutor) -> None:
    instance_id, ready = await deploy(executor, b64(action_bytes("env")), env={"GREETING": "hi"}, name="env")
    assert ready.status == 200
    request = run_request()
    result = await executor.run(instance_id, request, 5_000, LOG_LIMIT)
    assert result.status == 200
    seen = orjson.loads(result.body)
    assert seen["env"] == {"GREETING": "hi", **request.environment()}
    assert "PATH" not in seen["env"] and os.environ.get("PATH")
    assert seen["file"] == "denied"


# --- logs --------------------------------------------------------------------------------------


async def test_logs_are_cut_at_the_limit_with_openwhisk_notice(executor: WasmExecutor) -> None:
    result = await invoke(executor, "logs", {"count": 100}, log_limit=40)
    assert result.status == 200
    assert orjson.loads(result.body) == {"lines": 100}
    lines = log_text(result)
    # stdout holds the odd lines: "line 1\n" .. "line 9\n" cost 35 bytes, "line 11\n" does not fit.
    assert lines[:-1] == [f"stdout: line {n}" for n in (1, 3, 5, 7, 9)]
    assert lines[-1] == f"stderr: {Messages.truncated_logs(40)}"


@pytest.fixture
def peak_rss() -> Iterator[dict[str, int]]:
    """Samples this process's RSS every 2 ms while the test runs."""
    page = os.sysconf("SC_PAGE_SIZE")
    observed = {"start": 0, "peak": 0}
    stop = threading.Event()

    def rss() -> int:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * page

    def sample() -> None:
        while not stop.wait(0.002):
            observed["peak"] = max(observed["peak"], rss())

    observed["start"] = observed["peak"] = rss()
    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    yield observed
    stop.set()
    thread.join()


async def test_a_flood_of_output_is_bounded_in_host_memory(executor: WasmExecutor, peak_rss: dict[str, int]) -> None:
    # ~150 MB of output (uncapped, the process grows by ~125 MiB); each stream is capped at
    # log limit + 1 MiB + 64 KiB, and writes past the cap fail inside the guest.
    result = await invoke(executor, "logs", {"count": 10_000_000}, log_limit=4096, timeout_ms=30_000)
    assert peak_rss["peak"] - peak_rss["start"] < 50 * 1_048_576
    assert result.status == 200
    assert result.body != '{"lines": 10000000}'  # the result line was past the cap: lost
    assert result.logs[-1].endswith(Messages.truncated_logs(4096))
    assert len(result.logs) < 4096 // 7


# --- init ----------------------------------------------------------------------------------------


def zipped(members: dict[str, bytes]) -> str:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return b64(buffer.getvalue())


async def test_a_zip_with_one_wasm_file_runs(executor: WasmExecutor) -> None:
    code = zipped({"README": b"hello action", "bin/hello.wasm": action_bytes("hello")})
    instance_id, ready = await deploy(executor, code)
    assert (ready.status, ready.body) == (200, '{"ok":true}')
    result = await executor.run(instance_id, run_request({"name": "Zip"}), 5_000, LOG_LIMIT)
    assert orjson.loads(result.body) == {"greeting": "Hello, Zip!"}


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("%%% not base64 %%%", "not valid base64"),
        (b64(b"just some bytes"), "bad magic number"),
        (b64(b"\0asm\x01\0\0\0\x01\x05garbage"), "failed to parse WebAssembly module"),
        ("two wasm", "exactly one .wasm file"),
        ("no wasm", "exactly one .wasm file (found: none)"),
        ("no _start", "no `_start` function export"),
        ("unknown import", "unknown import: `env::host_secret`"),
    ],
)
async def test_bad_code_is_an_invalid_module_502(executor: WasmExecutor, code: str, reason: str) -> None:
    code = {
        "two wasm": zipped({"a.wasm": action_bytes("hello"), "b.wasm": action_bytes("echo")}),
        "no wasm": zipped({"main.py": b"def main(args): return args"}),
        "no _start": wat('(module (func (export "main")))'),
        "unknown import": wat('(module (import "env" "host_secret" (func)) (func (export "_start")))'),
    }.get(code, code)
    instance_id, ready = await deploy(executor, code)
    assert ready.status == 502
    error = orjson.loads(ready.body)["error"]
    assert error.startswith("Invalid WebAssembly module: ")
    assert reason in error
    assert "\n" not in error
    # Still not initialised: a run says so, like an action proxy without an action.
    result = await executor.run(instance_id, run_request(), 5_000, LOG_LIMIT)
    assert (result.status, result.body) == (500, '{"error":"no action defined yet"}')


async def test_a_second_init_is_refused(executor: WasmExecutor) -> None:
    instance_id, ready = await deploy(executor, b64(action_bytes("hello")))
    assert ready.status == 200
    again = await executor.init(instance_id, InitRequest(name="x", code=b64(action_bytes("echo"))), 5_000, 100)
    assert (again.status, again.body) == (403, '{"error":"Cannot initialize the action more than once."}')
    result = await executor.run(instance_id, run_request({"name": "still hello"}), 5_000, LOG_LIMIT)
    assert orjson.loads(result.body) == {"greeting": "Hello, still hello!"}


async def test_init_without_code_is_refused(executor: WasmExecutor) -> None:
    _, ready = await deploy(executor, None)
    assert (ready.status, ready.body) == (403, '{"error":"Missing main/no code to execute."}')


async def test_a_compile_longer_than_the_init_timeout_times_out(tmp_path: Path) -> None:
    # ~2,000 functions of arithmetic: well over 20 ms of Cranelift work.
    body = "(local.get 0) " + "(i32.const 7) (i32.mul) (i32.const 3) (i32.add) " * 60
    funcs = "".join(f'(func $f{i} (export "f{i}") (param i32) (result i32) {body})' for i in range(2000))
    code = wat(f'(module {funcs} (func (export "_start")))')
    wasm = in_process(tmp_path)
    await wasm.start()
    try:
        await wasm.create(InstanceSpec(instance_id="big", kind="wasm:wasi", memory_mb=128))
        result = await wasm.init("big", InitRequest(name="big", code=code), 20, LOG_LIMIT)
        assert result.timed_out and result.status is None
    finally:
        await wasm.close()


async def test_an_init_queued_behind_its_namespaces_busy_slots_is_not_timed_out_by_the_wait(
    executor: WasmExecutor,
) -> None:
    # Its limit counts the decode, the compile and the lookups, not the wait for a slot (as a run's): 3 loops of
    # 1 s hold every slot of the namespace, and a new module's init with a 500 ms limit waits ~1 s for its first.
    loops = await loops_holding_every_slot(executor)
    fresh = wat(f'(module (func (export "_start")) (func (export "n{uuid.uuid4().hex}")))')  # never compiled
    instance_id = uuid.uuid4().hex
    await executor.create(InstanceSpec(instance_id=instance_id, kind="wasm:wasi", memory_mb=128))
    init = InitRequest(name="fresh", code=fresh, binary=True, env={"__OW_NAMESPACE": "guest"})
    started = time.monotonic()
    ready = await executor.init(instance_id, init, 500, LOG_LIMIT)
    waited = time.monotonic() - started
    await asyncio.gather(*loops)
    await executor.destroy(instance_id)

    assert waited > 0.5, f"the init did not wait for a slot ({waited:.2f} s): the test proves nothing"
    assert ready.status == 200 and not ready.timed_out, ready
    # The wait is reported as queued (the activation's waitTime, invoker/proxy.py), not as the init's duration
    # (its initTime): OpenWhisk's initTime is the /init alone.
    assert ready.queued_ms > 400, ready
    assert ready.duration_ms is not None and ready.duration_ms < waited * 1000 - 400, ready


async def test_a_new_instance_of_a_loaded_module_is_ready_without_decoding_it_again(
    executor: WasmExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A cold start of a warm action (its runs scaling out): the module cache knows the very code string, so no
    # base64 decode nor digest on the pool (executor_wasm/cache.py ``known``): 30 such inits at once took
    # 31-39 ms and 13-14 ms of the loop's CPU before, 4-5 ms of both after (bench/wasm_executor.py, issue 12).
    decoded: list[str] = []
    decode = executor_wasm.executor.decode_module

    def counted(code: str, max_bytes: int) -> bytes:
        decoded.append(code)
        return decode(code, max_bytes)

    monkeypatch.setattr(executor_wasm.executor, "decode_module", counted)
    code = wat(f'(module (func (export "_start")) (func (export "n{uuid.uuid4().hex}")))')
    first, _ = await deploy(executor, code)
    assert len(decoded) == 1, "the first instance decodes its module"
    others = [await deploy(executor, "".join([code[:8], code[8:]])) for _ in range(3)]  # equal, not the same str
    assert len(decoded) == 1, "later instances of the same code found it loaded"
    for instance_id in [first, *(other for other, _ in others)]:
        result = await executor.run(instance_id, run_request(), 1_000, LOG_LIMIT)
        assert result.status == 200, result
        await executor.destroy(instance_id)


# --- the instance lifecycle ----------------------------------------------------------------------


async def test_unknown_instances_are_executor_errors(executor: WasmExecutor) -> None:
    with pytest.raises(UnknownInstance):
        await executor.run("nope", run_request(), 1_000, LOG_LIMIT)
    with pytest.raises(ExecutorError):
        await executor.init("nope", InitRequest(name="x", code="AA=="), 1_000, LOG_LIMIT)
    await executor.destroy("nope")  # idempotent


async def test_create_refuses_other_kinds_and_duplicates(executor: WasmExecutor) -> None:
    assert executor.kinds() == {"wasm:wasi", "wasm:default"}
    with pytest.raises(ExecutorError):
        await executor.create(InstanceSpec(instance_id="py", kind="python:3", memory_mb=256))
    await executor.create(InstanceSpec(instance_id="twice", kind="wasm:default", memory_mb=256))
    with pytest.raises(ExecutorError):
        await executor.create(InstanceSpec(instance_id="twice", kind="wasm:wasi", memory_mb=256))
    await executor.destroy("twice")


async def test_a_destroyed_instance_is_gone(executor: WasmExecutor) -> None:
    instance_id, _ = await deploy(executor, b64(action_bytes("hello")))
    await executor.destroy(instance_id)
    with pytest.raises(UnknownInstance):
        await executor.run(instance_id, run_request(), 1_000, LOG_LIMIT)


async def test_many_runs_in_parallel_all_succeed(executor: WasmExecutor) -> None:
    instance_id, _ = await deploy(executor, b64(action_bytes("echo")))
    results = await asyncio.gather(
        *(executor.run(instance_id, run_request({"n": n}), 10_000, LOG_LIMIT) for n in range(64))
    )
    assert [orjson.loads(result.body) for result in results] == [{"n": n} for n in range(64)]


async def test_close_ends_runs_in_progress(tmp_path: Path) -> None:
    wasm = in_process(tmp_path)
    await wasm.start()
    run = asyncio.create_task(invoke(wasm, "loop", timeout_ms=120_000))
    await asyncio.sleep(0.3)
    started = time.monotonic()
    await wasm.close()
    result = await run
    assert result.timed_out
    assert time.monotonic() - started < 5


# --- the module cache ----------------------------------------------------------------------------


async def test_a_second_executor_loads_the_artifact_without_compiling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hello = action_bytes("hello")
    first = in_process(tmp_path)
    await first.start()
    try:
        _, ready = await deploy(first, b64(hello))
        assert ready.status == 200
    finally:
        await first.close()
    artifacts = list(module_cache_dir(tmp_path).glob("*.cwasm"))
    assert len(artifacts) == 1
    before = artifacts[0].stat()

    second = in_process(tmp_path)

    async def no_compiling(wasm: bytes, artifact: Path, timeout_s: float) -> bool:
        raise AssertionError("compiled although the artifact was cached")

    monkeypatch.setattr(second.compiler, "compile", no_compiling)
    await second.start()
    try:
        instance_id, ready = await deploy(second, b64(hello))
        assert ready.status == 200
        result = await second.run(instance_id, run_request({"name": "cache"}), 5_000, LOG_LIMIT)
        assert orjson.loads(result.body) == {"greeting": "Hello, cache!"}
    finally:
        await second.close()
    after = artifacts[0].stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


async def test_a_corrupted_artifact_is_replaced_by_a_fresh_compile(tmp_path: Path) -> None:
    hello = action_bytes("hello")
    wasm = in_process(tmp_path)
    path = wasm.cache.artifact_path(hashlib.sha256(hello).hexdigest())
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x7fELF this is not a wasmtime artifact")
    await wasm.start()
    try:
        instance_id, ready = await deploy(wasm, b64(hello))
        assert ready.status == 200
        result = await wasm.run(instance_id, run_request(), 5_000, LOG_LIMIT)
        assert orjson.loads(result.body) == {"greeting": "Hello, stranger!"}
    finally:
        await wasm.close()
    assert path.stat().st_size > 1000
    assert wasmtime.Module.deserialize_file(wasm.engine, str(path))


async def test_an_artifact_of_another_engine_config_is_replaced(tmp_path: Path) -> None:
    hello = action_bytes("hello")
    wasm = in_process(tmp_path)
    # Compiled without epoch interruption: Wasmtime refuses to load it into our engine.
    foreign = wasmtime.Module(wasmtime.Engine(), hello).serialize()
    path = wasm.cache.artifact_path(hashlib.sha256(hello).hexdigest())
    path.parent.mkdir(parents=True)
    path.write_bytes(foreign)
    await wasm.start()
    try:
        _, ready = await deploy(wasm, b64(hello))
        assert ready.status == 200
    finally:
        await wasm.close()
    assert path.read_bytes() != foreign
