"""Host calls are paced per run (executor_wasm/stdio.py ``refused`` and ``host_call``; issue 12, "hostcall": guests
calling the host in a loop held the GIL in wasmtime-py's trampolines and the other namespaces' hellos waited): a
refused call repeated past a few is paused without the GIL, and so is every 16th call past a large allowance.

The guests are real WebAssembly modules run by Wasmtime through the executor's own host functions; only
the pause itself (``executor_wasm.stdio._pause``) is replaced, to count the pauses instead of waiting for them.
"""

from __future__ import annotations

import pytest
import wasmtime

from executor_wasm import stdio
from executor_wasm.sleeps import MAX_SUBSCRIPTIONS, define_poll_oneoff
from executor_wasm.stdio import CALLS_PER_PAUSE, HOST_CALL_PAUSE_S, REFUSALS_FREE, captured_output, define_fd_write

pytestmark = pytest.mark.unit

_IMPORTS = """
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))"""


def _looping(call: str, times: int) -> bytes:
    """A command calling ``call`` (an expression leaving an i32) ``times`` times; it exits 0 after the loop."""
    return bytes(
        wasmtime.wat2wasm(
            f"""(module {_IMPORTS} (memory (export "memory") 1)
              (func (export "_start") (local $i i32)
                (block $done (loop $again
                  (br_if $done (i32.ge_u (local.get $i) (i32.const {times})))
                  (drop {call})
                  (local.set $i (i32.add (local.get $i) (i32.const 1)))
                  (br $again)))))"""
        )
    )


# The iovec at 0 points at 16 bytes of zeros at 16 (the memory is all zeros otherwise).
_TOO_MANY_IOVECS = "(call $fd_write (i32.const 1) (i32.const 0) (i32.const 1025) (i32.const 8))"
_OUTSIDE_MEMORY = "(call $fd_write (i32.const 1) (i32.const 65532) (i32.const 1) (i32.const 8))"
_NO_SUCH_DESCRIPTOR = "(call $fd_write (i32.const 7) (i32.const 0) (i32.const 1) (i32.const 8))"
_TOO_MANY_SUBSCRIPTIONS = (
    f"(call $poll_oneoff (i32.const 0) (i32.const 0) (i32.const {MAX_SUBSCRIPTIONS + 1}) (i32.const 8))"
)
_EMPTY_WRITE = "(call $fd_write (i32.const 1) (i32.const 0) (i32.const 0) (i32.const 8))"


@pytest.fixture
def pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr(stdio, "_pause", lambda: slept.append(HOST_CALL_PAUSE_S))
    return slept


def _run(module: bytes, cap: int = 1 << 20) -> bytearray:
    engine = wasmtime.Engine()
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    define_poll_oneoff(linker)
    define_fd_write(linker)
    store = wasmtime.Store(engine)
    store.set_wasi(wasmtime.WasiConfig())
    with captured_output(cap) as (stdout, _stderr):
        instance = linker.instantiate(store, wasmtime.Module(engine, module))
        start = instance.exports(store)["_start"]
        assert isinstance(start, wasmtime.Func), "expected the command's _start"
        start(store)
    return stdout


@pytest.mark.parametrize("call", [_TOO_MANY_IOVECS, _OUTSIDE_MEMORY, _NO_SUCH_DESCRIPTOR, _TOO_MANY_SUBSCRIPTIONS])
def test_a_refused_host_call_repeated_in_a_loop_pauses_the_guest_after_the_free_ones(
    pauses: list[float], call: str
) -> None:
    _run(_looping(call, REFUSALS_FREE + 100))
    assert pauses == [HOST_CALL_PAUSE_S] * 100


def test_a_few_refusals_cost_nothing_and_each_run_starts_afresh(pauses: list[float]) -> None:
    for _ in range(3):
        _run(_looping(_TOO_MANY_IOVECS, REFUSALS_FREE))
    assert pauses == []


def test_calls_that_are_not_refused_are_free_up_to_a_number_a_run_then_paced(
    pauses: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    _run(_looping(_EMPTY_WRITE, REFUSALS_FREE * 4))
    assert pauses == []
    monkeypatch.setattr(stdio, "CALLS_FREE", 100)  # (the real allowance is 100,000 calls)
    _run(_looping(_EMPTY_WRITE, 100 + CALLS_PER_PAUSE * 10))
    assert pauses == [HOST_CALL_PAUSE_S] * 10
    pauses.clear()
    _run(_looping(_EMPTY_WRITE, 100))  # a new run starts afresh
    assert pauses == []


def test_writes_past_the_log_cap_are_not_paused(pauses: list[float]) -> None:
    # A careless guest printing past its log limit gets EPERM (the cap), as it would from a full file.
    write = "(call $fd_write (i32.const 1) (i32.const 32) (i32.const 1) (i32.const 8))"
    module = bytes(
        wasmtime.wat2wasm(
            f"""(module {_IMPORTS} (memory (export "memory") 1)
              (data (i32.const 32) "\\30\\00\\00\\00\\10\\00\\00\\00")
              (func (export "_start") (local $i i32)
                (block $done (loop $again
                  (br_if $done (i32.ge_u (local.get $i) (i32.const {REFUSALS_FREE * 4})))
                  (drop {write})
                  (local.set $i (i32.add (local.get $i) (i32.const 1)))
                  (br $again)))))"""
        )
    )
    stdout = _run(module, cap=64)
    assert len(stdout) == 64, "the guest's writes should have filled the cap"
    assert pauses == []
