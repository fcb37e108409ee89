"""The executor contract: what every ``Executor`` shows through the seam, run against each executor.

The ``case`` fixture is parametrized over every executor: the in-process Wasmtime executor, the HTTP
client driving the ``pywhisk executor-wasm`` service, the Docker executor (``docker`` marker), and the
unit tests' ``ScriptedExecutor`` (``unit`` marker), so that the double keeps behaving like the real ones.
The double is a script of outcomes, not a sandbox: the behaviours it cannot show (limits it would have to
enforce, refusals it never makes) run against the real executors only (``REAL``). A new executor plugin
without a case here fails ``test_every_installed_plugin_has_a_case``, so none is left out silently.
Executor-specific behaviour stays in each executor's own module (test_wasm_executor.py, ...).
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
import pytest_asyncio

from executor_docker.executor import DockerExecutor
from executor_docker.plugin import create_executor as create_docker_executor
from executor_docker.settings import DockerSettings
from executor_wasm.client import HttpWasmExecutor
from executor_wasm.python.executor import WasmPythonExecutor
from executor_wasm.settings import WasmSettings, module_cache_dir
from pywhisk.activation import Messages
from pywhisk.errors import ExecutorError
from pywhisk.executor import (
    Executor,
    ExecutorEnvironment,
    InitRequest,
    InstanceSpec,
    ProxyResult,
    load_executor_factories,
)
from tests.docker_service import docker_daemon  # noqa: F401
from tests.doubles import ScriptedExecutor
from tests.executors import LOG_LIMIT, WasmService, log_text, run_request, wasm_code

PYTHON = Path(__file__).resolve().parents[2] / "actions" / "python"
# OpenWhisk's log line: an ISO timestamp in UTC, padding, the stream, the text (format_log_line).
LOG_LINE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z +(stdout|stderr): .*")


def greeting(params: dict[str, Any]) -> object:
    """What the hello sample action (actions/src/hello.c, actions/python/hello.py) answers."""
    return {"greeting": f"Hello, {params['name']}!"}


@dataclass(frozen=True)
class ExecutorCase:
    """One executor under the contract, started, with the actions the contract needs in its kind."""

    executor: Executor
    kind: str
    hello: InitRequest  # answers hello_result(params)
    hello_result: Callable[[dict[str, Any]], object]
    spin: InitRequest  # never answers
    broken: InitRequest  # cannot be initialised
    chatty: InitRequest | None = None  # prints ``count`` log lines; None for the double
    annotations: dict[str, Any] = field(default_factory=dict)  # of every instance (docker_direct: network false)


def wasm_case_of(executor: Executor) -> ExecutorCase:
    """A WASM executor with the sample actions of actions/wasm."""
    return ExecutorCase(
        executor=executor,
        kind="wasm:wasi",
        hello=InitRequest(name="hello", code=wasm_code("hello"), binary=True),
        hello_result=greeting,
        spin=InitRequest(name="loop", code=wasm_code("loop"), binary=True),
        broken=InitRequest(name="broken", code="AAAA", binary=True),  # base64 of three zero bytes: no module
        chatty=InitRequest(name="logs", code=wasm_code("logs"), binary=True),
    )


@pytest_asyncio.fixture(scope="module")
async def wasm_case(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ExecutorCase]:
    """The in-process Wasmtime executor, as the plugin builds it without an executor URL."""
    executor = WasmPythonExecutor(WasmSettings(threads=2), module_cache_dir(tmp_path_factory.mktemp("contract")))
    await executor.start()
    yield wasm_case_of(executor)
    await executor.close()


@pytest.fixture(scope="module")
def wasm_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WasmService]:
    executor = WasmPythonExecutor(WasmSettings(threads=2), module_cache_dir(tmp_path_factory.mktemp("service")))
    with WasmService(executor) as running:
        yield running


@pytest_asyncio.fixture(scope="module")
async def wasm_http_case(wasm_service: WasmService) -> AsyncIterator[ExecutorCase]:
    """The HTTP client of the executor service (the plugin with ``PYWHISK_WASM_EXECUTOR_URL``)."""
    executor = HttpWasmExecutor(WasmSettings(executor_url=wasm_service.url))
    await executor.start()
    yield wasm_case_of(executor)
    await executor.close()


@pytest_asyncio.fixture(scope="module")
async def docker_case(
    docker_daemon: object,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[ExecutorCase]:
    """The Docker executor, built by its plugin, on pywhisk's Python runtime image."""
    executor = create_docker_executor(ExecutorEnvironment(data_dir=tmp_path_factory.mktemp("docker")))
    await executor.start()
    chatty = "def main(args):\n    for n in range(args['count']):\n        print('line', n)\n    return {}\n"
    yield ExecutorCase(
        executor=executor,
        kind="python:3",
        hello=InitRequest(name="hello", code=(PYTHON / "hello.py").read_text()),
        hello_result=greeting,
        spin=InitRequest(name="spin", code="def main(args):\n    while True:\n        pass\n"),
        broken=InitRequest(name="broken", code="def main(args) this is not python\n"),
        chatty=InitRequest(name="chatty", code=chatty),
    )
    await executor.close()


