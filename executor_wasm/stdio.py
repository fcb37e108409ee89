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
    """
    when = datetime.now(UTC)
    logs: list[str] = []
    budget = limit
    for stream, data in (("stdout", stdout), ("stderr", stderr)):
        # format_log_line is f"{stamp:<30} {stream}: {line}": with one timestamp per run the prefix is
        # constant, and building it once keeps a million-line log from costing a strftime per line.
        prefix = format_log_line(stream, "", when)
        lines = data[: budget + 1].split(b"\n")
        unterminated = lines.pop()  # b"" when the data ends with a newline
        costs = [len(line) + 1 for line in lines]
        if unterminated:
            lines.append(unterminated)
            costs.append(len(unterminated))
        for line, cost in zip(lines, costs, strict=True):
            budget -= cost
            if budget < 0:
                logs.append(format_log_line("stderr", Messages.truncated_logs(limit), when))
                return logs
            logs.append(prefix + _text(line))
    return logs


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
