"""The Python runner inside the WebAssembly component (CPython 3.14 of componentize-py).

componentize-py imports this module at build time and snapshots the initialised interpreter, so
every module imported here is already loaded in each fresh instance: the commonly used pure-Python
standard library is imported on purpose, to make an action's ``import json, hashlib`` free.

The behaviour follows the Docker runtime's action proxy (executor_docker/runtimes/proxy/actionproxy.py):
an exception in ``main`` is an application error (``{"error": str(exc)}``, traceback on stderr); a
result that is not a dict or a list is a developer error; ``SystemExit`` is "command exited".
An exception must never escape an export: the componentize-py runtime aborts the instance on one.
"""

import base64
import binascii
import bisect
import calendar
import collections
import contextlib
import copy
import csv
import dataclasses
import datetime
import decimal
import difflib
import enum
import fractions
import functools
import hashlib
import heapq
import hmac
import html
import io
import itertools
import json
import logging
import marshal
import math
import operator
import os
import pprint
import random
import re
import secrets
import statistics
import string
import struct
import sys
import textwrap
import time
import traceback
import types
import typing
import unicodedata
import urllib.parse
import uuid
import zlib

import wit_world  # type: ignore[import-not-found]

OK = 200
FAILED = 502
EXITED = 400
MEMORY_EXHAUSTED = 0

NOT_A_DICTIONARY = "The action did not return a dictionary or array."
COMMAND_EXITED = "command exited"
UNAVAILABLE_HINT = (
    " (the WASM executor offers the Python standard library and pure-Python code only;"
    " run the action on Docker for native extensions)"
)

__all__ = [  # imported for the snapshot (see the module docstring), not used here
    "base64", "binascii", "bisect", "calendar", "collections", "contextlib", "copy", "csv", "dataclasses", "datetime",
    "decimal", "difflib", "enum", "fractions", "functools", "hashlib", "heapq", "hmac", "html", "io",
    "itertools", "logging", "math", "operator", "pprint", "re", "secrets", "statistics", "string",
    "struct", "textwrap", "time", "types", "typing", "unicodedata", "urllib", "uuid", "zlib",
]  # fmt: skip


class _LogStream(io.RawIOBase):
    """The guest's fd 1 or 2. The host caps each stream (a write past the cap fails with EPERM); from then on
    output is dropped, not raised: the host cuts the logs with OpenWhisk's truncation notice, and an action
    that prints too much still returns its result, as in a Docker container."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self.fd = fd
        self.full = False

    def writable(self) -> bool:
        return True

    def write(self, data: typing.Any) -> int:
        size = len(memoryview(data))
        if not self.full:
            try:
                return os.write(self.fd, data)
            except OSError:
                self.full = True
        return size


def _log_stream(fd: int) -> io.TextIOWrapper:
    # Line-buffered: each print becomes a write at once, so what was printed before a timeout is in the logs.
    raw = io.BufferedWriter(_LogStream(fd))
    return io.TextIOWrapper(raw, encoding="utf-8", errors="backslashreplace", line_buffering=True)


sys.stdout = _log_stream(1)
sys.stderr = _log_stream(2)


class _Exited(BaseException):
    """``os._exit(status)`` of the action: componentize-py's WASI (preview 2) can only say "failed" (status 1)
    to the host, so the status travels back as this exception and the runner reports it, as a ``wasm:wasi``
    module's exit status is. (Unlike a real ``os._exit``, ``finally`` blocks on the way run.)"""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def _os_exit(status: int) -> typing.NoReturn:
    raise _Exited(status)


os._exit = _os_exit


class WitWorld(wit_world.WitWorld):
    def prepare(self, source: str, main: str) -> tuple[int, str]:
        try:
            code = compile(source, "__main__.py", "exec")
            _load(code, main)
            # Text, as everything that crosses: a list<u8> crosses the host's API one value per byte.
            return OK, binascii.b2a_base64(marshal.dumps(code), newline=False).decode("ascii")
        except _NoMain as exc:
            return FAILED, _error(f"Cannot initialize the action: {exc}")
        except _Exited as exited:
            return FAILED, _exited(exited)
        except MemoryError:
            return MEMORY_EXHAUSTED, ""
        except BaseException as exc:  # anything the module raises fails the init
            _write_traceback(exc)
            message = f"{type(exc).__name__}: {exc}"
            if isinstance(exc, ImportError):
                message += UNAVAILABLE_HINT
            return FAILED, _error(f"Cannot initialize the action: {message}")
        finally:
            _flush()

    def run(self, code: str, main: str, params: str, env: str) -> tuple[int, str]:
        try:
            os.environ.update(json.loads(env))
            random.seed()  # the snapshot holds the build's seed: draw a fresh one from WASI
            function = _load(marshal.loads(binascii.a2b_base64(code)), main)
            return _call(function, json.loads(params))
        except _Exited as exited:
            return FAILED, _exited(exited)
        except MemoryError:
            return MEMORY_EXHAUSTED, ""
        except BaseException as exc:  # the module failed this time (init passed)
            _write_traceback(exc)
            return FAILED, _error(f"{type(exc).__name__}: {exc}")
        finally:
            _flush()


class _NoMain(Exception):
    pass


def _load(code: types.CodeType, main: str) -> typing.Callable[[typing.Any], typing.Any]:
    module = types.ModuleType("__main__")
    module.__file__ = "__main__.py"
    sys.modules["__main__"] = module
    exec(code, module.__dict__)  # running the action's code is the point
    function = getattr(module, main, None)
    if not callable(function):
        raise _NoMain(f"the action has no function named {main!r}")
    return typing.cast(typing.Callable[[typing.Any], typing.Any], function)


def _call(function: typing.Callable[[typing.Any], typing.Any], params: typing.Any) -> tuple[int, str]:
    try:
        result = function(params)
    except SystemExit:
        return EXITED, _error(COMMAND_EXITED)
    except (MemoryError, _Exited):
        raise
    except Exception as exc:
        _write_traceback(exc)
        result = {"error": str(exc)}
    if not isinstance(result, (dict, list)):
        return FAILED, _error(NOT_A_DICTIONARY)
    try:
        text = json.dumps(result, ensure_ascii=False, allow_nan=False)
        text.encode()  # a lone surrogate cannot cross as a WIT string: refused here, as before (a ValueError)
        return OK, text
    except (TypeError, ValueError) as exc:
        sys.stderr.write(f"the result is not JSON: {exc}\n")
        return FAILED, _error(NOT_A_DICTIONARY)


def _exited(exited: _Exited) -> str:
    return _error(f"The action exited with status {exited.status}.")


def _error(message: str) -> str:
    return json.dumps({"error": message})


def _write_traceback(exc: BaseException) -> None:
    # From the action's first frame on: the runner's own frames say nothing to the action's author.
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != "__main__.py":
        tb = tb.tb_next
    sys.stderr.write("".join(traceback.format_exception(type(exc), exc, tb)))


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        # A full log stream must not fail the activation.
        with contextlib.suppress(Exception):
            stream.flush()
