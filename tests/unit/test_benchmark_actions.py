"""Workload parity of the benchmark actions (``actions/``): hello, hash, prime, net, sleep.

Each action exists three times -- ``actions/native/<name>`` (static x86_64 executable for the Docker
native runtime), ``actions/wasm/<name>.wasm`` (kind ``wasm:wasi``), both built from
``actions/src/<name>.c``, and ``actions/python/<name>.py`` (kind ``python:3``) -- and all three must
do the same work and return the same result. These run the real binaries (subprocess) and the real
modules (Wasmtime, in-process); no services.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import redirect_stdout
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import wasmtime

pytestmark = pytest.mark.unit

ACTIONS = Path(__file__).resolve().parents[2] / "actions"
BENCHMARKS = ("hello", "hash", "prime", "net", "sleep")

NATIVE = sys.platform == "linux" and platform.machine() in ("x86_64", "AMD64")
native_only = pytest.mark.skipif(not NATIVE, reason="actions/native/* are x86_64 Linux executables")


class Run:
    """One run of an action: its result (the last stdout line, parsed) and its stdout log lines."""

    def __init__(self, stdout: str, seconds: float) -> None:
        lines = stdout.splitlines()
        assert lines, "no output"
        self.result: dict[str, Any] = json.loads(lines[-1])
        self.logs = lines[:-1]
        self.seconds = seconds


# --- the three ways to run an action --------------------------------------------------------------


def run_native(name: str, params: dict[str, Any] | str, how: str = "argv", stdin: str | None = None) -> Run:
    """Run actions/native/<name>: params as argv[1] (``how="argv"``), on stdin, or both (dockerskeleton)."""
    text = params if isinstance(params, str) else json.dumps(params)
    argv = [str(ACTIONS / "native" / name)]
    if how in ("argv", "both"):
        argv.append(text)
    if stdin is None:
        stdin = text if how in ("stdin", "both") else ""
    start = time.perf_counter()
    done = subprocess.run(argv, input=stdin.encode(), capture_output=True, timeout=60, check=False)
    seconds = time.perf_counter() - start
    assert done.returncode == 0, done.stderr
    return Run(done.stdout.decode(), seconds)


@cache
def engine() -> wasmtime.Engine:
    return wasmtime.Engine()


@cache
def module(name: str) -> wasmtime.Module:
    return wasmtime.Module.from_file(engine(), str(ACTIONS / "wasm" / f"{name}.wasm"))


def run_wasm(name: str, params: dict[str, Any] | str) -> Run:
    """Run actions/wasm/<name>.wasm in Wasmtime with the params on stdin (the WASM executor's ABI)."""
    text = params if isinstance(params, str) else json.dumps(params)
    linker = wasmtime.Linker(engine())
    linker.define_wasi()
    store = wasmtime.Store(engine())
    with tempfile.TemporaryDirectory() as tmp:
        stdin, stdout, stderr = (Path(tmp) / f for f in ("stdin", "stdout", "stderr"))
        stdin.write_bytes(text.encode())
        wasi = wasmtime.WasiConfig()
        wasi.stdin_file = str(stdin)
        wasi.stdout_file = str(stdout)
        wasi.stderr_file = str(stderr)
        store.set_wasi(wasi)
        start = time.perf_counter()
        instance = linker.instantiate(store, module(name))
        entry = instance.exports(store)["_start"]
        assert isinstance(entry, wasmtime.Func)
        try:
            entry(store)
        except wasmtime.ExitTrap as exit_trap:
            assert exit_trap.code == 0, stderr.read_text()
        seconds = time.perf_counter() - start
        return Run(stdout.read_text(), seconds)


@cache
def python_main(name: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    spec = importlib.util.spec_from_file_location(f"benchmark_action_{name}", ACTIONS / "python" / f"{name}.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    main: Callable[[dict[str, Any]], dict[str, Any]] = mod.main
    return main


def run_python(name: str, params: dict[str, Any] | str) -> Run:
    """Call main(args) of actions/python/<name>.py as the python:3 runtime does."""
    args = json.loads(params) if isinstance(params, str) else params
    out = io.StringIO()
    start = time.perf_counter()
    with redirect_stdout(out):
        result = python_main(name)(args)
    seconds = time.perf_counter() - start
    # Normalise through JSON, as the runtime sends the result back as JSON.
    return Run(out.getvalue() + json.dumps(result) + "\n", seconds)


def run_all(name: str, params: dict[str, Any] | str) -> dict[str, Run]:
    runs = {"wasm": run_wasm(name, params), "python": run_python(name, params)}
    if NATIVE:
        for how in ("argv", "stdin", "both"):
            runs[f"native-{how}"] = run_native(name, params, how)
    return runs


def same_everywhere(name: str, params: dict[str, Any] | str, logs: bool = True) -> dict[str, Run]:
    """Run `name` every way; assert identical results (and stdout log lines); return the runs."""
    runs = run_all(name, params)
    results = {how: run.result for how, run in runs.items()}
    assert len({json.dumps(r, sort_keys=True) for r in results.values()}) == 1, results
    if logs:
        log_lines = {how: run.logs for how, run in runs.items()}
        assert len({tuple(lines) for lines in log_lines.values()}) == 1, log_lines
    return runs


# --- artifacts ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", BENCHMARKS)
def test_every_benchmark_has_its_source_and_three_artifacts(name: str) -> None:
    assert (ACTIONS / "src" / f"{name}.c").is_file()
    assert (ACTIONS / "wasm" / f"{name}.wasm").read_bytes()[:4] == b"\0asm"
    native = ACTIONS / "native" / name
    head = native.read_bytes()[:20]
    assert head[:4] == b"\x7fELF"
    assert head[4] == 2 and head[18] == 0x3E  # ELFCLASS64, EM_X86_64 (little-endian e_machine)
    assert native.stat().st_mode & 0o111, "native action is not executable"
    assert (ACTIONS / "python" / f"{name}.py").is_file()


@native_only
def test_native_actions_are_fully_static() -> None:
    # No PT_INTERP program header -> no dynamic loader needed: runs in any image.
    for name in BENCHMARKS:
        data = (ACTIONS / "native" / name).read_bytes()
        phoff = int.from_bytes(data[32:40], "little")
        phentsize = int.from_bytes(data[54:56], "little")
        phnum = int.from_bytes(data[56:58], "little")
        types = [
            int.from_bytes(data[phoff + i * phentsize : phoff + i * phentsize + 4], "little") for i in range(phnum)
        ]
        assert 3 not in types, f"{name} has a PT_INTERP (dynamically linked)"


# --- hash -----------------------------------------------------------------------------------------


def reference_hash(text: str, iterations: int) -> str:
    """The documented definition: d1 = sha256(utf8(input)); d(k+1) = sha256(d(k)) raw; hex(d(n))."""
    digest = hashlib.sha256(text.encode()).digest()
    for _ in range(iterations - 1):
        digest = hashlib.sha256(digest).digest()
    return digest.hex()


# FIPS 180-2 / NIST known answers.
SHA256_KAT = {
    "abc": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    "": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq": (
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
    ),
}


@pytest.mark.parametrize("text", list(SHA256_KAT))
def test_sha256_known_answers(text: str) -> None:
    runs = same_everywhere("hash", {"input": text, "iterations": 1})
    assert runs["wasm"].result == {"hash": SHA256_KAT[text], "iterations": 1}


def test_sha256_known_answer_million_a() -> None:
    params = json.dumps({"input": "a" * 1_000_000, "iterations": 1})  # too long for argv: stdin only
    expected = {"hash": "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0", "iterations": 1}
    assert run_wasm("hash", params).result == expected
    assert run_python("hash", params).result == expected
    if NATIVE:
        assert run_native("hash", params, "stdin").result == expected


@pytest.mark.parametrize("length", [55, 56, 57, 63, 64, 65, 119, 120, 128, 1000])
def test_sha256_padding_boundaries(length: int) -> None:
    text = "".join(chr(ord("a") + i % 26) for i in range(length))
    assert run_wasm("hash", {"input": text, "iterations": 1}).result["hash"] == reference_hash(text, 1)
    if NATIVE:
        assert run_native("hash", {"input": text, "iterations": 1}).result["hash"] == reference_hash(text, 1)


@pytest.mark.parametrize(
    ("params", "text", "n"),
    [
        ({"input": "abc", "iterations": 1}, "abc", 1),
        ({"input": "abc", "iterations": 10}, "abc", 10),
        ({"input": "pywhisk", "iterations": 1000}, "pywhisk", 1000),
        ({}, "pywhisk", 1000),  # the defaults
        ({"input": "héllo wörld ✓ 🚀 中文", "iterations": 10}, "héllo wörld ✓ 🚀 中文", 10),
        ({"input": 'tab\tquote"back\\slash', "iterations": 2}, 'tab\tquote"back\\slash', 2),
        ({"input": 42, "iterations": 3}, "pywhisk", 3),  # non-string input -> default
        ({"input": "x", "iterations": "10"}, "x", 10),  # numeric string
        ({"input": "x", "iterations": 10.9}, "x", 10),  # truncated
        ({"input": "x", "iterations": 0}, "x", 1),  # clamped to >= 1
        ({"input": "x", "iterations": -5}, "x", 1),
        ({"input": "x", "iterations": True}, "x", 1000),  # not a number -> default
    ],
)
def test_hash_is_the_same_everywhere(params: dict[str, Any], text: str, n: int) -> None:
    runs = same_everywhere("hash", params)
    assert runs["wasm"].result == {"hash": reference_hash(text, n), "iterations": n}
    assert runs["wasm"].logs == [f"hash: {n} x sha256 over {len(text.encode())} input bytes"]


def test_hash_unicode_as_raw_utf8_json() -> None:
    """Non-ASCII sent as raw UTF-8 (not \\u escapes) hashes the same bytes."""
    text = "naïve café 🚀"
    params = json.dumps({"input": text, "iterations": 5}, ensure_ascii=False)
    runs = same_everywhere("hash", params)
    assert runs["wasm"].result["hash"] == reference_hash(text, 5)


# --- prime ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "n", "prime"),
    [
        ({"n": 1}, 1, 2),
        ({"n": 2}, 2, 3),
        ({"n": 3}, 3, 5),
        ({"n": 10}, 10, 29),
        ({"n": 100}, 100, 541),
        ({"n": 1000}, 1000, 7919),
        ({"n": "10"}, 10, 29),
        ({"n": 0}, 1, 2),
        ({"n": -3}, 1, 2),
        ({"n": 25.5}, 25, 97),
    ],
)
def test_prime_is_the_same_everywhere(params: dict[str, Any], n: int, prime: int) -> None:
    runs = same_everywhere("prime", params)
    assert runs["wasm"].result == {"prime": prime, "n": n}
    assert runs["wasm"].logs == [f"prime: searching for prime #{n}"]


def test_prime_default_is_the_10000th() -> None:
    # Native and WASM only: the interpreted twin takes ~0.1-0.3 s for this.
    assert run_wasm("prime", {}).result == {"prime": 104729, "n": 10000}
    if NATIVE:
        assert run_native("prime", {}).result == {"prime": 104729, "n": 10000}


# --- net and sleep --------------------------------------------------------------------------------


@pytest.mark.parametrize("ms", [0, 30, 80])
def test_net_blocks_for_ms_everywhere(ms: int) -> None:
    runs = same_everywhere("net", {"ms": ms})
    assert runs["wasm"].result == {"blocked_ms": ms}
    assert runs["wasm"].logs == [f"net: blocking {ms} ms"]
    for how, run in runs.items():
        assert run.seconds >= ms / 1000, f"{how} returned after {run.seconds * 1000:.1f} ms"


@pytest.mark.parametrize("ms", [0, 30, 80])
def test_sleep_sleeps_for_ms_everywhere(ms: int) -> None:
    runs = same_everywhere("sleep", {"ms": ms})
    assert runs["wasm"].result == {"slept": ms}
    assert runs["wasm"].logs == [f"sleep: sleeping {ms} ms"]
    for how, run in runs.items():
        assert run.seconds >= ms / 1000, f"{how} returned after {run.seconds * 1000:.1f} ms"


@pytest.mark.parametrize(("name", "key", "default"), [("net", "blocked_ms", 300), ("sleep", "slept", 5000)])
def test_blocking_defaults_are_documented_values(name: str, key: str, default: int) -> None:
    # Check the default without waiting it out: every twin logs it before blocking.
    py = (ACTIONS / "python" / f"{name}.py").read_text()
    src = (ACTIONS / "src" / f"{name}.c").read_text()
    assert f"ms = {default}" in py
    assert f"long long ms = {default};" in src
    if name == "net":  # 300 ms is short enough to run
        runs = same_everywhere("net", {})
        assert runs["wasm"].result == {key: default}
        assert all(run.seconds >= 0.3 for run in runs.values())


# --- hello ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "greeting"),
    [({"name": "Ada"}, "Hello, Ada!"), ({}, "Hello, stranger!"), ({"name": "Zoë 🚀"}, "Hello, Zoë 🚀!")],
)
def test_hello_is_the_same_everywhere(params: dict[str, Any], greeting: str) -> None:
    runs = same_everywhere("hello", params, logs=False)  # python/hello.py logs nothing
    assert runs["wasm"].result == {"greeting": greeting}


# --- the native ABI: argv[1] if present, else stdin -----------------------------------------------


@native_only
def test_native_argv_takes_precedence_over_stdin() -> None:
    run = run_native("prime", {"n": 10}, "argv", stdin=json.dumps({"n": 3}))
    assert run.result == {"prime": 29, "n": 10}
    run = run_native("prime", {"n": 3}, "stdin")
    assert run.result == {"prime": 5, "n": 3}


@native_only
def test_native_without_params_uses_defaults() -> None:
    assert run_native("hash", "", "stdin").result == {"hash": reference_hash("pywhisk", 1000), "iterations": 1000}


@native_only
def test_native_echo_returns_argv_params() -> None:
    # Every src/*.c is built natively; echo proves the argv[1] -> stdin shim passes the bytes unchanged.
    params = {"a": [1, {"b": "ü\n"}], "c": None}
    assert run_native("echo", params, "argv").result == params
