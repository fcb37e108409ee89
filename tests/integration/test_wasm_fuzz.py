"""Fuzzing the WASM executor: random and mutated module bytes, random params, and hostile code (hypothesis).

The hostile classes (tests/hostile.py, generated, never checked in): zip bombs of every compression method
with lying or honest headers, modules with many memories or big or many tables, and host calls with
huge counts, lengths and pointers. Each must end as a proxy result, and the process's peak RSS must stay
within a generous bound of what its budgets allow.

The executor runs as a real ``pywhisk executor-wasm`` process, so a crash of Wasmtime (a segfault, an
abort, a Rust panic across the FFI) ends the process and fails the test, instead of taking pytest
down with it. Every init and run must answer with a proxy result (a ``ProxyResult``), never an HTTP
error, and the process must still be healthy at the end.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import wasmtime
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pywhisk.executor import ProxyResult
from tests import hostile
from tests.conftest import WASM_DIR, free_port

pytestmark = pytest.mark.integration

EXAMPLES = 150
HOSTILE_EXAMPLES = 60
MAX_MODULE = 8 * 1_048_576  # the executor's unzip budget here, so that bombs beyond it are cheap to build
# Small modules whose mutations still parse often: they exercise validation, linking and running.
SEEDS = ["hello", "echo", "trap", "exit1", "badjson", "apperror", "logs"]


@dataclass
class ExecutorProcess:
    process: subprocess.Popen[bytes]
    url: str
    log: Path


@pytest.fixture(scope="module")
def executor_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExecutorProcess]:
    data_dir = tmp_path_factory.mktemp("wasm-fuzz")
    port = free_port()
    log = data_dir / "executor.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "pywhisk", "executor-wasm", "--port", str(port), "--data-dir", str(data_dir)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYWHISK_WASM_THREADS": "2", "PYWHISK_WASM_MAX_MODULE_BYTES": str(MAX_MODULE)},
        )
    running = ExecutorProcess(process, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + 30
    while True:
        assert process.poll() is None, f"the executor exited:\n{log.read_text()}"
        try:
            if httpx.get(f"{running.url}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            assert time.monotonic() < deadline, "the executor did not answer within 30 s"
            time.sleep(0.05)
    yield running
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def seed(name: str) -> bytes:
    return (WASM_DIR / f"{name}.wasm").read_bytes()


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A sample module with a few bytes flipped, spliced in, cut out or truncated."""
    data = bytearray(seed(draw(st.sampled_from(SEEDS))))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data) - 1))
        match draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"])):
            case "flip":
                data[at] ^= 1 << draw(st.integers(0, 7))
            case "set":
                data[at] = draw(st.integers(0, 255))
            case "insert":
                data[at:at] = draw(st.binary(min_size=1, max_size=16))
            case "delete":
                del data[at : at + draw(st.integers(1, 16))]
            case "truncate":
                del data[max(8, at) :]
        if not data:
            break
    return bytes(data)


