"""A run's captured output reaches the logs without a copy (executor_wasm/runner.py, issue 12, records class).

``bytes()`` of a 10 MB capture, and then slicing the logs off the result line, were each one C call holding the GIL
for milliseconds (8-23 ms measured on a loaded machine) while other namespaces' requests waited for it. The runner
now hands the captured bytearrays on, and ``take_result`` cuts a bytearray's result line off in place.

The guest is a real WebAssembly module run by Wasmtime through the runner, as the executor runs it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import wasmtime

from executor_wasm import runner
from executor_wasm.cache import ModuleCache, compile_artifact, create_engine
from executor_wasm.runner import RunSpec, run_module
from executor_wasm.stdio import captured_output, define_fd_write, take_result

pytestmark = pytest.mark.unit

LINES = 20_000  # ~300 KB of logs: several of collect_logs's slices


def _module() -> bytes:
    """A command writing ``LINES`` log lines to stdout, then its result line."""
    return bytes(
        wasmtime.wat2wasm(
            f"""(module
              (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
              (memory (export "memory") 1)
              (data (i32.const 0) "\\20\\00\\00\\00\\0f\\00\\00\\00")
              (data (i32.const 8) "\\40\\00\\00\\00\\0c\\00\\00\\00")
              (data (i32.const 32) "a log line 123\\n")
              (data (i32.const 64) "{{\\"ok\\":true}}\\n")
              (func (export "_start") (local $i i32)
                (block $done (loop $again
                  (br_if $done (i32.ge_u (local.get $i) (i32.const {LINES})))
                  (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 16)))
                  (local.set $i (i32.add (local.get $i) (i32.const 1)))
                  (br $again)))
                (drop (call $w (i32.const 1) (i32.const 8) (i32.const 1) (i32.const 16)))))"""
        )
    )


def test_the_runner_hands_the_captured_output_on_without_a_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = create_engine()
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    define_fd_write(linker)
    cache = ModuleCache(engine, linker, tmp_path)
    wasm = _module()
    digest, _ = cache.lookup(wasm)
    compile_artifact(engine, wasm, cache.artifact_path(digest))
    given: list[type[Any]] = []
    real = runner._proxy_result

    def recording(outcome: Any, out: bytes | bytearray, err: bytes | bytearray, log_limit: int) -> Any:
        given.extend((type(out), type(err)))
        return real(outcome, out, err, log_limit)

    monkeypatch.setattr(runner, "_proxy_result", recording)
    result = run_module(engine, cache.adopt(digest), RunSpec("logs", {}, b"{}", 128 << 20, 10_000, 1 << 20))

    assert given == [bytearray, bytearray]  # the capture itself: bytes() would have copied it
    assert (result.status, result.body) == (200, '{"ok":true}')
    assert len(result.logs) == LINES and all(line.endswith(" stdout: a log line 123") for line in result.logs)


def test_take_result_cuts_a_bytearray_in_place() -> None:
    with captured_output(1 << 20) as (stdout, _):
        stdout += b"log 1\nlog 2\n" * 10_000 + b'{"a": 1}\n\n'
    body, logs = take_result(stdout)
    assert body == '{"a": 1}' and logs is stdout and bytes(logs) == b"log 1\nlog 2\n" * 10_000
    # bytes are sliced, as before
    assert take_result(b'log 1\n{"a": 1}\n') == ('{"a": 1}', b"log 1\n")
    assert take_result(bytearray(b"\n \n")) == ("", b"")
