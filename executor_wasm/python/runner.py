"""One call into a fresh instance of the Python runner: limits, stdio capture, the proxy's answer.

Each ``prepare`` (the action's ``/init``) and each ``run`` calls into an instance of the runner component
that nothing ran in before, in its own Store, exactly as runner.py does for ``wasm:wasi`` modules: the
same epoch deadline (the executor's ticker), the same memory limit (``Store.set_limits``), the same
size-capped memfds for stdout and stderr, and no preopened directories or sockets. Nothing survives
between activations.

What a run costs beyond the action's own work is kept off its path (docs/python-wasm.md, "Pooling
allocator"): instances come from Wasmtime's pooling allocator when there is one (pooling.py; on demand
when the pool is full or refused), one instance per shape of limits is instantiated ahead and kept
ready, and a finished run's Store is closed (its slot reset) by the ``Runner``'s reclaimer thread after
the answer, which then instantiates the next ready instance.

Everything here blocks and must run on a worker thread; Wasmtime releases the GIL while wasm runs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import orjson
import wasmtime
import wasmtime.component

from executor_wasm.cache import describe_error
from executor_wasm.limits import PYTHON_RUNNER, GuestBudget, is_limit_error
from executor_wasm.python import calls
from executor_wasm.python.pooling import is_pool_exhausted
from executor_wasm.runner import deadline_ticks
from executor_wasm.stdio import OUTPUT_SLACK, CappedOutput, collect_logs
from pywhisk.executor import ProxyResult

# The guest's statuses (guest/runner.wit): what the Docker action proxy would have answered, and 0
# when the action ran out of memory (a MemoryError that reached the runner).
OK = 200
MEMORY_EXHAUSTED = 0
# Ready instances: one per shape of limits (memory, log cap), for the few most recently used shapes.
READY_SHAPES = 4
# Stores waiting for the reclaimer beyond this are closed by the run itself: a bound on what a burst
# can leave unreleased (pool slots, two memfds each), at the price of the reset on the run's own path.
MAX_UNRECLAIMED = 8
# The reclaimer's niceness (0 is the process's own, 19 the lowest priority).
RECLAIMER_NICE = 10
# A ready instance's deadline while nobody calls it (a start function that loops); the call sets its own.
INSTANTIATE_TIMEOUT_MS = 10_000
# How many strings each export takes (guest/runner.wit): what calls.py checks before calling it directly.
ARITY = {"prepare": 2, "run": 4}

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LoadedRunner:
    """The runner component compiled for one Engine and the linker (WASI preview 2) that instantiates it."""

    engine: wasmtime.Engine
    component: wasmtime.component.Component
    linker: wasmtime.component.Linker
    # Per export: can calls.py call it (checked at its first call, as the signature is the component's)?
    direct: dict[str, bool] = field(default_factory=dict)

    def callable_directly(self, export: str, function: wasmtime.component.Func, store: wasmtime.Store) -> bool:
        """Has ``export`` the signature calls.py lowers without wasmtime-py's per-value conversions?"""
        direct = self.direct.get(export)
        if direct is None:
            direct = self.direct[export] = calls.supports(function, store, ARITY.get(export, -1))
            if not direct:
                logger.warning("the Python runner's %r export is called through wasmtime-py (slower)", export)
        return direct


@dataclass(frozen=True, slots=True)
class CallLimits:
    """The action's limits for one call."""

    memory_bytes: int
    timeout_ms: int
    log_limit_bytes: int


