"""CPU priority for long-running guests: decay-usage scheduling beneath the compute slots.

Slots (slots.py) decide which guests execute, not how the kernel shares the cores. With equal nice values the
kernel's fair scheduler gives every runnable thread an equal share, so 7 CPU-bound guests on 2 vCPUs take ~7/9
of the machine from the event loop (API, bus, invoker: one thread in standalone) and from another namespace's
hello guest, which then waits behind them in every time slice (docs/benchmarks.md, "Noisy neighbour").

Classic Unix answered this with decay-usage scheduling: a process that has used the CPU for a while loses
priority, so short interactive work preempts it. Here: a guest runs at nice 0 for its first ``quantum`` of CPU
time -- a hello uses well under 1 ms and never leaves it -- and the epoch ticker (ticker.py), which wakes every
tick anyway, renices the thread of a guest that has used more to ``nice`` (19 by default: weight 15 against
1024 at nice 0, so a thread at nice 0 that is ready to run gets ~98 % of a core it shares with one such guest,
and ~90 % against seven). Linux nice is per thread (``setpriority(PRIO_PROCESS, tid)``); raising it needs no
privilege. Worked example: 7 ``loop`` guests of namespace A and the event loop on 2 vCPUs; 10-20 ms after each
loop starts its thread is at nice 19, and from then on a request arriving on the event loop or a hello guest of
B runs as soon as it is runnable, the loops taking what is left.

Usage is also judged by namespace (decay usage per namespace, as fair-share schedulers do): once a namespace's
guest has been reniced, the namespace is *hot* for ``HOT_S`` and its next runs are reniced at the ticker's first
pass, without a quantum of their own. Otherwise each wave of a namespace's CPU-bound guests (they start
together as the previous wave reaches its time limit) would run at nice 0 until each had used its quantum.

Usage is the CPU time the run's thread has consumed (its ``pthread_getcpuclockid`` clock), not the time since
it started: a hello that waits for a core on a loaded machine is not reniced for waiting, and a guest asleep
in a WASI sleep uses none, so sleeping between bursts neither resets its usage nor escapes it. When the run
ends its thread goes back to nice 0 for the next run. Lowering nice needs ``CAP_SYS_NICE`` or
``RLIMIT_NICE``; where the kernel refuses, the thread is *retired* after its run instead
(:class:`RetiringThreadPool`) and the pool starts a fresh one, which inherits the nice of the thread that
creates it: the event loop's 0.

Nice weighs threads against the others of their scheduling group: with autogroups (a session each) or a
container's cgroup, that is this process. Other processes still get their group's share of the cores, and
the loops' CPU time still counts against this process's group on a busy machine.

:func:`nice_for` is the policy alone; :class:`GuestPriority` keeps the running guests and applies it (the
thread CPU clocks and ``setpriority`` are injectable, for the unit tests).
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import thread as futures_thread
from dataclasses import dataclass
from queue import Empty, SimpleQueue
from typing import Any, cast

from executor_wasm.ticker import epoch_lag

logger = logging.getLogger(__name__)

SetPriority = Callable[[int, int, int], None]
# How many epoch ticks before its time limit a reniced guest's thread goes back to nice 0. The ticker (ticker.py)
# calls :meth:`GuestPriority.tick` before it advances the epoch, so 0 is the pass that interrupts the guest, just
# before its epoch moves: the guest traps and returns into Python (which needs the GIL) at nice 0, and a wave of
# 7 loops reaching their limits together no longer spends a whole tick at nice 0 beside the event loop first.
# Counted in ticks, not seconds: a wall-clock wind-down left every loop of a wave at nice 0 for as long as the
# epoch lagged (150-200 ms over a 3 s limit beside 7 loops on 2 vCPUs, docs/benchmarks.md, issue 12).
WIND_DOWN_TICKS = 0
# How long a namespace stays *hot* after one of its guests was reniced: the namespace's next runs are reniced at
# the ticker's first pass instead of after a CPU quantum of their own (decay usage by namespace, fair-share
# scheduling's idea). Without it each wave of a namespace's CPU-bound guests (7 start together as the previous 7
# reach their limits) ran at nice 0 until each had used 10 ms of CPU -- ~40 ms of wall time for 7 threads on
# 2 vCPUs, with the event loop getting ~2/9 of the cores meanwhile (docs/benchmarks.md, issue 12).
HOT_S = 1.0
TICK_S = 0.010  # the epoch ticker's period (runner.TICK_MS; runner.py imports this module, not the reverse)


def own_cpu_clock() -> int:
    """The calling thread's CPU-time clock, readable from any thread of the process."""
    return time.pthread_getcpuclockid(threading.get_ident())


