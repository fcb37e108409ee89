"""Warm runs of tiny guests on the event loop itself: no thread hand-off, bounded by a 2 ms interrupt timer.

A run on the pool costs more than the run: the submit wakes a worker (a futex wake), the worker and the loop
hand the GIL to each other several times (the Store's set-up and tear-down are Python), the compute slot's
lock and the priority bookkeeping run on both sides, and the result wakes the loop again. For hello.wasm
(~250 µs of work) that was ~40 % more CPU per warm invoke than running it inline, and ~8 context switches
per request (docs/benchmarks.md, issue 15). So a guest may run inline when all of this holds:

- **Its module cannot block.** It imports nothing but WASI calls that never wait (``INLINE_IMPORTS``: no
  ``poll_oneoff`` sleep, no socket, no ``path_open``; no ``http.get``), and the action has no grants (no
  preopens, no network).
- **Its recent runs were short.** The last ``streak`` runs of the instance (on the pool, or inline) each
  took under ``SHORT_MS``; ``streak`` starts at ``SHORT_RUNS`` and doubles (up to ``MAX_STREAK``) each time
  an inline run of the instance overran, so input that alternates short and long runs buys one overrun per
  ever longer streak.
- **The loop is never held past the budget.** The run's Store lives in an Engine of its own (same settings,
  so the same compiled artifact maps into it), with an epoch deadline of one tick. Before the run a POSIX
  timer is armed for ``BUDGET_S``; when it expires, a C thread of the C library calls
  ``wasmtime_engine_increment_epoch`` on that Engine directly (no Python, no GIL), and the guest traps at its
  next epoch check. Only inline runs use that Engine and they are serial on the loop, so the tick interrupts
  nothing else; the executor's own Engine and every pooled run's deadline are untouched.

An inline run that reaches the budget has not failed: it is **abandoned**, not reported. Its output is
dropped (captured in memory; it had no other effect: nothing it can import reaches outside its Store), and
the caller runs the activation again from the start on the pool, as if the inline attempt never happened;
only the loop's ≤ 2 ms are lost. Its time limit, memory limit and log limit are the pooled run's.

Where POSIX timers are not available (``timer_create`` fails), nothing runs inline.
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import wasmtime
from wasmtime import _ffi as ffi

from executor_wasm.cache import CompiledModule, create_engine
from executor_wasm.grants import NO_GRANTS, Grants
from executor_wasm.runner import _TIMED_OUT, RunSpec, _execute, _proxy_result, new_store
from executor_wasm.stdio import OUTPUT_SLACK, WASI, Stdin, captured_output, define_fd_write
from executor_wasm.ticker import OneShotTimer
from pywhisk.executor import ProxyResult

logger = logging.getLogger(__name__)

BUDGET_S = 0.002  # the longest an inline run holds the loop (plus the timer thread's wake-up)
SHORT_MS = 5.0  # a run shorter than this counts towards a streak (a pooled run by its thread's CPU time, executor.py)
SHORT_RUNS = 8  # short runs in a row before the first inline run of an instance
MAX_STREAK = 1024
MODULES = 256  # inline copies of compiled modules kept (least recently used first out)
# A compiled artifact bigger than this is never loaded on the loop (its first load there would hold it too long).
MAX_ARTIFACT_BYTES = 8 * 1_048_576

# WASI calls that return without waiting: a module importing anything else never runs inline.
INLINE_IMPORTS = frozenset(
    (WASI, name)
    for name in (
        "args_get",
        "args_sizes_get",
        "environ_get",
        "environ_sizes_get",
        "clock_res_get",
        "clock_time_get",
        "fd_close",
        "fd_fdstat_get",
        "fd_fdstat_set_flags",
        "fd_filestat_get",
        "fd_prestat_get",
        "fd_prestat_dir_name",
        "fd_read",
        "fd_seek",
        "fd_tell",
        "fd_write",
        "proc_exit",
        "random_get",
        "sched_yield",
    )
)


def may_run_inline(module: wasmtime.Module, grants: Grants) -> bool:
    """Whether a run of ``module`` with ``grants`` can be bounded on the loop (module docstring)."""
    if grants != NO_GRANTS:
        return False
    return all((item.module, item.name) in INLINE_IMPORTS for item in module.imports)


@dataclass(slots=True)
class Streak:
    """An instance's record of short runs: inline once ``short`` reaches ``needed``."""

    short: int = 0
    needed: int = SHORT_RUNS

    @property
    def ready(self) -> bool:
        return self.short >= self.needed

    def ran(self, duration_ms: float | None) -> None:
        """A run (pooled or inline) that completed in ``duration_ms`` (None: not measured, not short)."""
        self.short = self.short + 1 if duration_ms is not None and duration_ms < SHORT_MS else 0

    def overran(self) -> None:
        """An inline run reached the budget: start again, and ask for a longer streak next time."""
        self.short = 0
        self.needed = min(self.needed * 2, MAX_STREAK)


