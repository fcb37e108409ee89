"""The guest's stdio: params in on stdin, result and logs out of stdout and stderr.

stdin is handed to Wasmtime as bytes. For a ``wasm:wasi`` module, stdout and stderr are in-memory
buffers filled by a host ``fd_write`` (:func:`define_fd_write`, shadowing WASI's in the linker), capped
so that an action printing forever cannot exhaust host memory. A run thus holds no file descriptor:
the descriptor hard limit (20,000 on the benchmark machine, not raisable there) bounded the executor
at ~5,000 runs in progress when each held two memfds and Wasmtime's two handles on them (issue 17).
Wasmtime's own ``stdout_custom`` costs ~470 µs more per hello run (a callback re-entering the GIL
from a Tokio thread, measured with wasmtime-py 51); this host function costs a few µs per write.

The component runners (python/, js/) go through WASI preview 2, where ``fd_write`` is not a core
import to shadow: they keep :class:`CappedOutput`, memfds that Wasmtime opens as files
(``/proc/self/fd/N``, +2-3 µs per stream: reference/measurements.md "Wasmtime from Python").
After the run the streams are cut into the result line and OpenWhisk log lines.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Literal

import orjson
import wasmtime
from wasmtime import _ffi as ffi
from wasmtime import _func as _wasmtime_func

from pywhisk.activation import Messages, between_slices, format_log_line

# A stream may hold the log limit plus the result (OpenWhisk caps results at 1 MB) plus slack.
OUTPUT_SLACK = 1_048_576 + 65_536
# Every log line a record can keep is within this many bytes of JSON: the invoker's record bound
# (Settings.activation_max_bytes) is at most this (its validation), so lines after it are never kept.
RECORD_BOUND_BYTES = 8_000_000
# Raw output split and formatted per C call (~0.5 ms for 64 KiB of short lines).
SLICE_BYTES = 65_536
# iovecs one fd_write may pass, as Linux's IOV_MAX (writev answers EINVAL beyond it): a guest passing
# millions of empty iovecs cannot hold the GIL for seconds.
IOV_MAX = 1024
# Host calls are paced per run. Each one runs Python (this module's and sleeps.py's functions and the
# wasmtime-py trampoline around them, ~20 µs) holding the GIL the server's event loop needs, so a guest
# calling one in a loop takes the GIL from the loop: four guests repeating a refused call took ~80 % of
# standalone's CPU, most of it in the trampolines, and the other namespaces' hellos waited (issue 12,
# "hostcall"; docs/security.md). A refused call (a request past its bound, a pointer outside the guest's
# memory, a descriptor it does not have) returns at once, and no working guest repeats one: after
# REFUSALS_FREE of them in a run, each further one pauses the guest HOST_CALL_PAUSE_S without the GIL. A
# write past the log cap (EPERM) is a careless guest's, not a refusal. Calls that are not refused are free
# up to CALLS_FREE a run (buffered stdio writes 1-4 KiB a call: 10 MB of logs is ~10,000 calls), then every
# CALLS_PER_PAUSE-th pauses, which holds a guest to ~16,000 calls a second.
REFUSALS_FREE = 64
CALLS_FREE = 100_000
CALLS_PER_PAUSE = 16
HOST_CALL_PAUSE_S = 0.001

WASI = "wasi_snapshot_preview1"
_IOVEC = struct.Struct("<II")  # buf, buf_len
_SIZE = struct.Struct("<I")
_ERRNO_BADF, _ERRNO_FAULT, _ERRNO_INVAL, _ERRNO_PERM = 8, 21, 28, 63
_EXTERN_MEMORY = 3  # WASMTIME_EXTERN_MEMORY


class _Outputs(threading.local):
    streams: tuple[bytearray, bytearray] | None = None  # stdout, stderr of the run on this thread
    cap: int = 0
    refusals: int = 0  # host calls of the run on this thread refused so far (refused())
    calls: int = 0  # host calls of the run on this thread so far (host_call())


_outputs = _Outputs()


@contextmanager
def captured_output(cap: int) -> Iterator[tuple[bytearray, bytearray]]:
    """Capture the stdout and stderr of the guest run on this thread, each kept to at most ``cap`` bytes.

    A write past the cap keeps what fits and fails with EPERM once nothing does, as a sealed memfd's
    did: an ordinary write error for the guest's libc, not a trap.
    """
    streams = (bytearray(), bytearray())
    _outputs.streams, _outputs.cap, _outputs.refusals, _outputs.calls = streams, cap, 0, 0
    try:
        yield streams
    finally:
        _outputs.streams = None


def define_fd_write(linker: wasmtime.Linker) -> None:
    """Replace WASI's ``fd_write`` in ``linker`` (call after ``define_wasi``): descriptors 1 and 2 go to
    the buffers of :func:`captured_output`, every other one is refused with EBADF (a ``wasm:wasi``
    action has nothing else to write to: its preopens are read-only).

    It is defined through the C API's unchecked form (:func:`_raw_fd_write`): wasmtime-py's ``define_func``
    trampoline wraps every call in a ``Caller``, a ``Val`` per argument and the result, and the memory
    lookup in a ``Memory`` object: ~30 µs a call there, ~8 µs this way (hello makes two per run; issue 15,
    docs/benchmarks.md). Where wasmtime-py's private bindings moved, the public road (:func:`_fd_write`)."""
    i32 = wasmtime.ValType.i32()
    ty = wasmtime.FuncType([i32] * 4, [i32])
    linker.allow_shadowing = True
    try:
        if _DEFINE_UNCHECKED is None:
            linker.define_func(WASI, "fd_write", ty, _fd_write, access_caller=True)
            return
        linker_ptr = ctypes.cast(linker.ptr(), ctypes.c_void_p).value
        ty_ptr = ctypes.cast(ty.ptr(), ctypes.c_void_p).value
        error = _DEFINE_UNCHECKED(
            linker_ptr, WASI.encode(), len(WASI), b"fd_write", 8, ty_ptr, _RAW_FD_WRITE, None, None
        )
        if error:
            raise wasmtime.WasmtimeError._from_ptr(ctypes.cast(error, ctypes.POINTER(ffi.wasmtime_error_t)))
    finally:
        linker.allow_shadowing = False


