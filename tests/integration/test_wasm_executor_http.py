"""The Wasmtime executor as an HTTP service, driven by ``HttpWasmExecutor`` over a real socket."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import orjson
import pytest
import pytest_asyncio

from executor_wasm.client import HttpWasmExecutor
from executor_wasm.executor import WasmExecutor
from executor_wasm.plugin import create_executor
from executor_wasm.settings import WasmSettings, module_cache_dir
from pywhisk.errors import ExecutorError
from pywhisk.executor import ExecutorEnvironment, InitRequest, InstanceSpec, load_executor_factories
from tests.executors import WasmService, free_port, log_text, run_request, wasm_code

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WasmService]:
    executor = WasmExecutor(WasmSettings(), module_cache_dir(tmp_path_factory.mktemp("wasm-http")))
    with WasmService(executor) as running:
        yield running


@pytest_asyncio.fixture(scope="module")
async def client(service: WasmService) -> AsyncIterator[HttpWasmExecutor]:
    remote = HttpWasmExecutor(WasmSettings(executor_url=service.url))
    await remote.start()
    yield remote
    await remote.close()


async def test_health_lists_the_kinds(service: WasmService) -> None:
    async with httpx.AsyncClient(base_url=service.url) as http:
        response = await http.get("/health")
    assert response.status_code == 200
    assert response.json() == {"ok": True, "kinds": ["wasm:default", "wasm:wasi"]}


async def test_hello_round_trips_through_the_service(client: HttpWasmExecutor) -> None:
    await client.create(InstanceSpec(instance_id="hello-1", kind="wasm:wasi", memory_mb=256))
    ready = await client.init("hello-1", InitRequest(name="hello", code=wasm_code("hello")), 10_000, 4096)
    assert (ready.status, ready.body) == (200, '{"ok":true}')
    result = await client.run("hello-1", run_request({"name": "HTTP"}), 10_000, 4096)
    assert result.status == 200
    assert orjson.loads(result.body) == {"greeting": "Hello, HTTP!"}
    assert log_text(result) == [
        "stdout: hello: greeting HTTP",
        "stderr: hello: this line goes to stderr",
    ]
    assert result.duration_ms is not None
    again = await client.init("hello-1", InitRequest(name="hello", code=wasm_code("hello")), 10_000, 4096)
    assert again.status == 403
    await client.destroy("hello-1")
    await client.destroy("hello-1")  # idempotent


async def test_a_timeout_is_reported_through_the_service(client: HttpWasmExecutor) -> None:
    await client.create(InstanceSpec(instance_id="loop-1", kind="wasm:wasi", memory_mb=256))
    await client.init("loop-1", InitRequest(name="loop", code=wasm_code("loop")), 10_000, 4096)
    result = await client.run("loop-1", run_request(), 200, 4096)
    assert result.timed_out and result.status is None
    await client.destroy("loop-1")


async def test_unknown_instances_are_404_and_executor_errors(service: WasmService, client: HttpWasmExecutor) -> None:
    with pytest.raises(ExecutorError, match="404"):
        await client.run("missing", run_request(), 1_000, 4096)
    async with httpx.AsyncClient(base_url=service.url) as http:
        body = {"value": {"name": "x", "code": "AA=="}, "timeout_ms": 1000, "log_limit_bytes": 10}
        response = await http.post("/missing/init", json=body)
    assert response.status_code == 404
    assert "missing" in response.json()["error"]


async def test_a_bad_create_is_an_executor_error(client: HttpWasmExecutor) -> None:
    with pytest.raises(ExecutorError, match="400"):
        await client.create(InstanceSpec(instance_id="py", kind="python:3", memory_mb=256))


async def test_closing_the_client_destroys_its_instances(service: WasmService) -> None:
    remote = HttpWasmExecutor(WasmSettings(), base_url=service.url)
    await remote.start()
    await remote.create(InstanceSpec(instance_id="leftover", kind="wasm:wasi", memory_mb=128))
    await remote.close()
    with pytest.raises(ExecutorError):
        await service.executor.run("leftover", run_request(), 1_000, 10)


async def test_an_unreachable_service_is_an_executor_error() -> None:
    remote = HttpWasmExecutor(WasmSettings(executor_url=f"http://127.0.0.1:{free_port()}"))
    await remote.start()
    try:
        with pytest.raises(ExecutorError, match="wasm executor at"):
            await remote.create(InstanceSpec(instance_id="x", kind="wasm:wasi", memory_mb=128))
    finally:
        await remote.close()


def test_the_plugin_picks_in_process_or_http_from_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    environment = ExecutorEnvironment(data_dir=tmp_path)
    monkeypatch.delenv("PYWHISK_WASM_EXECUTOR_URL", raising=False)
    in_process = create_executor(environment)
    assert isinstance(in_process, WasmExecutor)
    assert in_process.cache.directory == module_cache_dir(tmp_path)
    monkeypatch.setenv("PYWHISK_WASM_EXECUTOR_URL", "http://127.0.0.1:9")
    remote = create_executor(environment)
    assert isinstance(remote, HttpWasmExecutor) and remote.base_url == "http://127.0.0.1:9"
    assert load_executor_factories()["wasm"] is create_executor


@contextlib.contextmanager
def executor_wasm_command(port: int, *args: str, env: dict[str, str]) -> Iterator[httpx.Client]:
    """``pywhisk executor-wasm *args`` in a child process; a client of it once it answers on ``port``."""
    process = subprocess.Popen([sys.executable, "-m", "pywhisk", "executor-wasm", *args], env={**os.environ, **env})
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            deadline = time.monotonic() + 30
            while True:
                assert process.poll() is None, "the service exited"
                assert time.monotonic() < deadline, "the service did not answer"
                try:
                    if http.get("/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.05)  # polls a port another process opens: nothing to wait on instead
            yield http
    finally:
        process.terminate()
        # uvicorn shuts down gracefully (lifespan included), then re-raises the signal it caught.
        assert process.wait(timeout=30) in (0, -signal.SIGTERM)


def test_serve_runs_the_service_on_the_configured_port(tmp_path: Path) -> None:
    port = free_port()
    env = {"PYWHISK_DATA_DIR": str(tmp_path), "PYWHISK_WASM_EXECUTOR_PORT": str(port)}
    with executor_wasm_command(port, env=env) as http:
        assert http.get("/health").json()["ok"] is True


def test_the_port_and_data_dir_options_win_over_the_environment(tmp_path: Path) -> None:
    port = free_port()
    env = {"PYWHISK_DATA_DIR": str(tmp_path / "from-env"), "PYWHISK_WASM_EXECUTOR_PORT": str(free_port())}
    with executor_wasm_command(port, "--port", str(port), "--data-dir", str(tmp_path / "option"), env=env) as http:
        spec = {"instance_id": "hello", "kind": "wasm:wasi", "memory_mb": 128}
        assert http.post("/hello/create", json=spec).status_code == 204
        body = {"value": {"name": "hello", "code": wasm_code("hello")}, "timeout_ms": 30_000, "log_limit_bytes": 10}
        ready = http.post("/hello/init", json=body)
        assert (ready.status_code, ready.json()["status"]) == (200, 200)
    # The module was compiled into the --data-dir's module cache.
    assert list(module_cache_dir(tmp_path / "option").glob("*.cwasm"))
    assert not (tmp_path / "from-env").exists()
