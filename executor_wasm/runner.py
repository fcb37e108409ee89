"""One activation of a WASI command module: a fresh Store and instance per run, limits, stdio capture.

The ABI (DESIGN.md, kind ``wasm:wasi``): the params arrive as one JSON object on stdin, the last
non-empty line of stdout is the result, everything else on stdout and stderr is the log. Each run
gets its own Store, so nothing survives between activations; what a run costs is dominated by the
Python wrappers (~100-140 µs, reference/measurements.md "Wasmtime from Python").

Everything here blocks and must run on a worker thread; Wasmtime releases the GIL while wasm runs.
How stdin, stdout and stderr reach the guest is in stdio.py: a run holds no file descriptor, so a
sleeping guest costs a thread and its Store (~85 KiB RSS, docs/benchmarks.md, issue 17).
"""

from __future__ import annotations

import ctypes
import logging
import math
import time
from dataclasses import dataclass

import orjson
import wasmtime
from wasmtime import _ffi as ffi
from wasmtime._func import enter_wasm

from executor_wasm.cache import CompiledModule, describe_error
from executor_wasm.grants import NO_GRANTS, Grants, apply_preopens
from executor_wasm.limits import MODULE, GuestBudget, is_limit_error
from executor_wasm.priority import guest_deadline, guest_stopped
from executor_wasm.sleeps import DeadlinePassed, deadline_passed, run_deadline
from executor_wasm.stdio import OUTPUT_SLACK, Stdin, captured_output, collect_logs, take_result
from executor_wasm.ticker import epoch_lag
from pywhisk.executor import ProxyResult

# The epoch ticker's period: a deadline fires between timeout and timeout + 2 ticks, and an
# interrupted loop stops within ~0.2 ms of the tick (measurements.md).
TICK_MS = 10
PAGE = 65536

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RunSpec:
    """What one run needs besides the module: the WASI world and the limits."""

    argv0: str
    env: dict[str, str]
    stdin: bytes
    memory_bytes: int
    timeout_ms: int
    log_limit_bytes: int
    grants: Grants = NO_GRANTS  # read-only preopens granted by annotation (grants.py)


def deadline_ticks(timeout_ms: int) -> int:
    """Epoch ticks after which a run started now is interrupted."""
    return math.ceil(timeout_ms / TICK_MS) + 1 + epoch_lag()  # counted from the epoch the ticker owes (ticker.py)


def new_store(
    engine: wasmtime.Engine, spec: RunSpec, stdin: Stdin, epoch_deadline: int
) -> tuple[wasmtime.Store, GuestBudget]:
    """A fresh Store for one run of ``spec``: its memory budget, epoch deadline, argv, env, preopens and stdin."""
    store = wasmtime.Store(engine)
    budget = GuestBudget.of(spec.memory_bytes, MODULE)
    budget.apply(store)
    store.set_epoch_deadline(epoch_deadline)
    wasi = wasmtime.WasiConfig()
    _set_argv_env(wasi, spec.argv0, spec.env)
    apply_preopens(wasi, spec.grants)
    stdin.attach(wasi, spec.stdin)  # stdout and stderr: the linker's fd_write (stdio.py)
    store.set_wasi(wasi)
    return store, budget


# wasi_config_set_argv and wasi_config_set_env (wasi.h) taking plain addresses, keeping the GIL (they copy the strings
# and return): wasmtime-py's ``argv`` and ``env`` setters build a ``c_char_p`` object per string and cast the arrays,
# ~30 µs of a run's set-up for an activation's ``__OW_*`` variables against ~12 µs this way (issue 15).
try:
    _SET_ARGV = ctypes.PYFUNCTYPE(ctypes.c_bool, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p)(
        ("wasi_config_set_argv", ffi.dll)
    )
    _SET_ENV = ctypes.PYFUNCTYPE(ctypes.c_bool, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_void_p)(
        ("wasi_config_set_env", ffi.dll)
    )
except AttributeError:  # wasmtime-py's internals moved: its setters (_set_argv_env)
    _SET_ARGV = _SET_ENV = None  # type: ignore[assignment]


def _set_argv_env(wasi: wasmtime.WasiConfig, argv0: str, env: dict[str, str]) -> None:
    if _SET_ARGV is None:
        wasi.argv = [argv0]
        wasi.env = list(env.items())
        return
    config = ctypes.cast(wasi.ptr(), ctypes.c_void_p).value
    count = len(env)
    names = (ctypes.c_char_p * count)(*[name.encode() for name in env])
    values = (ctypes.c_char_p * count)(*[value.encode() for value in env.values()])
    if not (_SET_ENV(config, count, names, values) and _SET_ARGV(config, 1, (ctypes.c_char_p * 1)(argv0.encode()))):
        raise wasmtime.WasmtimeError("failed to configure argv and environment")


def run_module(engine: wasmtime.Engine, compiled: CompiledModule, spec: RunSpec) -> ProxyResult:
    """Instantiate ``compiled`` in a fresh Store, call ``_start`` and report like an action proxy."""
    started = time.perf_counter()
    cap = spec.log_limit_bytes + OUTPUT_SLACK
    with (
        captured_output(cap) as (stdout, stderr),
        Stdin() as stdin,
        run_deadline(spec.timeout_ms / 1000),
    ):
        store, budget = new_store(engine, spec, stdin, deadline_ticks(spec.timeout_ms))
        guest_deadline(time.monotonic() + spec.timeout_ms / 1000)  # nice 0 again just before it (priority.py)
        try:
            outcome = _execute(store, compiled, budget.memory_bytes)
        except DeadlinePassed:  # wasmtime-py re-raises what a host function raised
            outcome = _TIMED_OUT
        guest_stopped()  # the rest is host work under the GIL: at nice 0 again (priority.py)
        if deadline_passed():  # stopped in a sleep (sleeps.py), whatever error the guest saw
            outcome = _TIMED_OUT
        store.close()
    # The captured buffers themselves, not a bytes() copy: copying a 10 MB output was one C call holding the GIL
    # for 8-23 ms on a loaded machine, while other namespaces' requests waited for it (docs/benchmarks.md,
    # issue 12, records). Nothing writes to them once the context is left.
    result = _proxy_result(outcome, stdout, stderr, spec.log_limit_bytes)
    result.duration_ms = (time.perf_counter() - started) * 1000
    return result