def host_call() -> None:
    """Count a host call of the run on this thread; past CALLS_FREE, every CALLS_PER_PAUSE-th pauses the
    guest without the GIL (see CALLS_FREE)."""
    calls = _outputs.calls = _outputs.calls + 1
    if calls > CALLS_FREE and calls % CALLS_PER_PAUSE == 0:
        _pause()


def refused(errno: int) -> int:
    """Answer a host call with ``errno`` as a refusal: past REFUSALS_FREE in this run, after a pause without
    the GIL (see REFUSALS_FREE)."""
    _outputs.refusals += 1
    if _outputs.refusals > REFUSALS_FREE:
        _pause()
    return errno


def _pause() -> None:
    time.sleep(HOST_CALL_PAUSE_S)  # releases the GIL


def _fd_write(caller: wasmtime.Caller, fd: int, iovs_ptr: int, iovs_len: int, nwritten_ptr: int) -> int:
    """``fd_write`` through wasmtime-py's ``define_func`` (the fallback of :func:`define_fd_write`)."""
    host_call()
    streams = _outputs.streams
    if streams is None or fd not in (1, 2):
        return refused(_ERRNO_BADF)
    memory = caller.get("memory")
    iovs_len &= 0xFFFF_FFFF
    if not isinstance(memory, wasmtime.Memory) or iovs_len > IOV_MAX:
        return refused(_ERRNO_INVAL)
    base = ctypes.addressof(memory.data_ptr(caller).contents)
    return _write(streams, fd, base, memory.data_len(caller), iovs_ptr, iovs_len, nwritten_ptr)


