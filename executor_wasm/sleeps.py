"""A host ``poll_oneoff``: guest sleeps that give up their compute slot and end at the run's deadline.

WASI's own ``poll_oneoff`` sleeps inside Wasmtime, where neither the epoch deadline nor shutdown can
reach it, and the worker thread stays counted as busy. This one replaces it in the linker: a guest
that sleeps (``nanosleep``, Go's ``time.Sleep``) waits on a Python event with the GIL released,
hands its compute slot to another run while it waits (and takes one again through the fair queues of
slots.py when it wakes), and is stopped when its run's deadline passes.
That is what lets thousands of 5 s sleep activations run at once on a few CPU-bound workers (the
capacity experiment) while a busy guest still gets a whole slot.

Only what a guest of this executor can wait for is implemented: clocks, and stdio descriptors, which
are files or in-memory pipes here and so always ready (there are no sockets in WASI preview 1).
"""

from __future__ import annotations

import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import wasmtime

from executor_wasm.slots import current_slots
from executor_wasm.stdio import host_call, refused

WASI = "wasi_snapshot_preview1"
_SUBSCRIPTION = struct.Struct("<QB7xI4xQQH6x")  # userdata, tag, clock id, timeout, precision, flags
_EVENT = struct.Struct("<QHB5xQH6x")  # userdata, errno, type, nbytes, flags
_NEVENTS = struct.Struct("<I")
_CLOCK, _FD_READ = 0, 1
_ABSTIME = 1
_REALTIME, _MONOTONIC = 0, 1
_ERRNO_FAULT, _ERRNO_INVAL = 21, 28
# Subscriptions one call may pass: the host copies and parses each (48 bytes, ~1 µs), so a guest asking
# for two billion is refused before anything is allocated. wasi-libc passes one per polled fd plus a timer.
MAX_SUBSCRIPTIONS = 4096
_SAME_INSTANT_S = 0.000_05  # timers this close to the first one fire with it


class DeadlinePassed(Exception):
    """Raised inside a sleeping guest whose run reached its deadline (or the executor is closing)."""


class _Local(threading.local):
    deadline: float = float("inf")  # time.monotonic() at which the current run is out of time
    wasi_origin_ns: int = 0  # time.monotonic_ns() when the run's WASI context was made
    deadline_passed: bool = False


_local = _Local()


@contextmanager
def run_deadline(timeout_s: float) -> Iterator[None]:
    """Mark the calling thread as running a guest that must stop ``timeout_s`` from now."""
    _local.deadline = time.monotonic() + timeout_s
    _local.wasi_origin_ns = time.monotonic_ns()
    _local.deadline_passed = False
    try:
        yield
    finally:
        _local.deadline = float("inf")


def deadline_passed() -> bool:
    """Did the last run on this thread end in a sleep that reached its deadline?"""
    return _local.deadline_passed


def define_poll_oneoff(linker: wasmtime.Linker) -> None:
    """Replace WASI's ``poll_oneoff`` in ``linker`` (call after ``define_wasi``)."""
    i32 = wasmtime.ValType.i32()
    linker.allow_shadowing = True
    linker.define_func(WASI, "poll_oneoff", wasmtime.FuncType([i32] * 4, [i32]), _poll_oneoff, access_caller=True)
    linker.allow_shadowing = False


def _poll_oneoff(caller: wasmtime.Caller, subs_ptr: int, events_ptr: int, count: int, nevents_ptr: int) -> int:
    host_call()  # paced past a number of calls a run, as fd_write (stdio.CALLS_FREE)
    memory = caller.get("memory")
    if not isinstance(memory, wasmtime.Memory) or not 0 < count <= MAX_SUBSCRIPTIONS:
        return refused(_ERRNO_INVAL)  # a refusal repeated in a loop pauses the guest (stdio.REFUSALS_FREE)
    # The guest's pointers are unsigned 32-bit offsets; everything read or written must lie in its memory.
    subs_ptr, events_ptr, nevents_ptr = (ptr & 0xFFFF_FFFF for ptr in (subs_ptr, events_ptr, nevents_ptr))
    size = memory.data_len(caller)
    if (
        subs_ptr + count * _SUBSCRIPTION.size > size
        or events_ptr + count * _EVENT.size > size
        or nevents_ptr + _NEVENTS.size > size
    ):
        return refused(_ERRNO_FAULT)
    raw = memory.read(caller, subs_ptr, subs_ptr + count * _SUBSCRIPTION.size)
    subscriptions = [_SUBSCRIPTION.unpack_from(raw, i * _SUBSCRIPTION.size) for i in range(count)]
    ready = [(userdata, tag) for userdata, tag, *_ in subscriptions if tag != _CLOCK]
    if not ready:  # only timers: wait for the first one
        waits = [(_wait_s(clock, timeout, flags), data) for data, _tag, clock, timeout, _p, flags in subscriptions]
        first = min(wait for wait, _ in waits)
        host_sleep(first)
        ready = [(userdata, _CLOCK) for wait, userdata in waits if wait <= first + _SAME_INSTANT_S]
    events = b"".join(_EVENT.pack(userdata, 0, tag, 1 if tag == _FD_READ else 0, 0) for userdata, tag in ready)
    memory.write(caller, events, events_ptr)
    memory.write(caller, _NEVENTS.pack(len(ready)), nevents_ptr)
    return 0


def _wait_s(clock: int, timeout_ns: int, flags: int) -> float:
    """Seconds from now until a clock subscription fires."""
    if not flags & _ABSTIME:
        return timeout_ns / 1e9
    if clock == _REALTIME:
        return (timeout_ns - time.time_ns()) / 1e9
    # Wasmtime's monotonic clock counts from when the WASI context was made.
    elapsed = time.monotonic_ns() - _local.wasi_origin_ns if clock == _MONOTONIC else 0
    return (timeout_ns - elapsed) / 1e9


def host_sleep(seconds: float) -> None:
    """Block the calling guest for ``seconds`` as a WASI sleep does (for host functions that wait)."""
    remaining = _local.deadline - time.monotonic()
    slots = current_slots()
    wait = max(0.0, min(seconds, remaining))
    if slots is not None:
        # False: the executor is closing, or the deadline passed while it waited for a slot again.
        stopped = not slots.sleep(wait, _local.deadline)
    else:
        time.sleep(wait)
        stopped = False
    if stopped or seconds >= remaining:
        _local.deadline_passed = True
        raise DeadlinePassed
