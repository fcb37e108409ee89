"""Unit tests of when a warm WASM guest may run on the loop (executor_wasm/inline.py): streaks, imports, size."""

from __future__ import annotations

from pathlib import Path

import pytest
import wasmtime

from executor_wasm import inline
from executor_wasm.cache import CompiledModule
from executor_wasm.grants import NO_GRANTS
from executor_wasm.inline import (
    MAX_STREAK,
    SHORT_MS,
    SHORT_RUNS,
    InlineRunner,
    Streak,
    may_run_inline,
)

pytestmark = pytest.mark.unit


def module(*imports: str) -> wasmtime.Module:
    funcs = "".join(f'(import "{mod}" "{name}" (func))' for mod, name in (i.split(".") for i in imports))
    return wasmtime.Module(wasmtime.Engine(), f"(module {funcs})")


def test_a_streak_of_short_runs_makes_an_instance_ready_and_a_long_run_starts_it_again() -> None:
    streak = Streak()
    for _ in range(SHORT_RUNS - 1):
        streak.ran(SHORT_MS / 2)
    assert not streak.ready
    streak.ran(SHORT_MS / 2)
    assert streak.ready
    streak.ran(SHORT_MS * 2)
    assert not streak.ready and streak.short == 0
    streak.ran(None)  # not measured: not short
    assert streak.short == 0


def test_each_overrun_doubles_the_streak_needed_up_to_a_bound() -> None:
    streak = Streak(short=SHORT_RUNS)
    streak.overran()
    assert streak.short == 0 and streak.needed == 2 * SHORT_RUNS
    for _ in range(20):
        streak.overran()
    assert streak.needed == MAX_STREAK


def test_only_modules_importing_calls_that_never_wait_may_run_inline() -> None:
    assert may_run_inline(module("wasi_snapshot_preview1.fd_write", "wasi_snapshot_preview1.proc_exit"), NO_GRANTS)
    assert may_run_inline(module(), NO_GRANTS)
    assert not may_run_inline(module("wasi_snapshot_preview1.poll_oneoff"), NO_GRANTS)
    assert not may_run_inline(module("wasi_snapshot_preview1.path_open"), NO_GRANTS)
    assert not may_run_inline(module("wasi_snapshot_preview1.sock_accept"), NO_GRANTS)
    assert not may_run_inline(module("http.get"), NO_GRANTS)


def test_a_module_whose_compiled_artifact_is_too_big_never_loads_on_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = InlineRunner()
    try:
        module = wasmtime.Module(runner.engine, '(module (func (export "_start")))')
        artifact = tmp_path / "module.cwasm"
        artifact.write_bytes(module.serialize())
        compiled = CompiledModule("d" * 64, module, runner.linker.instantiate_pre(module))
        monkeypatch.setattr(inline, "MAX_ARTIFACT_BYTES", artifact.stat().st_size - 1)
        assert runner.module(compiled, artifact) is None
        monkeypatch.setattr(inline, "MAX_ARTIFACT_BYTES", artifact.stat().st_size)
        assert runner.module(compiled, artifact) is not None  # the same artifact, within the bound
    finally:
        runner.close()