# Wasmtime's unchecked host function: (env, caller, the arguments and results, their count) -> a trap or NULL.
_UNCHECKED_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_size_t, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t
)
# The C functions an ``fd_write`` call needs, bound as ``PYFUNCTYPE``: they return at once, so they keep the GIL
# (a ``CDLL`` call releases and re-takes it around each one) and take and give plain addresses (no ctypes
# pointer objects to build). Wasmtime's C API (wasmtime/extern.h, func.h, memory.h, linker.h).
try:
    _EXPORT_GET = ctypes.PYFUNCTYPE(ctypes.c_bool, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_void_p)(
        ("wasmtime_caller_export_get", ffi.dll)
    )
    _CALLER_CONTEXT = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p)(("wasmtime_caller_context", ffi.dll))
    _MEMORY_DATA = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)(
        ("wasmtime_memory_data", ffi.dll)
    )
    _MEMORY_DATA_SIZE = ctypes.PYFUNCTYPE(ctypes.c_size_t, ctypes.c_void_p, ctypes.c_void_p)(
        ("wasmtime_memory_data_size", ffi.dll)
    )
    _DEFINE_UNCHECKED = ctypes.PYFUNCTYPE(
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_char_p,
        ctypes.c_size_t,
        ctypes.c_char_p,
        ctypes.c_size_t,
        ctypes.c_void_p,
        _UNCHECKED_CALLBACK,
        ctypes.c_void_p,
        ctypes.c_void_p,
    )(("wasmtime_linker_define_func_unchecked", ffi.dll))
except AttributeError:  # a Wasmtime without them: wasmtime-py's define_func (define_fd_write)
    _DEFINE_UNCHECKED = None  # type: ignore[assignment]
# wasmtime_extern_t: a kind byte, then (at 8) the union holding a wasmtime_memory_t; 32 bytes in all.
_EXTERN_BYTES, _EXTERN_OF = 32, 8
# The four i32 arguments, each the first 4 bytes of a 16-byte wasmtime_val_raw_t; the result goes to the first.
_ARGS = struct.Struct("<i12xi12xi12xi12x")


def _raw_fd_write(_env: int, caller: int, values: int, _count: int) -> int:
    """``fd_write`` as Wasmtime's unchecked host function: its four i32 at ``values``, the errno back there.

    An exception (a bug of ours) becomes a trap carrying it, as wasmtime-py's trampoline does, so the runner
    reports it the same way (runner.py ``_execute``).
    """
    try:
        fd, iovs_ptr, iovs_len, nwritten_ptr = _ARGS.unpack(ctypes.string_at(values, _ARGS.size))
        ctypes.c_int32.from_address(values).value = _raw_write(caller, fd, iovs_ptr, iovs_len, nwritten_ptr)
        return 0
    except BaseException as error:
        _wasmtime_func.LAST_EXCEPTION = error  # type: ignore[assignment]  # wasmtime-py's trampoline keeps any
        trap = wasmtime.Trap("python exception")._consume()
        return ctypes.cast(trap, ctypes.c_void_p).value or 0


# Kept alive here: Wasmtime holds its address for as long as a linker may call it.
_RAW_FD_WRITE = _UNCHECKED_CALLBACK(_raw_fd_write)


def _raw_write(caller: int, fd: int, iovs_ptr: int, iovs_len: int, nwritten_ptr: int) -> int:
    host_call()
    streams = _outputs.streams
    if streams is None or fd not in (1, 2):
        return refused(_ERRNO_BADF)
    iovs_len &= 0xFFFF_FFFF
    item = ctypes.create_string_buffer(_EXTERN_BYTES)
    address = ctypes.addressof(item)
    if not _EXPORT_GET(caller, b"memory", 6, address) or item.raw[0] != _EXTERN_MEMORY or iovs_len > IOV_MAX:
        return refused(_ERRNO_INVAL)
    context = _CALLER_CONTEXT(caller)
    size = _MEMORY_DATA_SIZE(context, address + _EXTERN_OF)
    base = _MEMORY_DATA(context, address + _EXTERN_OF) or 0
    return _write(streams, fd, base, size, iovs_ptr, iovs_len, nwritten_ptr)


