"""Conductor actions through real servers in both modes (standalone; distributed over Kafka and the CouchDB
API): a conductor written in Python (on the WASM executor, and on Docker) running real WASM components.

Follows OpenWhisk's docs/conductors.md (the tripleAndIncrement example: the step kept in ``state``, the
trace conductor, component, conductor, ...; the primary record's logs, duration and annotations) and
controller/actions/PrimitiveActions.scala with the cases of tests/.../system/basic/WskConductorTests.scala
(a composition of two components; one that goes past the limit ends with "Too many actions in the
composition.").
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

LIMIT = 50  # [OW] actionSequenceLimit
# docs/conductors.md's tripleAndIncrement, with echo.wasm and hello.wasm as its two components.
TWO_STEPS = """
def main(params):
    step = params.pop('$step', 0)
    if step == 0:
        return {'action': 'ECHO', 'params': params, 'state': {'$step': 1}}
    if step == 1:
        return {'action': 'HELLO', 'params': params, 'state': {'$step': 2}}
    return {'params': params}
"""
# Asks for echo forever; ends with the error the controller gives it (as tests/dat/actions/conductor.js).
FOREVER = """
def main(params):
    if 'error' in params:
        return params
    return {'action': 'ECHO', 'params': params}
"""


def notes_of(record: dict[str, Any]) -> dict[str, Any]:
    return {pair["key"]: pair["value"] for pair in record["annotations"]}


def create_conductor(api: httpx.Client, name: str, code: str, kind: str = "python:3", wasm: bool = True) -> None:
    notes = [{"key": "conductor", "value": True}]
    if wasm:
        notes.append({"key": "executor", "value": "wasm"})
    body = {"exec": {"kind": kind, "code": code}, "annotations": notes}
    response = api.put(f"/namespaces/_/actions/{name}", json=body)
    assert response.status_code == 200, response.text


def assert_two_step_composition(api: httpx.Client, name: str, response: httpx.Response) -> None:
    assert response.status_code == 200, response.text
    record = response.json()
    assert record["response"]["result"] == {"greeting": "Hello, Ada!"}
    notes = notes_of(record)
    assert notes["conductor"] is True and notes["kind"] == "sequence" and notes["topmost"] is True
    assert notes["path"] == f"guest/{name}"
    derived = [wait_for_record(api, activation_id) for activation_id in record["logs"]]
    assert [d["name"] for d in derived] == [name, f"{name}-echo", name, f"{name}-hello", name]
    assert all(d["cause"] == record["activationId"] for d in derived)
    assert all(notes_of(d)["causedBy"] == "sequence" for d in derived)
    assert record["duration"] == sum(d["duration"] for d in derived)
    assert record["start"] <= derived[0]["start"] and derived[-1]["end"] <= record["end"]
    # The components ran on what the conductor passed them ($step kept out of their params).
    assert derived[1]["response"]["result"] == {"name": "Ada"}
    assert wait_for_record(api, record["activationId"])["logs"] == record["logs"]


def components(api: httpx.Client, name: str) -> dict[str, str]:
    create_wasm_action(api, f"{name}-echo", "echo")
    create_wasm_action(api, f"{name}-hello", "hello")
    return {"ECHO": f"{name}-echo", "HELLO": f"{name}-hello"}


def with_names(code: str, names: dict[str, Any]) -> str:
    for placeholder, name in names.items():
        code = code.replace(f"'{placeholder}'", repr(name))
    return code


def test_a_python_conductor_on_wasm_runs_two_wasm_components(
    api: httpx.Client,
    unique_name: str,
    python_runner: Runner,  # noqa: F811
) -> None:
    create_conductor(api, unique_name, with_names(TWO_STEPS, components(api, unique_name)))

    response = invoke(api, unique_name, {"name": "Ada"})

    assert_two_step_composition(api, unique_name, response)


def test_a_non_blocking_composition_answers_its_id_and_records_itself(
    api: httpx.Client,
    unique_name: str,
    python_runner: Runner,  # noqa: F811
) -> None:
    create_conductor(api, unique_name, with_names(TWO_STEPS, components(api, unique_name)))

    response = invoke(api, unique_name, {"name": "Grace"}, blocking="false")

    assert response.status_code == 202, response.text
    record = wait_for_record(api, response.json()["activationId"])
    assert record["response"]["result"] == {"greeting": "Hello, Grace!"} and len(record["logs"]) == 5


@pytest.mark.docker
def test_a_conductor_that_loops_past_the_limit_ends_with_openwhisks_error(
    api: httpx.Client,
    unique_name: str,
    docker_daemon: object,  # noqa: F811
) -> None:
    # On Docker: its warm container runs the 51 conductor steps in well under a second.
    create_conductor(api, unique_name, with_names(FOREVER, components(api, unique_name)), wasm=False)

    response = invoke(api, unique_name, {"name": "Ada"})

    assert response.status_code == 502, response.text
    record = response.json()
    assert record["response"]["status"] == "application error"
    assert record["response"]["result"] == {"error": "Too many actions in the composition."}
    # n components, each between two conductor steps; the n + 1st asked for was refused, and the conductor
    # run on the error ended the composition with it.
    assert len(record["logs"]) == 2 * LIMIT + 2
    names = [wait_for_record(api, i)["name"] for i in record["logs"][-3:]]
    assert names == [f"{unique_name}-echo", unique_name, unique_name]
    assert wait_for_record(api, record["logs"][-1])["response"]["result"] == record["response"]["result"]
    assert notes_of(wait_for_record(api, record["logs"][-1]))["kind"] == "python:3.11"