@pytest_asyncio.fixture(scope="module")
async def docker_direct_case(docker_case: ExecutorCase) -> AsyncIterator[ExecutorCase]:
    """The Docker executor's crun-direct engine (no dockerd for actions annotated ``network: false``)."""
    if shutil.which("crun") is None:
        pytest.skip("crun is not installed (deploy/local/dockerd.sh up installs it)")
    assert isinstance(docker_case.executor, DockerExecutor)
    state_dir = Path(tempfile.mkdtemp(prefix="oci", dir="/tmp"))  # short: the proxy's socket is under it
    environment = docker_case.executor.environment.model_copy(update={"invoker_id": 27})
    settings = DockerSettings(engine="crun-direct", oci_state_dir=state_dir)
    executor = DockerExecutor(environment, docker_case.executor.host.client, settings=settings)
    await executor.start()
    yield dataclasses.replace(docker_case, executor=executor, annotations={"network": False})
    await executor.close()
    shutil.rmtree(state_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def scripted_case() -> ExecutorCase:
    """The unit tests' double: its behaviours are named by the action's code."""
    return ExecutorCase(
        executor=ScriptedExecutor(),
        kind="wasm:wasi",
        hello=InitRequest(name="hello", code="echo"),
        hello_result=lambda params: params,
        spin=InitRequest(name="spin", code="timeout"),
        broken=InitRequest(name="broken", code="fail-init"),
    )


REAL = [
    pytest.param("wasm", marks=pytest.mark.integration),
    pytest.param("wasm_http", marks=pytest.mark.integration),
    pytest.param("docker", marks=[pytest.mark.integration, pytest.mark.docker]),
    pytest.param("docker_direct", marks=[pytest.mark.integration, pytest.mark.docker]),
]
ALL = [*REAL, pytest.param("scripted", marks=pytest.mark.unit)]
# The cases of each installed executor plugin (entry point name).
PLUGIN_CASES = {"wasm": ["wasm", "wasm_http"], "docker": ["docker", "docker_direct"]}


@pytest.fixture(params=ALL)
def case(request: pytest.FixtureRequest) -> ExecutorCase:
    """Each executor in turn (``REAL`` ones only where a test is parametrized with them)."""
    found: ExecutorCase = request.getfixturevalue(f"{request.param}_case")
    return found


async def deploy(case: ExecutorCase, init: InitRequest) -> tuple[str, ProxyResult]:
    """Create an instance of the case's kind and send it ``init``."""
    instance_id = uuid.uuid4().hex
    spec = InstanceSpec(instance_id=instance_id, kind=case.kind, memory_mb=256, annotations=case.annotations)
    await case.executor.create(spec)
    return instance_id, await case.executor.init(instance_id, init, 30_000, LOG_LIMIT)


# --- every executor --------------------------------------------------------------------------------


@pytest.mark.unit
def test_every_installed_plugin_has_a_case() -> None:
    assert set(load_executor_factories()) <= set(PLUGIN_CASES), "an executor plugin has no case in the contract"
    real = {param.values[0] for param in REAL}
    assert {case for cases in PLUGIN_CASES.values() for case in cases} == real


async def test_an_executor_names_itself_and_the_kinds_it_serves(case: ExecutorCase) -> None:
    kinds = case.executor.kinds()
    assert isinstance(case.executor.name, str) and case.executor.name
    assert kinds and all(isinstance(kind, str) for kind in kinds)
    assert case.kind in kinds
    assert isinstance(case.executor, Executor)


async def test_hello_goes_through_create_init_run_destroy(case: ExecutorCase) -> None:
    instance_id, ready = await deploy(case, case.hello)
    try:
        assert ready.status == 200, ready
        cold = await case.executor.run(instance_id, run_request({"name": "Ada"}), 10_000, LOG_LIMIT)
        warm = await case.executor.run(instance_id, run_request({"name": "Grace"}), 10_000, LOG_LIMIT)
    finally:
        await case.executor.destroy(instance_id)
    assert (cold.status, orjson.loads(cold.body)) == (200, case.hello_result({"name": "Ada"}))
    assert (warm.status, orjson.loads(warm.body)) == (200, case.hello_result({"name": "Grace"}))


async def test_a_run_result_has_the_proxy_shape(case: ExecutorCase) -> None:
    instance_id, _ = await deploy(case, case.hello)
    try:
        result = await case.executor.run(instance_id, run_request({"name": "shape"}), 10_000, LOG_LIMIT)
    finally:
        await case.executor.destroy(instance_id)
    assert result.status == 200
    assert isinstance(orjson.loads(result.body), dict | list)
    assert all(LOG_LINE.fullmatch(line) for line in result.logs), result.logs
    assert not (result.timed_out or result.memory_exhausted or result.exited)
    assert result.duration_ms is None or result.duration_ms > 0
    assert result.queued_ms >= 0


async def test_destroy_is_idempotent(case: ExecutorCase) -> None:
    instance_id, _ = await deploy(case, case.hello)
    await case.executor.destroy(instance_id)
    await case.executor.destroy(instance_id)
    await case.executor.destroy(f"never-created-{uuid.uuid4().hex}")


async def test_a_run_past_its_timeout_is_timed_out_without_an_answer(case: ExecutorCase) -> None:
    instance_id, ready = await deploy(case, case.spin)
    assert ready.status == 200, ready
    started = time.monotonic()
    try:
        result = await case.executor.run(instance_id, run_request(), 500, LOG_LIMIT)
    finally:
        await case.executor.destroy(instance_id)
    assert (result.status, result.timed_out) == (None, True)
    assert time.monotonic() - started < 5.0  # answered soon after the timeout, not when the action ends


async def test_a_failed_init_answers_with_an_error(case: ExecutorCase) -> None:
    instance_id, ready = await deploy(case, case.broken)
    await case.executor.destroy(instance_id)
    assert ready.status is not None and ready.status >= 400
    assert "error" in orjson.loads(ready.body)


# --- the real executors (behaviours a script of outcomes does not show) ----------------------------


@pytest.mark.parametrize("case", REAL, indirect=True)
async def test_logs_past_the_limit_end_with_openwhisks_notice(case: ExecutorCase) -> None:
    assert case.chatty is not None
    limit = 256
    instance_id, ready = await deploy(case, case.chatty)
    try:
        assert ready.status == 200, ready
        result = await case.executor.run(instance_id, run_request({"count": 200}), 10_000, limit)
    finally:
        await case.executor.destroy(instance_id)
    lines = log_text(result)
    assert lines[-1] == f"stderr: {Messages.truncated_logs(limit)}"
    kept = [line.split(": ", 1)[1] for line in lines[:-1]]
    assert 0 < len(kept) < 200
    assert sum(len(text.encode()) + 1 for text in kept) <= limit  # each line with its newline


@pytest.mark.parametrize("case", REAL, indirect=True)
async def test_a_second_init_is_refused_with_403(case: ExecutorCase) -> None:
    instance_id, ready = await deploy(case, case.hello)
    try:
        assert ready.status == 200, ready
        again = await case.executor.init(instance_id, case.hello, 10_000, LOG_LIMIT)
        still = await case.executor.run(instance_id, run_request({"name": "still"}), 10_000, LOG_LIMIT)
    finally:
        await case.executor.destroy(instance_id)
    assert (again.status, orjson.loads(again.body)) == (403, {"error": "Cannot initialize the action more than once."})
    assert orjson.loads(still.body) == case.hello_result({"name": "still"})


@pytest.mark.parametrize("case", REAL, indirect=True)
async def test_unknown_instances_and_kinds_are_executor_errors(case: ExecutorCase) -> None:
    with pytest.raises(ExecutorError):
        await case.executor.run(f"missing-{uuid.uuid4().hex}", run_request(), 1_000, LOG_LIMIT)
    with pytest.raises(ExecutorError):
        await case.executor.create(InstanceSpec(instance_id=uuid.uuid4().hex, kind="nodejs:20", memory_mb=128))


@pytest.mark.parametrize("case", REAL, indirect=True)
async def test_a_destroyed_instance_is_gone(case: ExecutorCase) -> None:
    instance_id, _ = await deploy(case, case.hello)
    await case.executor.destroy(instance_id)
    with pytest.raises(ExecutorError):
        await case.executor.run(instance_id, run_request(), 1_000, LOG_LIMIT)