def _write(
    streams: tuple[bytearray, bytearray], fd: int, base: int, size: int, iovs_ptr: int, iovs_len: int, nwritten_ptr: int
) -> int:
    """Append the iovecs at ``iovs_ptr`` of the guest memory at ``base`` (``size`` bytes) to stream ``fd``."""
    iovs_ptr, nwritten_ptr = iovs_ptr & 0xFFFF_FFFF, nwritten_ptr & 0xFFFF_FFFF
    if iovs_ptr + iovs_len * _IOVEC.size > size or nwritten_ptr + _SIZE.size > size:
        return refused(_ERRNO_FAULT)
    # Raw addresses, every range checked against the size first: Memory.read/write cost ~5 µs a call,
    # and the memory cannot move while the guest waits for this call.
    raw = ctypes.string_at(base + iovs_ptr, iovs_len * _IOVEC.size)
    stream = streams[fd - 1]
    room = _outputs.cap - len(stream)
    written, asked = 0, False
    for buf, length in _IOVEC.iter_unpack(raw):
        if buf + length > size:  # what came before it is written, as a short write
            if written:
                break
            return refused(_ERRNO_FAULT)
        asked = asked or length > 0
        take = min(length, room - written)
        if take > 0:
            stream += ctypes.string_at(base + buf, take)
            written += take
        if take < length:  # the cap is reached
            break
    if asked and not written:
        return _ERRNO_PERM
    ctypes.memmove(base + nwritten_ptr, _SIZE.pack(written), _SIZE.size)
    return 0


class CappedOutput:
    """A memfd that Wasmtime writes one stream of a component runner into, which cannot grow past ``cap`` bytes.

    Wasmtime opens (and truncates) the file when it is configured, so the cap is applied right after:
    ``ftruncate(cap)`` then ``F_SEAL_GROW | F_SEAL_SHRINK``. A write past the cap then fails inside the
    guest (EPERM: an ordinary write error for its libc, not a trap), and pages below the cap are only
    allocated when written, so an unused cap costs nothing. Trailing NUL bytes of the output are lost.
    """

    def __init__(self, stream: Literal["stdout", "stderr"], cap: int) -> None:
        self.stream = stream
        self.cap = cap
        self.fd = os.memfd_create(stream, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)

    def attach(self, wasi: wasmtime.WasiConfig) -> None:
        """Make this the guest's stdout or stderr, and seal it at the cap."""
        path = f"/proc/self/fd/{self.fd}"
        if self.stream == "stdout":
            wasi.stdout_file = path
        else:
            wasi.stderr_file = path
        os.ftruncate(self.fd, self.cap)
        fcntl.fcntl(self.fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_GROW | fcntl.F_SEAL_SHRINK)

    def read(self) -> bytes:
        """What the guest wrote (call it after the Store is closed)."""
        # The guest writes from offset 0 on, so the first hole is the end of the data, rounded up to
        # a page of NUL bytes. Reading up to the cap instead would scan megabytes of zeros.
        end = os.lseek(self.fd, 0, os.SEEK_HOLE)
        return os.pread(self.fd, end, 0).rstrip(b"\0") if end else b""

    def __enter__(self) -> CappedOutput:
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)


class Stdin:
    """The guest's stdin: bytes given to Wasmtime directly, else a memfd file."""

    def __init__(self) -> None:
        self.fd: int | None = None

    def attach(self, wasi: wasmtime.WasiConfig, data: bytes) -> None:
        """Configure ``data`` as the guest's stdin."""
        try:
            # WasiConfig has no in-memory stdin setter, but the C function is bound in wasmtime._ffi
            # (~1 µs, measurements.md); the config takes ownership of the vector.
            vec = ffi.wasm_byte_vec_t()
            buffer = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
            ffi.wasm_byte_vec_new(ctypes.byref(vec), len(data), buffer)
            ffi.wasi_config_set_stdin_bytes(wasi.ptr(), ctypes.byref(vec))
        except (AttributeError, TypeError, ctypes.ArgumentError):  # the private binding moved
            self.fd = os.memfd_create("stdin", os.MFD_CLOEXEC)
            with open(self.fd, "wb", closefd=False) as file:
                file.write(data)
            wasi.stdin_file = f"/proc/self/fd/{self.fd}"

    def __enter__(self) -> Stdin:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            os.close(self.fd)


