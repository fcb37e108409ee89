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

**Parked while nothing needs it** (``parks=True``, the executor's ticker). Only a Store on one of the ticker's
Engines needs the epoch to move, and the executor creates those in pool jobs alone, each job :meth:`EpochTicker.hold`
-ing the ticker while it runs. A Python thread waking every 10 ms whatever runs cost a warm invoke 20-40 µs of
CPU and a GIL hand-off with the event loop per wake (docs/benchmarks.md, issue 15), although under load most
warm runs are inline (inline.py: an Engine and a timer of their own). So at a pass that finds no job holding
it, the ticker skips the pass and parks on a POSIX semaphore, with the GIL released. The first hold after that
restarts the wall-clock schedule from now (the epoch's relation to the wall clock is free while no deadline
counts on it) and arms a one-shot POSIX timer (SIGEV_THREAD calling ``sem_post``: C, no Python, no GIL) for one
tick later; a release that ends the last hold before then disarms it. A pooled run shorter than a tick
therefore wakes no Python thread at all, and a longer one gets its first pass on the schedule, as before.
While parked the ticker owes the wall clock nothing (``epoch_lag`` 0). Where POSIX timers are missing the
ticker never parks.
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
import weakref
from collections.abc import Callable

import wasmtime

logger = logging.getLogger(__name__)

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
    """A thread advancing the epoch of the executor's Engines every ``TICK_MS`` of the wall clock.

    With ``parks``, only while some :meth:`hold` is in progress, give or take a tick (module docstring).
    """

    def __init__(self, engine: wasmtime.Engine, *, parks: bool = False) -> None:
        self.engine = engine
        self.parks = parks
        self._lock = threading.Lock()  # the holds, the parked state and a rebased schedule change together
        self._holds = 0
        self._parked = False  # the thread waits on the semaphore, skipping passes (only with parks)
        self._wake: _Wake | None = None  # the semaphore and its timer (start, with parks)
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
            if self.parks and self._wake is None:
                try:
                    self._wake = _Wake()
                except (OSError, AttributeError) as error:
                    logger.warning("the WASM epoch ticker ticks while idle: no POSIX timer (%s)", error)
                    self.parks = False
            self._stop.clear()
            self._parked = False
            self._interval_s = TICK_MS / 1000
            self._origin, self._paid = time.monotonic(), 0
            self._thread = threading.Thread(target=self._run, name="wasm-epoch", daemon=True)
            _running.add(self)
            self._thread.start()

    def lag(self) -> int:
        """Ticks due by the wall clock that this ticker has not added yet (0 when stopped, hurried or idle)."""
        if self._thread is None or self._interval_s <= 0 or self.idle:
            return 0
        return max(0, int((time.monotonic() - self._origin) / self._interval_s) - self._paid)

    @property
    def idle(self) -> bool:
        """Parked with nothing holding it: no pass until the next hold (module docstring)."""
        return self._parked and not self._holds

    def hold(self) -> None:
        """A Store on one of the ticker's Engines may be created and run from now until :meth:`release`: tick.

        Call before the Store's deadline is computed (runner.py's ``deadline_ticks``).
        """
        with self._lock:
            self._holds += 1
            if self._holds == 1 and self._parked and self._wake is not None:
                # Nothing counted on the epoch while idle: the schedule starts again now, owing nothing.
                self._origin, self._paid = time.monotonic(), 0
                self._wake.timer.arm()

    def release(self) -> None:
        """The end of a :meth:`hold`."""
        with self._lock:
            self._holds -= 1
            if self._holds == 0 and self._parked and self._wake is not None:
                self._wake.timer.disarm()  # shorter than a tick: the thread stays parked

    def keep_ticking(self) -> None:
        """Never park from now on (e.g. Stores may be created outside any hold)."""
        if self.parks:
            with self._lock:
                self.parks = False
            if self._wake is not None:
                self._wake.post()

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
        if self._wake is not None:
            self._wake.post()  # a parked ticker too

    def stop(self) -> None:
        """Stop ticking and wait for the thread."""
        if self._thread is not None:
            _running.discard(self)
            self._stop.set()
            if self._wake is not None:
                self._wake.post()
            self._thread.join()
            self._thread = None
            if self._wake is not None:
                self._wake.close()
                self._wake = None

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
            if self.parks and self._park():
                if self._stop.is_set():
                    return
                interval, origin, due = self._interval_s, self._origin, 0  # the schedule hold() started
                continue
            now_due = int((time.monotonic() - origin) / interval)
            ticks = max(1, now_due - due)
            due += ticks
            self._pass(ticks)
            self._paid = due

    def _park(self) -> bool:
        """Park if nothing holds the ticker (skipping this pass): True once a hold, stop or hurry woke it."""
        assert self._wake is not None
        with self._lock:
            if self._holds or not self.parks or self._interval_s <= 0 or self._stop.is_set():
                return False
            self._parked = True
        while True:
            self._wake.wait()
            with self._lock:
                # A post from a timer disarmed too late (its hold already released) leaves it parked.
                if self._holds or not self.parks or self._interval_s <= 0 or self._stop.is_set():
                    if not self._holds:  # not woken by a hold, which restarted the schedule: restart it here
                        self._origin, self._paid = time.monotonic(), 0
                    self._parked = False
                    return True

    def _pass(self, ticks: int) -> None:
        for callback in self._watchers:
            callback(ticks)
        for engine in self._engines:
            for _ in range(ticks):
                engine.increment_epoch()
        self.ticks += ticks


_running: weakref.WeakSet[EpochTicker] = weakref.WeakSet()  # started and not stopped (epoch_lag)


class OneShotTimer:
    """A one-shot POSIX timer (CLOCK_MONOTONIC, SIGEV_THREAD) calling the C function at ``function`` with the
    pointer ``argument`` when it expires, ``seconds`` after :meth:`arm`.

    The C library runs the notification on a thread of its own: no Python, no GIL (the function must be C,
    taking one pointer: a ``sigval`` is a pointer-sized union, passed as a pointer is).
    """

    def __init__(self, function: int, argument: int, seconds: float) -> None:
        # PyDLL: arming and disarming keep the GIL (a CDLL call releases it, and another thread may take it).
        self._libc = ctypes.PyDLL(None, use_errno=True)
        event = _SigEvent()
        event.value = argument
        event.notify = _SIGEV_THREAD
        event.un.thread.function = function
        self._timer = ctypes.c_void_p()
        if self._libc.timer_create(_CLOCK_MONOTONIC, ctypes.byref(event), ctypes.byref(self._timer)) != 0:
            raise OSError(ctypes.get_errno(), "timer_create failed")
        self._arm = _ITimerSpec()
        self._arm.value.sec, self._arm.value.nsec = int(seconds), int(seconds % 1 * 1e9)
        self._disarm = _ITimerSpec()
        self._closed = False

    def arm(self) -> None:
        self._libc.timer_settime(self._timer, 0, ctypes.byref(self._arm), None)

    def disarm(self) -> None:
        self._libc.timer_settime(self._timer, 0, ctypes.byref(self._disarm), None)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._libc.timer_delete(self._timer)


class _Wake:
    """A POSIX semaphore a parked ticker waits on, and the timer that posts it one tick after a hold."""

    def __init__(self) -> None:
        self._pylibc = ctypes.PyDLL(None, use_errno=True)
        self._libc = ctypes.CDLL(None, use_errno=True)  # sem_wait blocks: with the GIL released
        self._sem = (ctypes.c_uint64 * 8)()  # a sem_t (32 bytes on 64-bit glibc and musl), 8-byte aligned
        if self._pylibc.sem_init(ctypes.byref(self._sem), 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "sem_init failed")
        sem_post = ctypes.cast(self._pylibc.sem_post, ctypes.c_void_p).value
        assert sem_post is not None
        self.timer = OneShotTimer(sem_post, ctypes.addressof(self._sem), TICK_MS / 1000)

    def post(self) -> None:
        self._pylibc.sem_post(ctypes.byref(self._sem))

    def wait(self) -> None:
        self._libc.sem_wait(ctypes.byref(self._sem))  # -1 on EINTR: the caller checks its state and waits again

    def close(self) -> None:
        self.timer.close()
        # A notification thread may still be about to post: the semaphore's memory outlives the ticker.
        _RETIRED.append(self._sem)


_RETIRED: list[ctypes.Array[ctypes.c_uint64]] = []  # the semaphores of stopped tickers (a few per process)

# <time.h>, <signal.h> on Linux (glibc and musl agree on these layouts).
_CLOCK_MONOTONIC = 1
_SIGEV_THREAD = 2


class _TimeSpec(ctypes.Structure):
    _fields_ = [("sec", ctypes.c_long), ("nsec", ctypes.c_long)]


class _ITimerSpec(ctypes.Structure):
    _fields_ = [("interval", _TimeSpec), ("value", _TimeSpec)]


class _SigEvThread(ctypes.Structure):
    _fields_ = [("function", ctypes.c_void_p), ("attribute", ctypes.c_void_p)]


class _SigEvUnion(ctypes.Union):
    _fields_ = [("pad", ctypes.c_int * 12), ("tid", ctypes.c_int), ("thread", _SigEvThread)]


class _SigEvent(ctypes.Structure):
    _fields_ = [("value", ctypes.c_void_p), ("signo", ctypes.c_int), ("notify", ctypes.c_int), ("un", _SigEvUnion)]
