"""The guest's stdio: params in on stdin, result and logs out of stdout and stderr.

stdin is handed to Wasmtime as bytes; stdout and stderr go to memfds that Wasmtime opens as files
(``/proc/self/fd/N``, +2-3 µs per stream, against 150-210 µs per write for a Python callback:
reference/measurements.md "Wasmtime from Python"), sealed at a size cap so that an action printing
forever cannot exhaust host memory. After the run the streams are read back and cut into the result
line and OpenWhisk log lines.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
from datetime import UTC, datetime
from typing import Literal

import orjson
import wasmtime
from wasmtime import _ffi as ffi

from pywhisk.activation import Messages, format_log_line

# A stream may hold the log limit plus the result (OpenWhisk caps results at 1 MB) plus slack.
OUTPUT_SLACK = 1_048_576 + 65_536
# Every log line a record can keep is within this many bytes of JSON: the invoker's record bound
# (Settings.activation_max_bytes) is at most this (its validation), so lines after it are never kept.
RECORD_BOUND_BYTES = 8_000_000
# Raw output split and formatted per C call (~0.5 ms for 64 KiB of short lines).
SLICE_BYTES = 65_536


class CappedOutput:
    """A memfd that Wasmtime writes one guest stream into, which cannot grow past ``cap`` bytes.

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


def collect_logs(stdout: bytes, stderr: bytes, limit: int) -> list[str]:
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


def _slice_end(data: bytes, start: int, end: int) -> int:
    """Where the slice of ``data[start:end]`` starting at ``start`` ends: after a newline, or at ``end``."""
    if end - start <= SLICE_BYTES:
        return end
    newline = data.rfind(b"\n", start, start + SLICE_BYTES)
    if newline < 0:  # a line longer than a slice: it is one string whatever is done
        newline = data.find(b"\n", start + SLICE_BYTES, end)
    return end if newline < 0 else newline + 1


def _format(prefix: str, chunk: bytes) -> list[str]:
    """The formatted lines of ``chunk`` (whole lines, the last one maybe without its newline).

    Decoding the chunk whole is the same as decoding each line: UTF-8 never puts the byte of a newline or
    a carriage return inside a character or a malformed sequence. A line loses one trailing ``\\r``.
    """
    text = chunk.decode("utf-8", "replace").replace("\r\n", "\n")
    if text.endswith(("\n", "\r")):  # the last newline, or the \r of a stream's last line without one
        text = text[:-1]
    return (prefix + text.replace("\n", "\n" + prefix)).split("\n")


def take_result(stdout: bytes) -> tuple[str, bytes]:
    """Split stdout into its last non-blank line (the result) and what came before it (logs)."""
    end = len(stdout)
    while end > 0:
        start = stdout.rfind(b"\n", 0, end) + 1
        line = stdout[start:end]
        if line.strip():
            return _text(line), stdout[:start]
        end = start - 1  # blank line: look at the one before it
    return "", b""


def _text(line: bytes) -> str:
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