def nice_for(executed_s: float, quantum_s: float, nice: int) -> int:
    """The nice value of a guest's thread once it has executed ``executed_s`` seconds of its run."""
    return nice if executed_s > quantum_s else 0


@dataclass(slots=True)
class _Run:
    tid: int
    namespace: str
    clock: int  # the thread's CPU-time clock
    cpu_at_begin: float
    nice: int = 0
    quantum_s: float = 0.0  # CPU time at nice 0 before it is reniced: 0 for a hot namespace's run
    deadline_tick: int | None = None  # the ticker's pass whose epoch interrupts it (its time limit), if known
    stopped: bool = False  # the guest has left wasm: the rest of the run is host work, at nice 0


class _Local(threading.local):
    retire: bool = False


class _Current(threading.local):
    priority: GuestPriority | None = None


_current = _Current()


def guest_deadline(at: float) -> None:
    """The calling thread's guest will be interrupted at ``at`` (``time.monotonic()``): its time limit.

    Its thread goes back to nice 0 shortly before (:data:`WIND_DOWN_TICKS`), from the ticker: a guest interrupted
    at its limit returns into Python (the trap, its message) holding the GIL before it can call
    :func:`guest_stopped`, and at nice 19 that would stall the process's nice-0 threads behind it.
    """
    priority = _current.priority
    if priority is not None:
        priority.set_deadline(at)


def guest_stopped() -> None:
    """The calling thread's guest has stopped executing; what is left of its run is the host's work.

    Its thread goes back to nice 0 now, not when the run gives its slot back: that work holds the GIL and
    Wasmtime's locks, and at nice 19 it would make every thread at nice 0 wait behind it (priority
    inversion: measured as hello runs of 160-290 ms beside 7 reniced loops ending their runs).
    """
    priority = _current.priority
    if priority is not None:
        priority.stop()


