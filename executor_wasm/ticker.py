"""The epoch ticker: the clock of every WASM run's deadline, on the wall clock's schedule.

A run's time limit is an epoch deadline (runner.py's ``deadline_ticks``): the guest traps once its Engine's
epoch has been advanced that many times. The ticker used to sleep ``TICK_MS`` between passes, so every pass
came late by what the pass itself cost plus the wait for the GIL and a core, and the epoch fell behind the
wall clock: beside 7 CPU-bound guests on 2 vCPUs, 3 s limits ran 3.26-3.33 s (4-25 % over, docs/benchmarks.md
issue 12). Here each pass is due at ``start + n * TICK_MS`` and advances the epoch by every tick due since the
last one, so a late pass catches up instead of pushing every later deadline back: a limit ends within one
pass's lateness of the wall clock, whatever the lag before it.

The watchers (priority.py's renicing) run *before* the pass advances the epoch, told how many ticks it is
about to add: a guest whose deadline this pass reaches goes back to nice 0 before it traps, so it returns into
Python (which needs the GIL) at nice 0 without having spent a tick beforehand at nice 0 beside the event loop.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable

import wasmtime

TICK_MS = 10  # runner.TICK_MS, the period its deadline_ticks counts in (tests/unit/test_wasm_ticker.py checks)


def epoch_lag() -> int:
    """The ticks the running tickers owe the wall clock now (the most of any; 0 when none is behind).

    A Store's epoch deadline counts from the epoch as it is when it is set; while a ticker is behind, that epoch
    is behind the wall clock, and the catch-up would interrupt the run that much early. runner.py's
    ``deadline_ticks`` adds this, so a catch-up never cuts a time limit short (with several tickers in one
    process, e.g. tests, the most behind lengthens the others' deadlines, never shortens them).
    """
    return max((ticker.lag() for ticker in list(_running)), default=0)


class EpochTicker:
    """A thread advancing the epoch of the executor's Engines every ``TICK_MS`` of the wall clock."""

    def __init__(self, engine: wasmtime.Engine) -> None:
        self.engine = engine
        self._engines = [engine]  # and any other Engine of the executor's (add)
        self._watchers: list[Callable[[int], None]] = []  # called every pass, before the epoch moves (watch)
        self._stop = threading.Event()
        self._interval_s = TICK_MS / 1000
        self._thread: threading.Thread | None = None
        self.ticks = 0  # epoch ticks added so far (read by tests and measurements)
        self._origin = 0.0  # when the wall-clock schedule started (start)
        self._paid = 0  # ticks added on that schedule so far

    def start(self) -> None:
        """Start ticking (idempotent)."""
        if self._thread is None:
            self._stop.clear()
            self._interval_s = TICK_MS / 1000
            self._origin, self._paid = time.monotonic(), 0
            self._thread = threading.Thread(target=self._run, name="wasm-epoch", daemon=True)
            _running.add(self)
            self._thread.start()

    def lag(self) -> int:
        """Ticks due by the wall clock that this ticker has not added yet (0 when stopped or hurried)."""
        if self._thread is None or self._interval_s <= 0:
            return 0
        return max(0, int((time.monotonic() - self._origin) / self._interval_s) - self._paid)

    def add(self, engine: wasmtime.Engine) -> None:
        """Advance ``engine``'s epoch too (e.g. the Python runner's pooling Engine, python/pooling.py)."""
        if engine not in self._engines:
            self._engines = [*self._engines, engine]  # replaced, not mutated: the thread iterates it unlocked

    def watch(self, callback: Callable[[int], None]) -> None:
        """Call ``callback(ticks)`` on the ticker's thread every pass, just before it adds ``ticks`` to the epoch.

        It must be short and must not raise: it delays every run's deadline by its duration.
        """
        self._watchers = [*self._watchers, callback]

    def hurry(self) -> None:
        """Tick as fast as possible, so every running guest reaches its deadline (for shutdown).

        Deadlines are tick counts: at ~1 µs per tick a 5-minute timeout (30,001 ticks) passes in ~30 ms.
        """
        self._interval_s = 0.0

    def stop(self) -> None:
        """Stop ticking and wait for the thread."""
        if self._thread is not None:
            _running.discard(self)
            self._stop.set()
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        interval, origin = self._interval_s, self._origin
        due = 0  # ticks due since origin, by the wall clock, and added
        while True:
            if self._interval_s != interval:  # hurried: one tick a pass, no waiting
                interval = self._interval_s
            if interval <= 0:
                if self._stop.is_set():
                    return
                self._pass(1)
                continue
            if self._stop.wait(max(0.0, origin + (due + 1) * interval - time.monotonic())):
                return
            now_due = int((time.monotonic() - origin) / interval)
            ticks = max(1, now_due - due)
            due += ticks
            self._pass(ticks)
            self._paid = due

    def _pass(self, ticks: int) -> None:
        for callback in self._watchers:
            callback(ticks)
        for engine in self._engines:
            for _ in range(ticks):
                engine.increment_epoch()
        self.ticks += ticks


_running: weakref.WeakSet[EpochTicker] = weakref.WeakSet()  # started and not stopped (epoch_lag)
