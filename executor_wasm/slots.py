"""Compute slots shared fairly between namespaces: one namespace's busy guests cannot starve another's hello.

The executor runs at most ``threads`` guests at once (``PYWHISK_WASM_THREADS``): a guest executes on a
*compute slot*, and gives it back while it sleeps (sleeps.py). A plain semaphore hands a freed slot to
whoever asked first, so a namespace running CPU-bound guests at its concurrency limit (30 ``loop``s on
8 slots) queues another namespace's hello behind all of them: it waited ~10 s, until the loops timed out
(docs/benchmarks.md, "Noisy neighbour"). This is the invoker's pool policy (invoker/pool.py) applied to
slots instead of memory:

- Each namespace waits in its own first-come-first-served queue. When a slot frees, the waiting
  namespace holding the fewest slots gets it; ties go to the namespace whose head asked first. Worked
  example: 8 slots, namespace A runs 8 loops and has 22 more queued, B asks for a hello. The first slot
  A gives back goes to B (B holds 0, A 7), not to A's 22.
- Fair order alone still makes B wait for A's next release, which for a CPU-bound guest is its time
  limit. So ``reserve`` slots are kept for namespaces holding none: a namespace that already holds a slot
  gets another only while more than ``reserve`` stay free. With a reserve of 1, A runs 7 loops and B's
  hello starts at once. The reserve is at most a quarter of the slots (as the pool's memory reserve), so
  a lone namespace keeps most of the executor: on the default 8 it runs 7 guests at once, 3.5 per core of
  a 2 vCPU machine, so a CPU-bound namespace loses no throughput there (executing guests beyond the cores
  only share them). Below 4 slots there is no reserve.

Slots decide which guests execute, not how the kernel shares the cores: 7 CPU-bound guests on 2 vCPUs
would still slow the process's event loop and the victim's own guest (docs/benchmarks.md, "Noisy
neighbour"). That is priority.py's part: the slots tell it when each run starts and ends, and it renices
the threads of guests that have used more than a quantum of CPU time.

A guest waking from a sleep retakes a slot through the same queues, so a namespace cannot get ahead by
sleeping. The reserve holds against one busy namespace per reserved slot (a namespace holding a slot
never takes from it); beyond that, a waiting namespace holding nothing still comes first at the next
release.

:class:`SlotPolicy` is the policy alone (no threads, no clock: the unit tests drive it);
:class:`ComputeSlots` wraps it for the worker threads, which block in :meth:`ComputeSlots.held` (never
the event loop: every job runs on the executor's thread pool).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from executor_wasm.priority import GuestPriority
from pywhisk.errors import ExecutorError


def effective_reserve(threads: int, reserve: int) -> int:
    """The slots actually reserved for namespaces holding none: at most a quarter of them."""
    return max(0, min(reserve, threads // 4))


@dataclass(eq=False)
class Waiter:
    """One request for a slot, by a run of ``namespace``; ``arrival`` orders heads of equal namespaces."""

    namespace: str
    arrival: int = 0
    granted: bool = False
    withdrawn: bool = False  # cancelled by its caller, or the slots closed: it will never be granted
    event: threading.Event = field(default_factory=threading.Event)


class SlotPolicy:
    """Who gets a free slot (module docstring): the pure bookkeeping, not thread-safe on its own."""

    def __init__(self, slots: int, reserve: int = 0) -> None:
        if slots < 1:
            raise ValueError("at least one compute slot is needed")
        self.slots = slots
        self.reserve = effective_reserve(slots, reserve)
        self.held: dict[str, int] = {}
        self.queues: dict[str, deque[Waiter]] = {}
        self.free = slots
        self._arrivals = 0

    def request(self, waiter: Waiter) -> list[Waiter]:
        """Queue ``waiter``; the waiters granted a slot now (``waiter`` among them if it was served at once)."""
        self._arrivals += 1
        waiter.arrival = self._arrivals
        self.queues.setdefault(waiter.namespace, deque()).append(waiter)
        return self._dispatch()

    def release(self, namespace: str) -> list[Waiter]:
        """A slot of ``namespace`` is free again; the waiters granted one now."""
        count = self.held.get(namespace, 0)
        if count <= 0:
            raise RuntimeError(f"namespace {namespace!r} holds no compute slot")
        if count == 1:
            del self.held[namespace]
        else:
            self.held[namespace] = count - 1
        self.free += 1
        return self._dispatch()

    def withdraw(self, waiter: Waiter) -> bool:
        """Take ``waiter`` out of its queue; False if it was already granted (the caller must release)."""
        if waiter.granted:
            return False
        waiter.withdrawn = True
        queue = self.queues.get(waiter.namespace)
        if queue is not None and waiter in queue:
            queue.remove(waiter)
            if not queue:
                del self.queues[waiter.namespace]
        return True

    def waiting(self, namespace: str | None = None) -> int:
        """Waiters queued (for one namespace, or in all)."""
        if namespace is not None:
            return len(self.queues.get(namespace, ()))
        return sum(len(queue) for queue in self.queues.values())

    def _dispatch(self) -> list[Waiter]:
        granted: list[Waiter] = []
        while self.free > 0 and self.queues:
            # The namespace holding the fewest slots; ties: whose head came first.
            namespace = min(self.queues, key=lambda ns: (self.held.get(ns, 0), self.queues[ns][0].arrival))
            if self.held.get(namespace, 0) > 0 and self.free <= self.reserve:
                break  # every waiting namespace holds a slot already: the rest is reserved
            queue = self.queues[namespace]
            waiter = queue.popleft()
            if not queue:
                del self.queues[namespace]
            waiter.granted = True
            self.held[namespace] = self.held.get(namespace, 0) + 1
            self.free -= 1
            granted.append(waiter)
        return granted


class SlotsClosed(ExecutorError):
    """The executor closed (or the caller gave up) before the job got a compute slot."""


class _Held(threading.local):
    slots: ComputeSlots | None = None
    namespace: str = ""
    holding: bool = False


_held = _Held()


class ComputeSlots:
    """How many guests may execute (not sleep) at once, shared fairly between namespaces (module docstring)."""

    def __init__(self, count: int, reserve: int = 0, priority: GuestPriority | None = None) -> None:
        self._policy = SlotPolicy(count, reserve)
        # The CPU priority of the guests holding slots (priority.py): told when each run starts and ends.
        self.priority = priority
        self._lock = threading.Lock()
        self.closing = threading.Event()
        self._asleep = 0

    @property
    def reserve(self) -> int:
        return self._policy.reserve

    def open(self) -> None:
        """Accept requests again (after :meth:`close`)."""
        self.closing.clear()

    def close(self) -> None:
        """Refuse every request from now on and wake every waiter (and every sleeping guest: sleeps.py)."""
        with self._lock:
            self.closing.set()
            waiters = [w for queue in self._policy.queues.values() for w in queue]
            for waiter in waiters:
                self._policy.withdraw(waiter)
        for waiter in waiters:
            waiter.event.set()

    def holding(self, namespace: str) -> int:
        """Slots ``namespace`` holds now."""
        with self._lock:
            return self._policy.held.get(namespace, 0)

    def waiting(self, namespace: str | None = None) -> int:
        """Requests queued (for one namespace, or in all)."""
        with self._lock:
            return self._policy.waiting(namespace)

    @property
    def asleep(self) -> int:
        """Guests sleeping now (in :meth:`sleep`, before they wait for a slot again)."""
        return self._asleep

    def withdraw(self, waiter: Waiter) -> None:
        """Give up ``waiter``'s request (its caller was cancelled); a slot it already got is kept by its job."""
        with self._lock:
            waiter.withdrawn = True
            if not self._policy.withdraw(waiter):
                return
        waiter.event.set()

    @contextmanager
    def held(self, namespace: str, waiter: Waiter | None = None) -> Iterator[None]:
        """Hold a slot for ``namespace`` on the calling worker thread (it waits for one) until the block ends.

        Raises :class:`SlotsClosed` if the slots close, or ``waiter`` is withdrawn, before a slot is free.
        """
        waiter = waiter or Waiter(namespace)
        if not self._take(waiter, deadline=None):
            raise SlotsClosed("the wasm executor was closed")
        _held.slots, _held.namespace, _held.holding = self, namespace, True
        if self.priority is not None:
            self.priority.begin(namespace)
        try:
            yield
        finally:
            if self.priority is not None:
                self.priority.end()  # before the slot is given back: the next run on this thread starts at nice 0
            holding = _held.holding
            _held.slots, _held.holding = None, False
            if holding:
                self._give(namespace)

    def sleep(self, seconds: float, deadline: float) -> bool:
        """Sleep without holding the caller's slot, then take one again (waiting in the fair queues).

        Wakes early when the executor closes. False when the caller holds no slot now: the slots closed,
        or ``deadline`` (``time.monotonic()``) passed before a slot was free -- its run is over.
        """
        namespace = _held.namespace
        # The run's deadline in epoch ticks, which the sleep does not change (the epoch may lag the wall clock).
        deadline_tick = self.priority.deadline_tick() if self.priority is not None else None
        if self.priority is not None:
            # An asleep guest executes nothing: off the priority's list of runs, which the epoch ticker walks every
            # tick (one thread-CPU clock read per run), so 20,000 sleepers cost the ticker nothing.
            self.priority.end()
        if _held.holding:
            _held.holding = False
            self._give(namespace)
        with self._lock:
            self._asleep += 1
        try:
            self.closing.wait(seconds)
        finally:
            with self._lock:
                self._asleep -= 1
        if self.closing.is_set() or time.monotonic() >= deadline:
            return False
        if not self._take(Waiter(namespace), deadline):
            return False
        _held.holding = True
        if self.priority is not None:
            self.priority.begin(namespace)  # its CPU quantum starts again with the slot
            self.priority.set_deadline(deadline, deadline_tick)
        return True

    def _take(self, waiter: Waiter, deadline: float | None) -> bool:
        with self._lock:
            if self.closing.is_set() or waiter.withdrawn:
                return False
            self._wake(self._policy.request(waiter))
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        if waiter.event.wait(timeout):
            return waiter.granted
        with self._lock:
            # Granted just as the deadline passed: keep it, the run ends at its epoch deadline anyway.
            return not self._policy.withdraw(waiter)

    def _give(self, namespace: str) -> None:
        with self._lock:
            self._wake(self._policy.release(namespace))

    @staticmethod
    def _wake(waiters: list[Waiter]) -> None:
        for waiter in waiters:
            waiter.event.set()


def current_slots() -> ComputeSlots | None:
    """The slots the calling worker thread runs under (None outside a job, e.g. in direct runner calls)."""
    return _held.slots