class GuestPriority:
    """The guests executing now and their threads' nice values (module docstring).

    The worker thread of a run calls :meth:`begin` when it gets its compute slot and :meth:`end` when the
    run gives it back; the ticker calls :meth:`tick`. Every change of a thread's nice happens under one
    lock, so a tick can never renice a thread whose run has just ended.
    """

    def __init__(
        self,
        quantum_s: float,
        nice: int = 19,
        *,
        cpu_clock: Callable[[], int] = own_cpu_clock,
        read_clock: Callable[[int], float] = time.clock_gettime,
        setpriority: SetPriority = os.setpriority,
        clock: Callable[[], float] = time.monotonic,
        tick_s: float = TICK_S,
    ) -> None:
        if not 0 < nice <= 19:
            raise ValueError("the nice value of long-running guests must be 1-19")
        self.quantum_s, self.nice = quantum_s, nice
        self._cpu_clock, self._read_clock, self._setpriority = cpu_clock, read_clock, setpriority
        self._clock, self._tick_s = clock, tick_s
        # Passes of the ticker so far: the epoch clock every run's deadline counts in (only the ticker writes it).
        self.ticks = 0
        self._lock = threading.Lock()
        self._runs: dict[int, _Run] = {}
        self._hot: dict[str, float] = {}  # namespace -> until when its runs skip the quantum (HOT_S)
        self._local = _Local()
        self.reniced = 0  # runs whose thread was reniced (counters: for tests and measurements)
        self.retired = 0  # threads left niced because the kernel refused to lower them again

    def begin(self, namespace: str) -> None:
        """The calling thread's guest starts executing (it holds a compute slot)."""
        tid, clock = threading.get_native_id(), self._cpu_clock()
        run = _Run(tid, namespace, clock, self._read_clock(clock), quantum_s=self.quantum_s)
        with self._lock:
            hot_until = self._hot.get(namespace)
            if hot_until is not None:
                if hot_until > self._clock():
                    # Reniced at the ticker's next pass, from its thread: by then the guest executes wasm without
                    # the GIL. Renicing here, on the run's own thread, would leave it holding the GIL at nice 19
                    # through the Store's setup, beside the namespace's other CPU-bound guests.
                    run.quantum_s = 0.0
                else:
                    del self._hot[namespace]
            self._runs[tid] = run
        _current.priority = self

    def set_deadline(self, at: float, tick: int | None = None) -> None:
        """The calling thread's guest is interrupted at ``at`` (:func:`guest_deadline`), or at the ticker's pass
        ``tick`` when known (:meth:`deadline_tick` of the same run before a sleep).

        ``at`` becomes a tick as runner.py's ``deadline_ticks`` makes the Store's epoch deadline: the ticks
        left, rounded up, plus one.
        """
        if tick is None:
            # epoch_lag(): as runner.py's deadline_ticks counts it, from the epoch the ticker owes the wall clock.
            tick = self.ticks + epoch_lag() + math.ceil(max(0.0, at - self._clock()) / self._tick_s) + 1
        with self._lock:
            run = self._runs.get(threading.get_native_id())
            if run is not None:
                run.deadline_tick = tick

    def deadline_tick(self) -> int | None:
        """The calling thread's run's deadline as a ticker pass (to carry it over a sleep), if known."""
        with self._lock:
            run = self._runs.get(threading.get_native_id())
            return None if run is None else run.deadline_tick

    def stop(self) -> None:
        """The calling thread's guest has stopped executing (:func:`guest_stopped`): back to nice 0 now."""
        with self._lock:
            run = self._runs.get(threading.get_native_id())
            if run is not None:
                run.stopped = True
                self._restore(run)

    def end(self) -> None:
        """The calling thread's run is over: back to nice 0, or marked for retirement if that is refused."""
        _current.priority = None
        with self._lock:
            run = self._runs.pop(threading.get_native_id(), None)
            if run is not None and not run.stopped:
                self._restore(run)

    def tick(self, passes: int = 1) -> None:
        """Renice the threads of guests that have executed longer than their quantum, and wind down those whose
        limit this pass reaches (from the epoch ticker, once per pass, *before* it adds ``passes`` ticks to the
        epoch: ticker.py)."""
        ticks = self.ticks + passes
        if self._runs:
            with self._lock:
                self._pass(ticks)
        self.ticks = ticks

    def _pass(self, ticks: int) -> None:
        hot: list[str] = []  # namespaces with a reniced guest executing (or reaching its limit) now
        for run in self._runs.values():
            if run.stopped:
                continue
            if run.deadline_tick is not None and ticks >= run.deadline_tick - WIND_DOWN_TICKS:
                if run.nice:
                    hot.append(run.namespace)
                self._wind_down(run)
                continue
            if run.nice < self.nice:
                try:
                    executed = self._read_clock(run.clock) - run.cpu_at_begin
                except OSError:  # the thread is gone: its run ends anyway
                    continue
                wanted = nice_for(executed, run.quantum_s, self.nice)
                if wanted > run.nice:
                    self._renice(run, wanted)
            if run.nice:
                hot.append(run.namespace)
        if hot:
            now = self._clock()
            if len(self._hot) > 1024:  # namespaces that cooled down and started nothing since: forget them
                self._hot = {namespace: until for namespace, until in self._hot.items() if until > now}
            for namespace in hot:
                self._hot[namespace] = now + HOT_S

    def must_retire(self) -> bool:
        """Whether the calling thread was left niced by its last run and must not take another."""
        return self._local.retire

    def executing(self) -> dict[int, int]:
        """The nice value of each thread whose guest runs now, by native thread id."""
        with self._lock:
            return {tid: run.nice for tid, run in self._runs.items()}

    def _restore(self, run: _Run) -> None:
        """Back to nice 0, on the run's own thread; if the kernel refuses, mark the thread for retirement."""
        if run.nice == 0:
            return
        try:
            self._setpriority(os.PRIO_PROCESS, run.tid, 0)
        except PermissionError:
            # No CAP_SYS_NICE / RLIMIT_NICE: this thread stays niced; the pool replaces it (module docstring).
            self._local.retire = True
            self.retired += 1
            return
        run.nice = 0

    def _wind_down(self, run: _Run) -> None:
        """From the ticker, just before ``run``'s time limit: nice 0, and no renicing for the rest of it."""
        run.stopped = True
        if run.nice == 0:
            return
        try:
            self._setpriority(os.PRIO_PROCESS, run.tid, 0)
        except OSError:  # refused (no CAP_SYS_NICE) or gone: end() retires the thread as usual
            run.stopped = False
            run.deadline_tick = None
            return
        run.nice = 0

    def _renice(self, run: _Run, nice: int) -> None:
        try:
            self._setpriority(os.PRIO_PROCESS, run.tid, nice)
        except OSError as error:  # the thread is gone (ESRCH): its run ends anyway
            logger.debug("could not renice thread %d of namespace %r: %s", run.tid, run.namespace, error)
            return
        if run.nice == 0:
            self.reniced += 1
        run.nice = nice


