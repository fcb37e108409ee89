"""One call into a fresh instance of the Python runner: limits, stdio capture, the proxy's answer.

Each ``prepare`` (the action's ``/init``) and each ``run`` instantiates the runner component in its own
Store, exactly as runner.py does for ``wasm:wasi`` modules: the same epoch deadline (the executor's
ticker), the same memory limit (``Store.set_limits``), the same size-capped memfds for stdout and
stderr, and no preopened directories or sockets. Nothing survives between activations.

Everything here blocks and must run on a worker thread; Wasmtime releases the GIL while wasm runs.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import orjson
import wasmtime
import wasmtime.component

from executor_wasm.cache import describe_error
from executor_wasm.limits import PYTHON_RUNNER, GuestBudget, is_limit_error
from executor_wasm.runner import deadline_ticks
from executor_wasm.stdio import OUTPUT_SLACK, CappedOutput, collect_logs
from pywhisk.executor import ProxyResult

# The guest's statuses (guest/runner.wit): what the Docker action proxy would have answered, and 0
# when the action ran out of memory (a MemoryError that reached the runner).
OK = 200
MEMORY_EXHAUSTED = 0


@dataclass(frozen=True, slots=True)
class Runner:
    """The compiled runner component and the linker (WASI preview 2) that instantiates it."""

    engine: wasmtime.Engine
    component: wasmtime.component.Component
    linker: wasmtime.component.Linker


@dataclass(frozen=True, slots=True)
class CallLimits:
    """The action's limits for one call."""

    memory_bytes: int
    timeout_ms: int
    log_limit_bytes: int


def create_runner(engine: wasmtime.Engine, component: wasmtime.component.Component) -> Runner:
    """A Runner with its own linker (WASI preview 2 only: no other imports exist)."""
    linker = wasmtime.component.Linker(engine)
    # Not define_unknown_imports_as_traps: it shadows the WASI imports (measurements.md).
    linker.add_wasip2()
    return Runner(engine, component, linker)


def prepare(runner: Runner, source: str, main: str, limits: CallLimits) -> tuple[ProxyResult, bytes | None]:
    """Compile and import the action in a fresh instance: ``/init``'s answer and the marshalled code."""
    result, payload = _call(runner, "prepare", (source, main), limits)
    if result.status != OK:
        return result, None
    result.body = '{"ok":true}'
    return result, payload


def run(runner: Runner, code: bytes, main: str, params: bytes, env: dict[str, str], limits: CallLimits) -> ProxyResult:
    """Run the prepared action once, in a fresh instance: ``/run``'s answer."""
    result, _ = _call(runner, "run", (code, main, params.decode(), list(env.items())), limits)
    return result


def _call(runner: Runner, export: str, args: tuple[object, ...], limits: CallLimits) -> tuple[ProxyResult, bytes]:
    started = time.perf_counter()
    cap = limits.log_limit_bytes + OUTPUT_SLACK
    with CappedOutput("stdout", cap) as stdout, CappedOutput("stderr", cap) as stderr:
        store = wasmtime.Store(runner.engine)
        GuestBudget.of(limits.memory_bytes, PYTHON_RUNNER).apply(store)
        store.set_epoch_deadline(deadline_ticks(limits.timeout_ms))
        wasi = wasmtime.WasiConfig()  # no preopens, no environment, no network
        stdout.attach(wasi)
        stderr.attach(wasi)
        store.set_wasi(wasi)
        outcome = _invoke(store, runner, export, args)
        store.close()
        logs = collect_logs(stdout.read(), stderr.read(), limits.log_limit_bytes)
    result = _answer(outcome, logs)
    result.duration_ms = (time.perf_counter() - started) * 1000
    return result, outcome[1] if isinstance(outcome, tuple) and outcome[0] == OK else b""


_TIMED_OUT = "timed out"
_EXIT_STATUS = re.compile(r"^Exited with i32 exit status (\d+)$")


def _invoke(
    store: wasmtime.Store, runner: Runner, export: str, args: tuple[object, ...]
) -> tuple[int, bytes] | str | wasmtime.WasmtimeError | wasmtime.Trap:
    try:
        instance = runner.linker.instantiate(store, runner.component)
        function = instance.get_func(store, export)
        if function is None:
            return wasmtime.WasmtimeError(f"the Python runner has no `{export}` export")
        status, payload = function(store, *args)
        return int(status), bytes(payload)
    except wasmtime.Trap as trap:
        if trap.trap_code == wasmtime.TrapCode.INTERRUPT:
            return _TIMED_OUT
        return trap
    except wasmtime.WasmtimeError as error:
        # Component calls report an epoch interruption as an error with the trap in its message.
        if "interrupt" in str(error):
            return _TIMED_OUT
        if is_limit_error(error):  # the limit cannot hold the runner's memories and tables
            return MEMORY_EXHAUSTED, b""
        return error


def _answer(outcome: tuple[int, bytes] | str | wasmtime.WasmtimeError | wasmtime.Trap, logs: list[str]) -> ProxyResult:
    result = _result(outcome)
    # Strings already (collect_logs): validating 100,000 lines again holds the GIL for ~20 ms in one call.
    result.logs = logs
    return result


def _result(outcome: tuple[int, bytes] | str | wasmtime.WasmtimeError | wasmtime.Trap) -> ProxyResult:
    if outcome == _TIMED_OUT:
        return ProxyResult(status=None, timed_out=True)
    if isinstance(outcome, (wasmtime.WasmtimeError, wasmtime.Trap)):
        reason = describe_error(outcome)
        exited = _EXIT_STATUS.search(reason)  # the guest's WASI exit: only "failed" (1) crosses preview 2
        message = f"The action exited with status {exited[1]}." if exited else f"The action trapped: {reason}"
        body = orjson.dumps({"error": message}).decode()
        return ProxyResult(status=502, body=body)
    assert isinstance(outcome, tuple)
    status, payload = outcome
    if status == MEMORY_EXHAUSTED:
        return ProxyResult(status=None, memory_exhausted=True)
    return ProxyResult(status=status, body=payload.decode("utf-8", "replace"))
