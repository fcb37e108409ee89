"""Sequences through real servers in both modes (standalone; distributed over Kafka and the CouchDB API):
components on the WASM executor, on Docker and Python-on-WASM mixed in one sequence.

Follows OpenWhisk's controller/actions/SequenceActions.scala and the expectations of
tests/src/test/scala/system/basic/WskSequenceTests.scala (the result flows from one component to the next,
the sequence's record lists the component activations, an error stops the sequence).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from executor_wasm.python.runner import Runner
from tests.docker_service import docker_daemon  # noqa: F401
from tests.integration.helpers import create_wasm_action, invoke, wait_for_record
from tests.python_wasm import create_wasm_python_action, python_runner  # noqa: F401

pytestmark = pytest.mark.integration

ADD_DOCKER = "def main(args):\n    return {**args, 'docker': 'python:3.11'}\n"
ADD_WASM_PYTHON = "def main(args):\n    return {**args, 'wasm_python': sorted(args)}\n"


def notes_of(record: dict[str, Any]) -> dict[str, Any]:
    return {pair["key"]: pair["value"] for pair in record["annotations"]}


def create_sequence(api: httpx.Client, name: str, components: list[str]) -> dict[str, Any]:
    body = {"exec": {"kind": "sequence", "components": components}}
    response = api.put(f"/namespaces/_/actions/{name}", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_a_wasm_sequence_passes_each_result_to_the_next_and_records_the_components(
    api: httpx.Client, unique_name: str
) -> None:
    create_wasm_action(api, f"{unique_name}-echo", "echo")
    create_wasm_action(api, f"{unique_name}-hello", "hello")
    create_sequence(api, unique_name, [f"{unique_name}-echo", f"/_/{unique_name}-hello"])

    response = invoke(api, unique_name, {"name": "Ada"})

    assert response.status_code == 200, response.text
    record = response.json()
    assert record["response"]["result"] == {"greeting": "Hello, Ada!"}
    notes = notes_of(record)
    assert notes["kind"] == "sequence" and notes["topmost"] is True and notes["path"] == f"guest/{unique_name}"
    assert len(record["logs"]) == 2
    components = [wait_for_record(api, activation_id) for activation_id in record["logs"]]
    assert [c["name"] for c in components] == [f"{unique_name}-echo", f"{unique_name}-hello"]
    assert all(c["cause"] == record["activationId"] for c in components)
    assert all(notes_of(c)["causedBy"] == "sequence" for c in components)
    assert record["duration"] == sum(c["duration"] for c in components)
    assert wait_for_record(api, record["activationId"])["logs"] == record["logs"]


def test_an_application_error_stops_a_wasm_sequence_with_502(api: httpx.Client, unique_name: str) -> None:
    create_wasm_action(api, f"{unique_name}-fails", "apperror")
    create_wasm_action(api, f"{unique_name}-hello", "hello")
    create_sequence(api, unique_name, [f"{unique_name}-fails", f"{unique_name}-hello"])

    response = invoke(api, unique_name, {"name": "Ada"})

    assert response.status_code == 502, response.text
    assert response.json()["response"]["status"] == "application error"
    assert "error" in response.json()["response"]["result"]
    assert len(response.json()["logs"]) == 1


def test_a_non_blocking_sequence_answers_its_id_and_records_itself(api: httpx.Client, unique_name: str) -> None:
    create_wasm_action(api, f"{unique_name}-hello", "hello")
    create_sequence(api, unique_name, [f"{unique_name}-hello"])

    response = invoke(api, unique_name, {"name": "Grace"}, blocking="false")

    assert response.status_code == 202, response.text
    record = wait_for_record(api, response.json()["activationId"])
    assert record["response"]["result"] == {"greeting": "Hello, Grace!"}


def test_a_sequence_with_a_missing_component_is_refused(api: httpx.Client, unique_name: str) -> None:
    body = {"exec": {"kind": "sequence", "components": [f"{unique_name}-nothing"]}}
    response = api.put(f"/namespaces/_/actions/{unique_name}", json=body)

    assert response.status_code == 400
    assert response.json()["error"] == "Sequence component does not exist."


@pytest.mark.docker
def test_one_sequence_across_wasm_docker_and_python_on_wasm(
    api: httpx.Client,
    unique_name: str,
    docker_daemon: object,  # noqa: F811
    python_runner: Runner,  # noqa: F811
) -> None:
    create_wasm_action(api, f"{unique_name}-wasm", "echo")
    response = api.put(
        f"/namespaces/_/actions/{unique_name}-docker", json={"exec": {"kind": "python:3", "code": ADD_DOCKER}}
    )
    assert response.status_code == 200, response.text
    create_wasm_python_action(api, f"{unique_name}-pywasm", ADD_WASM_PYTHON)
    create_sequence(api, unique_name, [f"{unique_name}-wasm", f"{unique_name}-docker", f"{unique_name}-pywasm"])

    response = invoke(api, unique_name, {"name": "Ada"}, result="true")

    assert response.status_code == 200, response.text
    assert response.json() == {"name": "Ada", "docker": "python:3.11", "wasm_python": ["docker", "name"]}
    record = wait_for_record(api, response.headers["x-openwhisk-activation-id"])
    kinds = [notes_of(wait_for_record(api, i))["kind"] for i in record["logs"]]
    assert kinds[:2] == ["wasm:wasi", "python:3.11"] and kinds[2].startswith("python:3")
