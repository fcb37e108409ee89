"""One call into a fresh instance of the JavaScript runner: limits, stdio capture, the proxy's answer.

As for the Python runner (python/runner.py), each ``prepare`` (the action's ``/init``) and each ``run``
instantiates the component in its own Store with the ``wasm:wasi`` limits: the epoch deadline of the
executor's ticker, all of the action's memory limit split over the store (limits.py), size-capped memfds
for stdout and stderr, and no preopened directories, environment or sockets. The component has no
``wasi:http`` import (build.mjs), so ``fetch`` has nowhere to go. Nothing survives between activations:
instantiating the pre-initialised engine takes ~0.1 ms, evaluating a small action's source ~1 ms.

Everything here blocks and must run on a worker thread; Wasmtime releases the GIL while wasm runs.
"""

from __future__ import annotations

import time

import orjson
import wasmtime
import wasmtime.component

from executor_wasm.cache import describe_error
from executor_wasm.limits import GuestBudget, GuestShape, is_limit_error
from executor_wasm.python.runner import CallLimits, Runner, create_runner
from executor_wasm.runner import deadline_ticks
from executor_wasm.stdio import OUTPUT_SLACK, CappedOutput, collect_logs
from pywhisk.executor import ProxyResult

__all__ = ["JS_RUNNER", "CallLimits", "Runner", "create_runner", "prepare", "run"]

# The guest's statuses (guest/runner.wit): what OpenWhisk's Node.js proxy would have answered, and 0 when
# the engine reported "out of memory" to the action.
OK = 200
MEMORY_EXHAUSTED = 0

# The componentize-js 0.23 runner: a handful of core instances (the engine and the WASI adapter), one
# memory and a few tables measured; the counts leave room for a rebuild, the budget is the same.
JS_RUNNER = GuestShape(instances=32, memories=1, tables=8)

# SpiderMonkey aborts (a trap) when it cannot allocate even to report the failure: after a memory.grow the
# store limit refused, its message on stderr says so.
_ENGINE_OUT_OF_MEMORY = "out of memory"


def prepare(runner: Runner, source: str, main: str, limits: CallLimits) -> ProxyResult:
    """Evaluate the action's source in a fresh instance and check ``main``: ``/init``'s answer."""
    return _call(runner, "prepare", (source, main), limits)


def run(runner: Runner, source: str, main: str, params: bytes, env: dict[str, str], limits: CallLimits) -> ProxyResult:
    """Evaluate the source and call ``main(params)`` once, in a fresh instance: ``/run``'s answer."""
    return _call(runner, "run", (source, main, params.decode(), list(env.items())), limits)


def _call(runner: Runner, export: str, args: tuple[object, ...], limits: CallLimits) -> ProxyResult:
    started = time.perf_counter()
    cap = limits.log_limit_bytes + OUTPUT_SLACK
    with CappedOutput("stdout", cap) as stdout, CappedOutput("stderr", cap) as stderr:
        store = wasmtime.Store(runner.engine)
        GuestBudget.of(limits.memory_bytes, JS_RUNNER).apply(store)
        store.set_epoch_deadline(deadline_ticks(limits.timeout_ms))
        wasi = wasmtime.WasiConfig()  # no preopens, no environment, no network
        stdout.attach(wasi)
        stderr.attach(wasi)
        store.set_wasi(wasi)
        outcome = _invoke(store, runner, export, args)
        store.close()
        out, err = stdout.read(), stderr.read()
        logs = collect_logs(out, err, limits.log_limit_bytes)
    result = _result(outcome, _ENGINE_OUT_OF_MEMORY.encode() in err)
    # Strings already (collect_logs): validating 100,000 lines again holds the GIL for ~20 ms in one call.
    result.logs = logs
    result.duration_ms = (time.perf_counter() - started) * 1000
    return result


_TIMED_OUT = "timed out"


def _invoke(
    store: wasmtime.Store, runner: Runner, export: str, args: tuple[object, ...]
) -> tuple[int, str] | str | wasmtime.WasmtimeError | wasmtime.Trap:
    try:
        instance = runner.linker.instantiate(store, runner.component)
        function = instance.get_func(store, export)
        if function is None:
            return wasmtime.WasmtimeError(f"the JavaScript runner has no `{export}` export")
        status, body = function(store, *args)
        return int(status), str(body)
    except wasmtime.Trap as trap:
        if trap.trap_code == wasmtime.TrapCode.INTERRUPT:
            return _TIMED_OUT
        return trap
    except wasmtime.WasmtimeError as error:
        # Component calls report an epoch interruption as an error with the trap in its message.
        if "interrupt" in str(error):
            return _TIMED_OUT
        if is_limit_error(error):  # the limit cannot hold the engine's memory and tables
            return MEMORY_EXHAUSTED, ""
        return error


def _result(outcome: tuple[int, str] | str | wasmtime.WasmtimeError | wasmtime.Trap, engine_oom: bool) -> ProxyResult:
    if outcome == _TIMED_OUT:
        return ProxyResult(status=None, timed_out=True)
    if isinstance(outcome, (wasmtime.WasmtimeError, wasmtime.Trap)):
        if engine_oom:
            return ProxyResult(status=None, memory_exhausted=True)
        body = orjson.dumps({"error": f"The action trapped: {describe_error(outcome)}"}).decode()
        return ProxyResult(status=502, body=body)
    assert isinstance(outcome, tuple), f"expected (status, body) from the runner, got {outcome!r}"
    status, body = outcome
    if status == MEMORY_EXHAUSTED:
        return ProxyResult(status=None, memory_exhausted=True)
    return ProxyResult(status=status, body=body)
