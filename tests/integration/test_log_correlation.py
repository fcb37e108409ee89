"""One activation followed through the JSON logs of real processes (issue 18, logs): standalone, and a
controller and an invoker over Kafka and the CouchDB API. Every line the processes write is one JSON object;
the controller's, the bus's, the invoker's and the executor's lines about an activation all carry its id and
the transaction id the API answered with (``X-Request-ID``), which crossed Kafka in the activation message."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from launcher.testing import Deployment, Server, start_deployment, start_standalone, stop_standalone
from tests.conftest import REPO
from tests.docker_service import docker_daemon  # noqa: F401
from tests.integration.helpers import create_wasm_action, invoke

pytestmark = pytest.mark.integration

JSON_DEBUG = {"PYWHISK_LOG_FORMAT": "json", "PYWHISK_LOG_LEVEL": "debug"}
FOLLOW_TIMEOUT_S = 30.0


@pytest.fixture(scope="module")
def standalone_json(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_standalone(tmp_path_factory.mktemp("json-logs"), env=JSON_DEBUG)
    yield server
    assert stop_standalone(server) == 0, server.log_path.read_text()[-3000:]
    _json_lines(server.log_path)  # to its last line, after the shutdown's


def test_standalone_one_wasm_activation_can_be_followed_through_its_json_log(standalone_json: Server) -> None:
    with standalone_json.client() as api:
        create_wasm_action(api, "followed", "hello")
        response = invoke(api, "followed", {"name": "log"})
    assert response.status_code == 200, response.text

    about = _follow(response, lambda: _json_lines(standalone_json.log_path), _covers("executor_wasm", "sqlite"))

    assert {line["component"] for line in about if line["logger"].startswith("pywhisk.invoker")} == {"invoker0"}
    assert {line["component"] for line in about if line["logger"].startswith("pywhisk.controller")} == {"controller0"}
    # The WASM executor logs from its thread pool: the ids crossed the thread hand-off.
    assert any(line["logger"] == "executor_wasm.executor" and "run_module" in line["msg"] for line in about)


@pytest.mark.docker
def test_standalone_one_docker_python_activation_carries_the_same_ids(
    standalone_json: Server,
    docker_daemon: object,  # noqa: F811
) -> None:
    code = (REPO / "actions" / "python" / "hello.py").read_text()
    with standalone_json.client() as api:
        created = api.put("/namespaces/_/actions/followed-py", json={"exec": {"kind": "python:3", "code": code}})
        assert created.status_code == 200, created.text
        response = invoke(api, "followed-py", {"name": "log"})
    assert response.status_code == 200, response.text

    about = _follow(response, lambda: _json_lines(standalone_json.log_path), _covers("executor_docker", "sqlite"))

    assert any(line["msg"].startswith("/run of ") for line in about if line["logger"] == "executor_docker.executor")


@pytest.mark.kafka
def test_distributed_the_controllers_tid_crosses_kafka_to_the_invokers_lines(
    kafka_broker: str, couchdb_url: str, tmp_path: Path
) -> None:
    deployment = start_deployment(
        kafka_broker, couchdb_url, tmp_path, invokers=1, invoker_env=JSON_DEBUG, controller_env=JSON_DEBUG
    )
    try:
        with deployment.client() as api:
            create_wasm_action(api, "followed", "hello")
            response = invoke(api, "followed", {"name": "log"})
        assert response.status_code == 200, response.text

        about = _follow(response, lambda: _deployment_lines(deployment), _covers("executor_wasm", "kafka"))
    finally:
        deployment.stop()

    by_process = {(line["process"], line["logger"].split(".")[0]) for line in about}
    assert {("controller0", "pywhisk"), ("invoker0", "pywhisk"), ("invoker0", "executor_wasm")} <= by_process
    kafka = [line for line in about if line["logger"] == "pywhisk.bus.kafka"]
    assert {line["process"] for line in kafka} == {"controller0", "invoker0"}, "sent by each side, with the ids"
    for name in ("controller0", "invoker0"):
        _json_lines(tmp_path / f"{name}.log")  # to the last line, after the shutdown's


# helpers ------------------------------------------------------------------------------------------


def _covers(executor: str, bus: str) -> Callable[[set[str]], bool]:
    """Lines from the controller, the bus, the invoker and the executor (by logger name) are all there."""

    def covered(loggers: set[str]) -> bool:
        wanted = ("pywhisk.controller", f"pywhisk.bus.{bus}", "pywhisk.invoker", executor)
        return all(any(name.startswith(prefix) for name in loggers) for prefix in wanted)

    return covered


def _follow(
    response: httpx.Response, read: Callable[[], list[dict[str, Any]]], covered: Callable[[set[str]], bool]
) -> list[dict[str, Any]]:
    """The lines about the response's activation, once they cover every part; they all carry its tid."""
    activation_id = response.json()["activationId"]
    tid = response.headers["x-request-id"]
    deadline = time.monotonic() + FOLLOW_TIMEOUT_S
    while True:  # the completion's lines may be written just after the answer
        about = [line for line in read() if line.get("activationId") == activation_id]
        if covered({line["logger"] for line in about}):
            break
        assert time.monotonic() < deadline, f"lines about {activation_id}: {about}"
        time.sleep(0.05)
    assert {line["tid"] for line in about} == {tid}, "one transaction id on every line about the activation"
    # ... and grep finds them: the id is in each of those lines as written.
    assert all(activation_id in orjson.dumps(line).decode() for line in about)
    return about


def _json_lines(path: Path) -> list[dict[str, Any]]:
    """Every complete line of a process's output, each of which must be one JSON object with the keys."""
    text = path.read_bytes().decode()
    complete = text[: text.rfind("\n") + 1]  # a line being written is read next time
    lines: list[dict[str, Any]] = []
    for number, raw in enumerate(complete.splitlines(), 1):
        try:
            line = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise AssertionError(f"{path.name}:{number} is not JSON: {raw!r}") from None
        assert isinstance(line, dict), f"{path.name}:{number}: {raw!r}"
        missing = {"ts", "level", "logger", "component", "tid", "activationId", "msg"} - set(line)
        assert not missing, f"{path.name}:{number} lacks {missing}: {raw!r}"
        lines.append(line)
    return lines


def _deployment_lines(deployment: Deployment) -> list[dict[str, Any]]:
    return [
        {**line, "process": name}
        for name in ("controller0", "invoker0")
        for line in _json_lines(deployment.work_dir / f"{name}.log")
    ]