MODULES = st.one_of(
    st.binary(max_size=256),  # mostly not WebAssembly at all
    st.binary(max_size=256).map(lambda tail: b"\0asm\x01\0\0\0" + tail),  # a header, then noise
    mutated(),
    mutated(),
    st.sampled_from(SEEDS).map(seed),  # valid modules, to fuzz the params
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
PARAMS = st.dictionaries(st.sampled_from(["name", "count", "ms", "n", "x"]) | st.text(max_size=8), JSON, max_size=5)


def proxy_result(response: httpx.Response) -> ProxyResult:
    assert response.status_code == 200, response.text
    return ProxyResult.model_validate_json(response.content)


@settings(max_examples=EXAMPLES, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
@given(module=MODULES, params=PARAMS, memory_mb=st.sampled_from([1, 16, 128]))
def test_any_module_and_params_get_a_proxy_result_and_never_crash_the_executor(
    executor_process: ExecutorProcess, module: bytes, params: dict[str, Any], memory_mb: int
) -> None:
    instance = uuid.uuid4().hex
    with httpx.Client(base_url=executor_process.url, timeout=30) as client:
        spec = {"instance_id": instance, "kind": "wasm:wasi", "memory_mb": memory_mb}
        assert client.post(f"/{instance}/create", json=spec).status_code == 204
        try:
            code = base64.b64encode(module).decode()
            init = {"value": {"name": "fuzz", "code": code}, "timeout_ms": 5000, "log_limit_bytes": 4096}
            initialised = proxy_result(client.post(f"/{instance}/init", json=init))
            if module:
                assert initialised.status in (200, 502) or initialised.timed_out, initialised
            else:  # OpenWhisk's answer to an init without code
                assert initialised.status == 403 and initialised.body == '{"error":"Missing main/no code to execute."}'
            run = {
                "run": {
                    "value": params,
                    "namespace": "guest",
                    "action_name": "/guest/fuzz",
                    "action_version": "0.0.1",
                    "activation_id": uuid.uuid4().hex,
                    "transaction_id": "fuzz",
                    "deadline": "0",
                },
                "timeout_ms": 200,
                "log_limit_bytes": 4096,
            }
            ran = proxy_result(client.post(f"/{instance}/run", json=run))
            if initialised.status == 200:
                assert ran.status in (200, 502) or ran.timed_out or ran.memory_exhausted, ran
            else:
                assert ran.status == 500 and ran.body == '{"error":"no action defined yet"}'
        finally:
            assert client.post(f"/{instance}/destroy").status_code == 204
    assert executor_process.process.poll() is None, executor_process.log.read_text()


def assembled(text: str) -> bytes:
    return bytes(wasmtime.wat2wasm(text))


I32 = st.integers(-(2**31), 2**31 - 1)
U31 = st.integers(0, 2**31 - 1)
HOSTILE = st.one_of(
    st.builds(
        lambda method, lying, times: hostile.zip_bomb(
            method, times * MAX_MODULE, declared_size=1_000 if lying else None
        ),
        st.sampled_from(sorted(hostile.METHODS)),
        st.booleans(),
        st.sampled_from([2, 4]),
    ),
    st.builds(lambda count: hostile.many_members(count), st.sampled_from([1_025, 5_000])),
    st.builds(lambda levels: hostile.nested_zip(levels, seed("hello")), st.integers(1, 4)),
    st.builds(
        lambda count, pages: assembled(hostile.multi_memory(count, pages)), st.integers(1, 6), st.integers(1, 64)
    ),
    st.builds(lambda count: assembled(hostile.growing_memories(count)), st.integers(1, 4)),
    st.builds(lambda elements: assembled(hostile.big_table(elements)), st.integers(1, 50_000_000)),
    st.builds(lambda count: assembled(hostile.many_tables(count)), st.integers(1, 40)),
    st.just(assembled(hostile.growing_table())),
    st.builds(lambda count, at: assembled(hostile.poll_oneoff(count, at)), I32, U31),
    st.builds(lambda count, length: assembled(hostile.fd_write(count, length)), U31, U31),
    st.builds(lambda length: assembled(hostile.random_get(length)), st.integers(0, 4 * 1_048_576)),
)


@settings(max_examples=HOSTILE_EXAMPLES, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
@given(module=HOSTILE, memory_mb=st.sampled_from([1, 16, 128]))
def test_hostile_code_gets_a_proxy_result_within_its_limits(
    executor_process: ExecutorProcess, module: bytes, memory_mb: int
) -> None:
    instance = uuid.uuid4().hex
    with httpx.Client(base_url=executor_process.url, timeout=30) as client:
        spec = {"instance_id": instance, "kind": "wasm:wasi", "memory_mb": memory_mb}
        assert client.post(f"/{instance}/create", json=spec).status_code == 204
        try:
            init = {"value": {"name": "hostile", "code": base64.b64encode(module).decode()}, "timeout_ms": 5000}
            initialised = proxy_result(client.post(f"/{instance}/init", json={**init, "log_limit_bytes": 4096}))
            assert initialised.status in (200, 502) or initialised.timed_out, initialised
            if initialised.status != 200:
                return
            run = {
                "run": {
                    "value": {},
                    "namespace": "guest",
                    "action_name": "/guest/hostile",
                    "action_version": "0.0.1",
                    "activation_id": uuid.uuid4().hex,
                    "transaction_id": "fuzz",
                    "deadline": "0",
                },
                "timeout_ms": 300,
                "log_limit_bytes": 4096,
            }
            started = time.monotonic()
            ran = proxy_result(client.post(f"/{instance}/run", json=run))
            assert ran.status in (200, 502) or ran.timed_out or ran.memory_exhausted, ran
            assert time.monotonic() - started < 5, "a host call held the run far past its deadline"
        finally:
            assert client.post(f"/{instance}/destroy").status_code == 204
    assert executor_process.process.poll() is None, executor_process.log.read_text()


def test_the_executor_survived_the_fuzzing(executor_process: ExecutorProcess) -> None:
    # Runs after the fuzz test (file order): the same process still serves a valid module.
    assert executor_process.process.poll() is None
    with httpx.Client(base_url=executor_process.url, timeout=30) as client:
        assert client.get("/health").status_code == 200
        instance = uuid.uuid4().hex
        client.post(f"/{instance}/create", json={"instance_id": instance, "kind": "wasm:wasi", "memory_mb": 128})
        init = {"value": {"name": "hello", "code": base64.b64encode(seed("hello")).decode()}}
        assert proxy_result(client.post(f"/{instance}/init", json={**init, "timeout_ms": 5000, "log_limit_bytes": 0}))
        run = {
            "run": {
                "value": {"name": "fuzz"},
                "namespace": "guest",
                "action_name": "/guest/hello",
                "action_version": "0.0.1",
                "activation_id": uuid.uuid4().hex,
                "transaction_id": "fuzz",
                "deadline": "0",
            },
            "timeout_ms": 5000,
            "log_limit_bytes": 0,
        }
        assert proxy_result(client.post(f"/{instance}/run", json=run)).body == '{"greeting": "Hello, fuzz!"}'

    # Budgets: 2 runs at once of at most 128 MiB guests, unzips of 8 MiB; Wasmtime and Python themselves.
    status = Path(f"/proc/{executor_process.process.pid}/status").read_text()
    peak_kib = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))
    assert peak_kib < 1024 * 1024, f"the executor's peak RSS was {peak_kib} KiB"
