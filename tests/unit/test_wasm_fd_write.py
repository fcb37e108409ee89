"""The guest's ``fd_write`` (executor_wasm/stdio.py) goes through Wasmtime's unchecked host-function API, not
wasmtime-py's ``define_func`` trampoline (issue 15: ~30 µs a call there, hello.wasm makes two per run), and still
captures, caps and refuses as before; a bug of ours in it is still the run's failure, not the executor's.

The guests are real WebAssembly modules run by Wasmtime (hello.wasm through the runner, as the executor runs it).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import orjson
import pytest
import wasmtime

from executor_wasm import stdio
from executor_wasm.cache import ModuleCache, compile_artifact, create_engine
from executor_wasm.runner import RunSpec, run_module
from executor_wasm.stdio import captured_output, define_fd_write

pytestmark = pytest.mark.unit

HELLO = Path(__file__).resolve().parents[2] / "actions" / "wasm" / "hello.wasm"


def _writer(calls: int) -> bytes:
    """A command writing "abc\\n" to stdout ``calls`` times, then 1 iovec to descriptor 7 (refused)."""
    return bytes(
        wasmtime.wat2wasm(
            f"""(module
              (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
              (memory (export "memory") 1)
              (data (i32.const 0) "\\10\\00\\00\\00\\04\\00\\00\\00")
              (data (i32.const 16) "abc\\n")
              (global $errno (export "errno") (mut i32) (i32.const 0))
              (func (export "_start") (local $i i32)
                (block $done (loop $again
                  (br_if $done (i32.ge_u (local.get $i) (i32.const {calls})))
                  (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
                  (local.set $i (i32.add (local.get $i) (i32.const 1)))
                  (br $again)))
                (global.set $errno (call $w (i32.const 7) (i32.const 0) (i32.const 1) (i32.const 8)))))"""
        )
    )


def _run(module: bytes, cap: int = 1 << 20) -> tuple[bytearray, int, int]:
    """stdout, the errno of the write to descriptor 7, and what the last write said it wrote (at 8)."""
    engine = wasmtime.Engine()
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    define_fd_write(linker)
    store = wasmtime.Store(engine)
    store.set_wasi(wasmtime.WasiConfig())
    with captured_output(cap) as (stdout, _stderr):
        instance = linker.instantiate(store, wasmtime.Module(engine, module))
        start = instance.exports(store)["_start"]
        assert isinstance(start, wasmtime.Func)
        start(store)
    errno = instance.exports(store)["errno"]
    memory = instance.exports(store)["memory"]
    assert isinstance(errno, wasmtime.Global) and isinstance(memory, wasmtime.Memory)
    return stdout, errno.value(store), int.from_bytes(memory.read(store, 8, 12), "little")


def test_writes_are_captured_without_wasmtime_pys_trampoline(monkeypatch: pytest.MonkeyPatch) -> None:
    # The trampoline's host function is the fallback only: a call reaching it fails the test.
    def trampoline(*args: object) -> int:
        raise AssertionError("fd_write went through wasmtime-py's define_func trampoline")

    monkeypatch.setattr(stdio, "_fd_write", trampoline)
    stdout, errno, written = _run(_writer(3))
    assert bytes(stdout) == b"abc\n" * 3
    assert errno == 8  # EBADF: a descriptor the guest does not have
    assert written == 4


def test_the_cap_still_holds_and_a_full_stream_answers_eperm() -> None:
    stdout, _errno, _written = _run(_writer(3), cap=6)
    assert bytes(stdout) == b"abc\nab"


def test_a_bug_in_the_host_function_is_the_runs_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object) -> int:
        raise RuntimeError("a bug of ours")

    monkeypatch.setattr(stdio, "_write", broken)
    engine = create_engine()
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    define_fd_write(linker)
    cache = ModuleCache(engine, linker, Path(tempfile.mkdtemp(prefix="fd-write-")))
    wasm = HELLO.read_bytes()
    digest, _ = cache.lookup(wasm)
    compile_artifact(engine, wasm, cache.artifact_path(digest))
    spec = RunSpec("hello", {}, orjson.dumps({"name": "x"}), 128 << 20, 10_000, 1 << 20)
    result = run_module(engine, cache.adopt(digest), spec)
    assert result.status == 502
    assert result.body is not None and "a host function failed (RuntimeError)" in result.body
    monkeypatch.undo()  # and the same engine runs the next activation normally
    result = run_module(engine, cache.adopt(digest), spec)
    assert (result.status, result.body) == (200, '{"greeting": "Hello, x!"}')


def test_the_environment_reaches_the_guest(tmp_path: Path) -> None:
    # Set through the C API, one call each (runner.py ``_set_argv_env``): names and values in UTF-8, empty ones kept.
    engine = create_engine()
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    define_fd_write(linker)
    cache = ModuleCache(engine, linker, tmp_path)
    wasm = (HELLO.parent / "env.wasm").read_bytes()
    digest, _ = cache.lookup(wasm)
    compile_artifact(engine, wasm, cache.artifact_path(digest))
    env = {"__OW_ACTIVATION_ID": "a" * 32, "__OW_NAMESPACE": "guest", "ÜNICODE": "välue", "EMPTY": ""}
    result = run_module(engine, cache.adopt(digest), RunSpec("env", env, b"{}", 128 << 20, 10_000, 1 << 20))
    assert result.status == 200 and result.body is not None
    assert orjson.loads(result.body)["env"] == env
