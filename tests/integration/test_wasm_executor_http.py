"""The Wasmtime executor as an HTTP service, driven by ``HttpWasmExecutor`` over a real socket."""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import orjson
import pytest
import pytest_asyncio
import uvicorn

from executor_wasm.client import HttpWasmExecutor
from executor_wasm.executor import WasmExecutor
from executor_wasm.plugin import create_executor
from executor_wasm.service import create_app
from pywhisk.errors import ExecutorError
from pywhisk.executor import InitRequest, InstanceSpec, RunRequest, load_executor_factories
from pywhisk.settings import Settings

pytestmark = pytest.mark.integration

WASM_DIR = Path(__file__).resolve().parents[2] / "actions" / "wasm"


def action_code(name: str) -> str:
    path = WASM_DIR / f"{name}.wasm"
    if not path.exists():
        pytest.skip(f"{path} is not built (run actions/build.sh)")
    return base64.b64encode(path.read_bytes()).decode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_request(value: dict[str, object] | None = None) -> RunRequest:
    return RunRequest(
        value=value or {},
        namespace="guest",
        action_name="/guest/http",
        action_version="0.0.1",
        activation_id=uuid.uuid4().hex,
        transaction_id="tid",
        deadline=str(int(time.time() * 1000) + 60_000),
    )


class Service:
    """The executor service on a free port, served by uvicorn in a thread."""

    def __init__(self, settings: Settings) -> None:
        self.executor = WasmExecutor(settings)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(create_app(settings, self.executor), port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="wasm-service", daemon=True)

    def __enter__(self) -> Service:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "the service did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with Service(Settings(data_dir=tmp_path_factory.mktemp("wasm-http"))) as running:
        yield running


@pytest_asyncio.fixture(scope="module")
async def client(service: Service) -> AsyncIterator[HttpWasmExecutor]:
    remote = HttpWasmExecutor(Settings(wasm_executor_url=service.url))
    await remote.start()
    yield remote
    await remote.close()


async def test_health_lists_the_kinds(service: Service) -> None:
    async with httpx.AsyncClient(base_url=service.url) as http:
        response = await http.get("/health")
    assert response.status_code == 200
    assert response.json() == {"ok": True, "kinds": ["wasm:default", "wasm:wasi"]}


async def test_hello_round_trips_through_the_service(client: HttpWasmExecutor) -> None:
    await client.create(InstanceSpec(instance_id="hello-1", kind="wasm:wasi", memory_mb=256))
    ready = await client.init("hello-1", InitRequest(name="hello", code=action_code("hello")), 10_000, 4096)
    assert (ready.status, ready.body) == (200, '{"ok":true}')
    result = await client.run("hello-1", run_request({"name": "HTTP"}), 10_000, 4096)
    assert result.status == 200
    assert orjson.loads(result.body) == {"greeting": "Hello, HTTP!"}
    assert [line[31:] for line in result.logs] == [
        "stdout: hello: greeting HTTP",
        "stderr: hello: this line goes to stderr",
    ]
    assert result.duration_ms is not None
    again = await client.init("hello-1", InitRequest(name="hello", code=action_code("hello")), 10_000, 4096)
    assert again.status == 403
    await client.destroy("hello-1")
    await client.destroy("hello-1")  # idempotent


async def test_a_timeout_is_reported_through_the_service(client: HttpWasmExecutor) -> None:
    await client.create(InstanceSpec(instance_id="loop-1", kind="wasm:wasi", memory_mb=256))
    await client.init("loop-1", InitRequest(name="loop", code=action_code("loop")), 10_000, 4096)
    result = await client.run("loop-1", run_request(), 200, 4096)
    assert result.timed_out and result.status is None
    await client.destroy("loop-1")


async def test_unknown_instances_are_404_and_executor_errors(service: Service, client: HttpWasmExecutor) -> None:
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


async def test_closing_the_client_destroys_its_instances(service: Service) -> None:
    remote = HttpWasmExecutor(Settings(), base_url=service.url)
    await remote.start()
    await remote.create(InstanceSpec(instance_id="leftover", kind="wasm:wasi", memory_mb=128))
    await remote.close()
    with pytest.raises(ExecutorError):
        await service.executor.run("leftover", run_request(), 1_000, 10)


async def test_an_unreachable_service_is_an_executor_error() -> None:
    remote = HttpWasmExecutor(Settings(wasm_executor_url=f"http://127.0.0.1:{free_port()}"))
    await remote.start()
    try:
        with pytest.raises(ExecutorError, match="wasm executor at"):
            await remote.create(InstanceSpec(instance_id="x", kind="wasm:wasi", memory_mb=128))
    finally:
        await remote.close()


def test_the_plugin_picks_in_process_or_http_from_settings() -> None:
    assert isinstance(create_executor(Settings()), WasmExecutor)
    assert isinstance(create_executor(Settings(wasm_executor_url="http://127.0.0.1:9")), HttpWasmExecutor)
    assert load_executor_factories()["wasm"] is create_executor


def test_serve_runs_the_service_on_the_configured_port(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "PYWHISK_DATA_DIR": str(tmp_path), "PYWHISK_WASM_EXECUTOR_PORT": str(port)}
    code = "from executor_wasm.service import serve; from pywhisk.settings import Settings; serve(Settings())"
    process = subprocess.Popen([sys.executable, "-c", code], env=env)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, "the service exited"
            assert time.monotonic() < deadline, "the service did not answer"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
    finally:
        process.terminate()
        # uvicorn shuts down gracefully (lifespan included), then re-raises the signal it caught.
        assert process.wait(timeout=30) in (0, -signal.SIGTERM)