class Runner:
    """The Python runner, loaded on demand and (when there is a pool) pooled; hands out fresh instances.

    ``pooled`` is the same component loaded into the pooling Engine (pooling.py); without it every
    instance is allocated on demand. ``ready=False`` instantiates each instance on the run's own path
    and closes it there too (the behaviour before issue 17, for measurements). ``close`` stops the
    reclaimer and releases the ready instances; call it when no run is in progress.
    """

    def __init__(self, on_demand: LoadedRunner, pooled: LoadedRunner | None = None, *, ready: bool = True) -> None:
        self.on_demand = on_demand
        self.pooled = pooled
        self.ready = ready
        self.pool_exhausted = 0  # runs instantiated on demand because the pool was full
        self._ready: OrderedDict[tuple[int, int], _Fresh] = OrderedDict()
        self._lock = threading.Lock()
        self._chores: queue.SimpleQueue[_Fresh | tuple[int, int] | None] = queue.SimpleQueue()
        self._unreclaimed = 0
        self._reclaimer: threading.Thread | None = None
        self._closed = False

    @property
    def engine(self) -> wasmtime.Engine:
        """The on-demand Engine (the executor's own)."""
        return self.on_demand.engine

    @property
    def component(self) -> wasmtime.component.Component:
        """The component as the on-demand Engine loaded it (the JavaScript runner shares this class)."""
        return self.on_demand.component

    @property
    def linker(self) -> wasmtime.component.Linker:
        """The on-demand Engine's linker."""
        return self.on_demand.linker

    def take(self, limits: CallLimits) -> _Fresh:
        """A fresh instance for ``limits``: the ready one if any (another is made ahead for the next run)."""
        shape = (limits.memory_bytes, limits.log_limit_bytes + OUTPUT_SLACK)
        fresh = None
        if self.ready:
            with self._lock:
                fresh = self._ready.pop(shape, None)
            self._chore(shape)
        return fresh if fresh is not None else self._instantiate(shape, limits.timeout_ms)

    def give_back(self, fresh: _Fresh) -> None:
        """Release a used instance: its Store is closed (its pool slot reset) by the reclaimer, after the answer."""
        if not self.ready or self._unreclaimed >= MAX_UNRECLAIMED or not self._chore(fresh):
            fresh.release()

    def close(self) -> None:
        """Stop the reclaimer (after its chores) and release the ready instances."""
        with self._lock:
            self._closed = True
            reclaimer, self._reclaimer = self._reclaimer, None
        if reclaimer is not None:
            self._chores.put(None)
            reclaimer.join()
        with self._lock:
            ready = list(self._ready.values())
            self._ready.clear()
        for fresh in ready:
            fresh.release()

    def _chore(self, chore: _Fresh | tuple[int, int]) -> bool:
        with self._lock:
            if self._closed:
                return False
            if self._reclaimer is None:
                self._reclaimer = threading.Thread(target=self._reclaim, name="wasm-python-reclaimer", daemon=True)
                self._reclaimer.start()
            if isinstance(chore, _Fresh):
                self._unreclaimed += 1
        self._chores.put(chore)
        return True

    def _reclaim(self) -> None:
        # Niced (Linux sets it per thread): on a busy machine its ~1.3 ms per run must not take the core the
        # event loop needs to deliver the answer it just made room for.
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), RECLAIMER_NICE)
        while (chore := self._chores.get()) is not None:
            try:
                if isinstance(chore, _Fresh):
                    chore.release()
                    with self._lock:
                        self._unreclaimed -= 1
                else:
                    self._make_ready(chore)
            except Exception:  # the reclaimer must outlive one bad chore: its runs would keep their slots
                logger.exception("the Python runner's reclaimer failed a chore")

    def _make_ready(self, shape: tuple[int, int]) -> None:
        with self._lock:
            if shape in self._ready or self._closed:
                return
        fresh = self._instantiate(shape, deadline_ms=INSTANTIATE_TIMEOUT_MS)
        if not isinstance(fresh.instance, wasmtime.component.Instance):
            fresh.release()  # the run will meet the same failure on its own path, and report it
            return
        fresh.function("run")  # looked up here rather than on the run's path
        with self._lock:
            if shape in self._ready or self._closed:
                evicted = [fresh]
            else:
                self._ready[shape] = fresh
                evicted = []
                while len(self._ready) > READY_SHAPES:
                    evicted.append(self._ready.popitem(last=False)[1])
        for old in evicted:
            old.release()

    def _instantiate(self, shape: tuple[int, int], deadline_ms: int) -> _Fresh:
        if self.pooled is not None:
            fresh = _Fresh.create(self.pooled, shape, deadline_ms)
            if not is_pool_exhausted_outcome(fresh.instance):
                return fresh
            fresh.release()
            with self._lock:
                self.pool_exhausted += 1
                first = self.pool_exhausted == 1
            if first:
                logger.warning(
                    "the Python runner's instance pool is full: instantiating on demand"
                    " (PYWHISK_WASM_POOLING_INSTANCES; logged once)"
                )
        return _Fresh.create(self.on_demand, shape, deadline_ms)


def is_pool_exhausted_outcome(instance: object) -> bool:
    """Is this failed instantiation the pool being full (rather than the action's limits)?"""
    return isinstance(instance, wasmtime.WasmtimeError) and is_pool_exhausted(instance)


class _Fresh:
    """One instance of the runner that nothing has run in, with its Store and its stdout and stderr memfds.

    ``instance`` is the instantiation's failure when it failed (a limit, or a trap in a start function).
    """

    __slots__ = ("functions", "instance", "loaded", "shape", "stderr", "stdout", "store")

    def __init__(
        self,
        loaded: LoadedRunner,
        shape: tuple[int, int],
        store: wasmtime.Store,
        instance: wasmtime.component.Instance | wasmtime.WasmtimeError | wasmtime.Trap,
        stdout: CappedOutput,
        stderr: CappedOutput,
    ) -> None:
        self.loaded = loaded
        self.shape = shape
        self.store = store
        self.instance = instance
        self.stdout = stdout
        self.stderr = stderr
        self.functions: dict[str, wasmtime.component.Func | None] = {}

    def function(self, export: str) -> wasmtime.component.Func | None:
        """The export (looked up once: a ready instance's is looked up by the reclaimer, off the run's path)."""
        if export not in self.functions:
            instance = self.instance
            found = instance.get_func(self.store, export) if isinstance(instance, wasmtime.component.Instance) else None
            self.functions[export] = found
        return self.functions[export]

    @classmethod
    def create(cls, runner: LoadedRunner, shape: tuple[int, int], deadline_ms: int) -> _Fresh:
        memory_bytes, cap = shape
        stdout, stderr = CappedOutput("stdout", cap), CappedOutput("stderr", cap)
        store = wasmtime.Store(runner.engine)
        GuestBudget.of(memory_bytes, PYTHON_RUNNER).apply(store)
        # Start functions run within this; a ready instance's call then sets its run's (epochs are relative).
        store.set_epoch_deadline(deadline_ticks(deadline_ms))
        wasi = wasmtime.WasiConfig()  # no preopens, no environment, no network
        stdout.attach(wasi)
        stderr.attach(wasi)
        store.set_wasi(wasi)
        instance: wasmtime.component.Instance | wasmtime.WasmtimeError | wasmtime.Trap
        try:
            instance = runner.linker.instantiate(store, runner.component)
        except (wasmtime.WasmtimeError, wasmtime.Trap) as error:
            instance = error
        return cls(runner, shape, store, instance, stdout, stderr)

    def release(self) -> None:
        """Close the Store (a pooled slot is reset here: ~1 ms) and the memfds."""
        self.store.close()
        for output in (self.stdout, self.stderr):
            with contextlib.suppress(OSError):
                output.__exit__()