class RetiringThreadPool(ThreadPoolExecutor):
    """A ``ThreadPoolExecutor`` whose worker threads can retire after a job (``retire()`` true on that thread),
    and whose threads are started by a spawner thread of its own, never by the submitting thread.

    A retired thread leaves the pool; a later ``submit`` asks the spawner for a new one, as the pool grows anyway.
    The spawner runs at nice 0 and is never reniced, so every thread it starts begins at nice 0 (Linux: a new
    thread inherits its creator's nice value). Why not start them in ``submit``, as the standard pool does:
    ``Thread.start`` waits until the new thread has run its first Python, which needs the GIL; under load that is
    5-50 ms in which the event loop (the submitter) answered nothing: 23 and 53 ms in a burst of 30 sleeping
    activations (issue 12, the flood class). A job submitted while no thread is idle waits in the queue for the
    thread being started, as it would have waited in ``submit``; the loop goes on meanwhile. A thread the host
    refuses to start fails a queued job with that error, as ``submit`` failed before.

    This reuses the standard pool's internals of CPython 3.11 (its work queue, idle semaphore and thread set),
    replacing only the worker's loop and the thread start. A thread does not retire while work is queued and no
    other thread would take it (the pool at ``max_workers``): it takes the next job niced rather than leave the
    job stranded.
    """

    def __init__(self, max_workers: int, thread_name_prefix: str, retire: Callable[[], bool]) -> None:
        super().__init__(max_workers=max_workers, thread_name_prefix=thread_name_prefix)
        self._retire = retire
        self._names = itertools.count()
        self._starting = 0  # threads asked of the spawner and not yet in self._threads; under _shutdown_lock
        self._spawns: SimpleQueue[bool] = SimpleQueue()
        # A daemon: it holds no work, and at exit only the workers need the interpreter's wake-up (atexit).
        self._spawner = threading.Thread(target=self._spawn_threads, name=f"{thread_name_prefix}_spawner", daemon=True)
        self._spawner.start()

    @property
    def _thread_set(self) -> set[threading.Thread]:
        """The standard pool's thread set, which typeshed declares read-only (it is a set)."""
        return cast(set[threading.Thread], self._threads)

    def _adjust_thread_count(self) -> None:
        # Called by submit() under _shutdown_lock. The idle count is approximate (the standard pool's): past
        # max_workers a thread counts itself idle and then takes a queued job. With no thread left, such a stale
        # count must not strand the job.
        if self._idle_semaphore.acquire(timeout=0) and (self._threads or self._starting):
            return
        if len(self._threads) + self._starting < self._max_workers:
            self._starting += 1
            self._spawns.put(True)

    def _spawn_threads(self) -> None:
        """The spawner's loop: start a worker per request until shutdown."""

        def wake(_: object, q: SimpleQueue[Any] = self._work_queue) -> None:
            q.put(None)

        while self._spawns.get():
            self._start_worker(weakref.ref(self, wake))

    def _start_worker(self, pool: weakref.ref[RetiringThreadPool]) -> None:
        worker = threading.Thread(
            name=f"{self._thread_name_prefix}_{next(self._names)}",
            target=_worker,
            args=(pool, self._work_queue, self._retire),
        )
        queues = cast(dict[threading.Thread, Any], futures_thread._threads_queues)
        # In the set before it starts: a thread that retires after its first job must find itself there.
        with self._shutdown_lock:
            self._starting -= 1
            self._thread_set.add(worker)
            queues[worker] = self._work_queue
        try:
            worker.start()
        except RuntimeError as error:  # "can't start new thread": the host's thread or memory limits
            with self._shutdown_lock:
                self._thread_set.discard(worker)
                queues.pop(worker, None)
            logger.error("could not start a wasm worker thread (%d running): %s", len(self._threads), error)
            self._fail_one_queued(error)

    def _fail_one_queued(self, error: BaseException) -> None:
        """The job that asked for a thread no one could start gets ``error`` (or a job queued with it)."""
        try:
            item = self._work_queue.get_nowait()
        except Empty:  # another thread took it meanwhile
            return
        if item is None:  # shutdown's wake-up: leave it for the workers
            self._work_queue.put(None)
            return
        if item.future.set_running_or_notify_cancel():
            item.future.set_exception(error)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        super().shutdown(wait=False, cancel_futures=cancel_futures)
        self._spawns.put(False)
        self._spawner.join()  # no thread is started after this: the set below is complete
        if wait:
            for worker in list(self._threads):  # a copy: threads retire meanwhile
                worker.join()

    def _leave(self, worker: threading.Thread) -> bool:
        """Take ``worker`` out of the pool, unless queued work would then wait for a thread."""
        with self._shutdown_lock:
            if not self._work_queue.empty() and len(self._threads) + self._starting >= self._max_workers:
                return False
            self._thread_set.discard(worker)
            self._idle_semaphore.acquire(timeout=0)  # a stale idle count of its own, if any, leaves with it
            return True


def _worker(
    executor_reference: weakref.ref[RetiringThreadPool], work_queue: SimpleQueue[Any], retire: Callable[[], bool]
) -> None:
    """The standard pool's worker loop (concurrent/futures/thread.py), plus retirement after a job."""
    try:
        while True:
            work_item = work_queue.get(block=True)
            if work_item is not None:
                work_item.run()
                del work_item
                executor = executor_reference()
                if executor is not None:
                    if retire() and executor._leave(threading.current_thread()):
                        return
                    executor._idle_semaphore.release()
                del executor
                continue
            executor = executor_reference()
            if futures_thread._shutdown or executor is None or executor._shutdown:
                if executor is not None:
                    executor._shutdown = True
                work_queue.put(None)
                return
            del executor
    except BaseException:
        logger.critical("exception in a wasm worker thread", exc_info=True)