# --- outcomes ----------------------------------------------------------------------------------

_OK = "ok"
_TIMED_OUT = "timed out"
_MEMORY = "memory exhausted"


@dataclass(frozen=True, slots=True)
class _Failed:
    body: str  # the proxy's 502 body


def _execute(store: wasmtime.Store, compiled: CompiledModule, memory_bytes: int) -> str | _Failed:
    try:
        instance = compiled.instance_pre.instantiate(store)
    except wasmtime.Trap as trap:  # a start section ran and trapped
        return _TIMED_OUT if trap.trap_code == wasmtime.TrapCode.INTERRUPT else _trap_error(trap)
    except wasmtime.WasmtimeError as error:
        if is_limit_error(error):  # more memories, tables or declared minimums than the limit holds
            return _MEMORY
        return _trap_error(error)
    try:
        _call_start(store, instance)
    except wasmtime.ExitTrap as exit_trap:
        if exit_trap.code == 0:
            return _OK
        if _near_limit(store, instance, memory_bytes):  # e.g. a runtime exiting on out-of-memory
            return _MEMORY
        return _error(f"The action exited with status {exit_trap.code}.")
    except wasmtime.Trap as trap:
        if trap.trap_code == wasmtime.TrapCode.INTERRUPT:
            return _TIMED_OUT
        # abort() after malloc failed, or a fault after an unchecked one.
        return _MEMORY if _near_limit(store, instance, memory_bytes) else _trap_error(trap)
    except wasmtime.WasmtimeError as error:  # a host function failed
        return _trap_error(error)
    except DeadlinePassed:
        raise
    except Exception as error:  # a bug of ours in a host function, hit by this guest's input: its failure
        logger.exception("a host function failed on a guest's call")
        return _error(f"The action trapped: a host function failed ({type(error).__name__})")
    return _OK


def _call_start(store: wasmtime.Store, instance: wasmtime.Instance) -> None:
    """Call the command's ``_start`` (cache.py checked that it exists and has type () -> ())."""
    try:
        # Straight through the C API: skips building wrappers for every export and the Func's
        # type introspection, ~23 µs of a ~270 µs run (measured on hello.wasm).
        item = ffi.wasmtime_extern_t()
        context = store._context()
        if not ffi.wasmtime_instance_export_get(
            context, ctypes.byref(instance._instance), b"_start", 6, ctypes.byref(item)
        ):
            raise wasmtime.WasmtimeError("the module has no `_start` export")
        func = item.of.func
    except AttributeError:  # wasmtime-py internals moved: take the public road
        start = instance.exports(store)["_start"]
        assert isinstance(start, wasmtime.Func)
        start(store)
        return
    with enter_wasm(store) as trap:  # raises the Trap, as Func.__call__ does
        error = ffi.wasmtime_func_call(context, ctypes.byref(func), None, 0, None, 0, trap)
        if error:
            raise wasmtime.WasmtimeError._from_ptr(error)  # an ExitTrap for proc_exit


def _trap_error(error: Exception) -> _Failed:
    return _error(f"The action trapped: {describe_error(error)}")


def _error(message: str) -> _Failed:
    return _Failed(orjson.dumps({"error": message}).decode())


def _memory_size(store: wasmtime.Store, instance: wasmtime.Instance) -> int | None:
    memory = instance.exports(store).get("memory")
    return memory.data_len(store) if isinstance(memory, wasmtime.Memory) else None


def _near_limit(store: wasmtime.Store, instance: wasmtime.Instance, limit: int) -> bool:
    """Did the run end because memory.grow was refused at the limit?

    Wasmtime's C API does not say when it refuses a grow, so judge by where the memory stands. A
    C program allocating 1 MiB blocks aborts ~1.94 MiB below the limit (dlmalloc asks for more than
    it needs, measured at 24-512 MiB limits), so "near" is one eighth of the limit, at most 4 MiB.
    """
    size = _memory_size(store, instance)
    return size is not None and limit - size < max(PAGE, min(limit // 8, 4 * 1_048_576))


def _proxy_result(
    outcome: str | _Failed, out: bytes | bytearray, err: bytes | bytearray, log_limit: int
) -> ProxyResult:
    """The proxy's answer to a run that ended with ``outcome``; a bytearray ``out`` loses its result line in place."""
    if outcome == _OK:
        # Only \n ends a line: a JSON result may hold a raw U+2028, which str.splitlines would split.
        body, out = take_result(out)
        result = ProxyResult(status=200, body=body)
    elif outcome == _TIMED_OUT:
        result = ProxyResult(status=None, timed_out=True)
    elif outcome == _MEMORY:
        result = ProxyResult(status=None, memory_exhausted=True)
    else:
        assert isinstance(outcome, _Failed)
        result = ProxyResult(status=502, body=outcome.body)
    # Strings already: validating 100,000 lines again holds the GIL for ~20 ms in one call.
    result.logs = collect_logs(out, err, log_limit)
    return result