def create_runner(
    engine: wasmtime.Engine,
    component: wasmtime.component.Component,
    pooled: tuple[wasmtime.Engine, wasmtime.component.Component] | None = None,
    *,
    ready: bool = True,
) -> Runner:
    """A Runner with its own linkers (WASI preview 2 only: no other imports exist)."""
    return Runner(_loaded(engine, component), _loaded(*pooled) if pooled else None, ready=ready)


def _loaded(engine: wasmtime.Engine, component: wasmtime.component.Component) -> LoadedRunner:
    linker = wasmtime.component.Linker(engine)
    # Not define_unknown_imports_as_traps: it shadows the WASI imports (measurements.md).
    linker.add_wasip2()
    return LoadedRunner(engine, component, linker)


def prepare(runner: Runner, source: str, main: str, limits: CallLimits) -> tuple[ProxyResult, str | None]:
    """Compile and import the action in a fresh instance: ``/init``'s answer and the code object (marshalled,
    in base64: as the guest takes it back in ``run``)."""
    result, payload = _call(runner, "prepare", (source, main), limits)
    if result.status != OK:
        return result, None
    result.body = '{"ok":true}'
    return result, payload


def run(runner: Runner, code: str, main: str, params: bytes, env: dict[str, str], limits: CallLimits) -> ProxyResult:
    """Run the prepared action once, in a fresh instance: ``/run``'s answer."""
    # The environment as one JSON string: a list of pairs cost two strings and a tuple to lower per variable.
    result, _ = _call(runner, "run", (code, main, params.decode(), orjson.dumps(env).decode()), limits)
    return result


def _call(runner: Runner, export: str, args: tuple[str, ...], limits: CallLimits) -> tuple[ProxyResult, str]:
    started = time.perf_counter()
    fresh = runner.take(limits)
    try:
        fresh.store.set_epoch_deadline(deadline_ticks(limits.timeout_ms))
        outcome = _invoke(fresh, export, args)
        # The guest's writes are synchronous (WASI files): the memfds hold everything before the Store closes.
        logs = collect_logs(fresh.stdout.read(), fresh.stderr.read(), limits.log_limit_bytes)
    finally:
        runner.give_back(fresh)
    result = _answer(outcome, logs)
    result.duration_ms = (time.perf_counter() - started) * 1000
    return result, outcome[1] if isinstance(outcome, tuple) and outcome[0] == OK else ""


_TIMED_OUT = "timed out"
_EXIT_STATUS = re.compile(r"^Exited with i32 exit status (\d+)$")


def _invoke(
    fresh: _Fresh, export: str, args: tuple[str, ...]
) -> tuple[int, str] | str | wasmtime.WasmtimeError | wasmtime.Trap:
    store = fresh.store
    try:
        instance = fresh.instance
        if isinstance(instance, (wasmtime.WasmtimeError, wasmtime.Trap)):
            raise instance
        function = fresh.function(export)
        if function is None:
            return wasmtime.WasmtimeError(f"the Python runner has no `{export}` export")
        if fresh.loaded.callable_directly(export, function, store):
            return calls.call(function, store, args)
        status, payload = function(store, *args)
        return int(status), str(payload)
    except wasmtime.Trap as trap:
        if trap.trap_code == wasmtime.TrapCode.INTERRUPT:
            return _TIMED_OUT
        return trap
    except wasmtime.WasmtimeError as error:
        # Component calls report an epoch interruption as an error with the trap in its message.
        if "interrupt" in str(error):
            return _TIMED_OUT
        if is_limit_error(error):  # the limit cannot hold the runner's memories and tables
            return MEMORY_EXHAUSTED, ""
        return error


def _answer(outcome: tuple[int, str] | str | wasmtime.WasmtimeError | wasmtime.Trap, logs: list[str]) -> ProxyResult:
    result = _result(outcome)
    # Strings already (collect_logs): validating 100,000 lines again holds the GIL for ~20 ms in one call.
    result.logs = logs
    return result


def _result(outcome: tuple[int, str] | str | wasmtime.WasmtimeError | wasmtime.Trap) -> ProxyResult:
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
    return ProxyResult(status=status, body=payload)