def collect_logs(stdout: bytes | bytearray, stderr: bytes | bytearray, limit: int) -> list[str]:
    """Format the log lines of both streams (stdout first), cut after ``limit`` bytes of raw output.

    A line costs its bytes plus its newline, as a Docker log line of OpenWhisk's does; the first line
    that does not fit is replaced by OpenWhisk's truncation notice. Only the part of a stream that
    can fit is split, so a flood of output costs at most ``limit`` bytes of lines here.

    Lines no record can keep are not formatted: the lines stop at the first one that brings the sum of
    (length + 3) over ``RECORD_BOUND_BYTES``. That line is kept, so the invoker still sees that the logs
    do not fit and ends them with its truncation notice (invoker/results.py ``bound_logs``); the
    record is the same as if every line had been formatted. The work is done a slice of
    ``SLICE_BYTES`` per C call, so that no call holds the GIL for long (a 10 MB flood of short lines:
    ~880,000 lines in one ``bytes.split`` took 30-40 ms).
    """
    when = datetime.now(UTC)
    logs: list[str] = []
    budget = limit
    room = RECORD_BOUND_BYTES
    for stream, data in (("stdout", stdout), ("stderr", stderr)):
        # format_log_line is f"{stamp:<30} {stream}: {line}": with one timestamp per run the prefix is
        # constant, and building it once keeps a million-line log from costing a strftime per line.
        prefix = format_log_line(stream, "", when)
        # The lines that fit are those that end (after their newline) within the budget.
        end = len(data) if len(data) <= budget else data.rfind(b"\n", 0, budget) + 1
        start = 0
        while start < end:
            if start:  # another namespace's request may be waiting for the GIL (pywhisk/records.py)
                between_slices()
            stop = _slice_end(data, start, end)
            lines = _format(prefix, data[start:stop])
            start = stop
            room -= sum(map(len, lines)) + 3 * len(lines)
            if room < 0:  # the line that passes the bound is the last one formatted
                for cut, line in enumerate(reversed(lines)):
                    room += len(line) + 3
                    if room >= 0:
                        del lines[len(lines) - cut :]
                        break
                logs.extend(lines)
                return logs
            logs.extend(lines)
        budget -= end
        if end < len(data):
            logs.append(format_log_line("stderr", Messages.truncated_logs(limit), when))
            return logs
    return logs


def _slice_end(data: bytes | bytearray, start: int, end: int) -> int:
    """Where the slice of ``data[start:end]`` starting at ``start`` ends: after a newline, or at ``end``."""
    if end - start <= SLICE_BYTES:
        return end
    newline = data.rfind(b"\n", start, start + SLICE_BYTES)
    if newline < 0:  # a line longer than a slice: it is one string whatever is done
        newline = data.find(b"\n", start + SLICE_BYTES, end)
    return end if newline < 0 else newline + 1


def _format(prefix: str, chunk: bytes | bytearray) -> list[str]:
    """The formatted lines of ``chunk`` (whole lines, the last one maybe without its newline).

    Decoding the chunk whole is the same as decoding each line: UTF-8 never puts the byte of a newline or
    a carriage return inside a character or a malformed sequence. A line loses one trailing ``\\r``.
    """
    text = chunk.decode("utf-8", "replace").replace("\r\n", "\n")
    if text.endswith(("\n", "\r")):  # the last newline, or the \r of a stream's last line without one
        text = text[:-1]
    return (prefix + text.replace("\n", "\n" + prefix)).split("\n")


def take_result(stdout: bytes | bytearray) -> tuple[str, bytes | bytearray]:
    """Split stdout into its last non-blank line (the result) and what came before it (logs).

    A bytearray (a run's captured output) is cut in place and returned: slicing off the logs would copy up to
    the log limit (10 MB) in one C call holding the GIL; cutting its end is a resize."""
    end = len(stdout)
    while end > 0:
        start = stdout.rfind(b"\n", 0, end) + 1
        line = stdout[start:end]
        if line.strip():
            if isinstance(stdout, bytearray):
                del stdout[start:]
                return _text(line), stdout
            return _text(line), stdout[:start]
        end = start - 1  # blank line: look at the one before it
    return "", b""


def _text(line: bytes | bytearray) -> str:
    return (line[:-1] if line.endswith(b"\r") else line).decode("utf-8", "replace")


def params_json(value: object) -> bytes:
    """The params as the guest reads them on stdin.

    orjson refuses integers beyond 64 bits, which the service's JSON parser accepts and an action proxy
    must pass on (found by tests/integration/test_wasm_fuzz.py): those take the standard library's way.
    """
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