class Overran(Exception):
    """An inline run used the budget's CPU time before it was abandoned: its guest is not as short as it was."""


class InterruptTimer(OneShotTimer):
    """A one-shot POSIX timer that advances ``engine``'s epoch ``BUDGET_S`` after it is armed.

    The C library's notification thread calls ``wasmtime_engine_increment_epoch`` with the engine's pointer
    (ticker.py's ``OneShotTimer``): the interrupt needs neither Python nor the GIL, which the loop's guest may
    hold in a host call.
    """

    def __init__(self, engine: wasmtime.Engine) -> None:
        self._engine = engine  # kept alive as long as the timer may call into it
        increment = ctypes.cast(ffi.dll.wasmtime_engine_increment_epoch, ctypes.c_void_p).value
        pointer = ctypes.cast(engine.ptr(), ctypes.c_void_p).value
        assert increment is not None and pointer is not None
        super().__init__(increment, pointer, BUDGET_S)


class InlineRunner:
    """Runs eligible warm guests on the calling thread (the loop), each bounded by ``BUDGET_S``.

    ``artifact_path(digest)`` is where the executor's module cache keeps a module's compiled artifact; the
    inline Engine maps the same file.
    """

    def __init__(self) -> None:
        self.engine = create_engine()
        self.linker = wasmtime.Linker(self.engine)
        self.linker.define_wasi()
        define_fd_write(self.linker)  # stdout and stderr into the run's buffers, as on the pool
        self.timer = InterruptTimer(self.engine)
        self._modules: OrderedDict[str, CompiledModule] = OrderedDict()
        self._lock = threading.Lock()  # the runner is the loop's, but close() may come from elsewhere
        self.runs = 0
        """Inline runs that completed (so the mechanism is observable)."""
        self.overruns = 0
        """Inline runs abandoned at the budget."""

    @staticmethod
    def create() -> InlineRunner | None:
        """An inline runner, or None where this host has no POSIX timers (nothing then runs inline)."""
        try:
            return InlineRunner()
        except (OSError, AttributeError) as error:
            logger.warning("warm WASM runs stay on the thread pool: no interrupt timer (%s)", error)
            return None

    def close(self) -> None:
        self.timer.close()
        with self._lock:
            self._modules.clear()

    def module(self, compiled: CompiledModule, artifact: Path) -> CompiledModule | None:
        """``compiled`` loaded into the inline Engine (mapped from ``artifact``), None if it cannot be."""
        with self._lock:
            found = self._modules.get(compiled.digest)
            if found is not None:
                self._modules.move_to_end(compiled.digest)
                return found
        try:
            if artifact.stat().st_size > MAX_ARTIFACT_BYTES:
                logger.info("module %s does not run inline: its compiled artifact is too big", compiled.digest[:12])
                return None
            module = wasmtime.Module.deserialize_file(self.engine, str(artifact))
            inline = CompiledModule(compiled.digest, module, self.linker.instantiate_pre(module))
        except (wasmtime.WasmtimeError, OSError) as error:
            logger.info("module %s does not run inline: %s", compiled.digest[:12], error)
            return None
        with self._lock:
            self._modules[compiled.digest] = inline
            while len(self._modules) > MODULES:
                self._modules.popitem(last=False)
        return inline

    def run(self, compiled: CompiledModule, spec: RunSpec) -> ProxyResult | None:
        """The result of running ``compiled`` here, or None when it reached the budget (run it on the pool).

        Raises ``Overran`` instead of returning None when the guest itself used the budget's CPU time.
        """
        started = time.perf_counter()
        with captured_output(spec.log_limit_bytes + OUTPUT_SLACK) as (stdout, stderr), Stdin() as stdin:
            # Epoch deadline 1: the timer's tick, and nothing else, advances this Engine's epoch.
            store, budget = new_store(self.engine, spec, stdin, 1)
            cpu = time.thread_time()
            self.timer.arm()
            try:
                outcome = _execute(store, compiled, budget.memory_bytes)
            finally:
                self.timer.disarm()
            store.close()
            if outcome == _TIMED_OUT:  # the budget, never the action's own limit (far longer): abandon it
                self.overruns += 1
                # On a busy machine the loop's thread may lose the core mid-run: that overran the clock, not
                # the guest, which stays eligible. A guest that used the budget's CPU waits a longer streak.
                if time.thread_time() - cpu >= BUDGET_S / 2:
                    raise Overran
                return None
            out, err = bytes(stdout), bytes(stderr)
        self.runs += 1
        result = _proxy_result(outcome, out, err, spec.log_limit_bytes)
        result.duration_ms = (time.perf_counter() - started) * 1000
        return result
