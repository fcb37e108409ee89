"""Triggers and rules through real servers in both modes (standalone; distributed over Kafka and the CouchDB API):
a fire runs every active rule's action, on the WASM executor and on Docker, and records what each did.

Follows OpenWhisk's ``core/controller/.../controller/Triggers.scala`` (``activate``, ``activateRules``:
the trigger record's logs, one JSON line per rule) and ``Rules.scala`` (enable/disable), and the expectations
of ``tests/src/test/scala/system/basic/WskRuleTests.scala`` (a fired trigger's rules' actions run with the
trigger's parameters under the payload; a disabled rule does not fire).
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from tests.docker_service import docker_daemon  # noqa: F401
from tests.integration.helpers import create_wasm_action, wait_for_record

pytestmark = pytest.mark.integration

ADD_DOCKER = "def main(args):\n    return {**args, 'docker': 'python:3.11'}\n"


def put(api: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = api.put(f"/namespaces/_/{path}", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def fire(api: httpx.Client, trigger: str, payload: dict[str, Any]) -> httpx.Response:
    return api.post(f"/namespaces/_/triggers/{trigger}", json=payload)


def set_status(api: httpx.Client, rule: str, status: str) -> None:
    response = api.post(f"/namespaces/_/rules/{rule}", json={"status": status})
    assert (response.status_code, response.text) == (200, "OK")


def fired_lines(api: httpx.Client, response: httpx.Response) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The trigger record of a 202 fire and its log lines by rule."""
    assert response.status_code == 202, response.text
    record = wait_for_record(api, response.json()["activationId"])
    lines = [orjson.loads(line) for line in record["logs"]]
    return record, {line["rule"]: line for line in lines}


def test_a_fire_runs_a_wasm_rule_and_a_disabled_rule_fires_nothing(api: httpx.Client, unique_name: str) -> None:
    trigger, action, rule = f"{unique_name}-t", f"{unique_name}-echo", f"{unique_name}-r"
    put(api, f"triggers/{trigger}", {"parameters": [{"key": "from", "value": "trigger"}, {"key": "n", "value": 0}]})
    create_wasm_action(api, action, "echo")
    created = put(api, f"rules/{rule}", {"trigger": f"/_/{trigger}", "action": f"/_/{action}"})
    assert created["status"] == "active"

    record, lines = fired_lines(api, fire(api, trigger, {"n": 1}))

    assert record["name"] == trigger and record["response"]["result"] == {"n": 1} and record["end"] == 0
    line = lines[f"guest/{rule}"]
    assert line["success"] is True and line["statusCode"] == 0 and line["action"] == f"guest/{action}"
    echoed = wait_for_record(api, line["activationId"])
    assert echoed["name"] == action and echoed["response"]["result"] == {"from": "trigger", "n": 1}
    assert "cause" not in echoed  # as OpenWhisk: the trigger record's logs link the fire to its actions

    set_status(api, rule, "inactive")
    assert api.get(f"/namespaces/_/rules/{rule}").json()["status"] == "inactive"
    assert fire(api, trigger, {"n": 2}).status_code == 204
    set_status(api, rule, "active")
    _, again = fired_lines(api, fire(api, trigger, {"n": 3}))
    assert wait_for_record(api, again[f"guest/{rule}"]["activationId"])["response"]["result"]["n"] == 3

    assert api.delete(f"/namespaces/_/rules/{rule}").json()["status"] == "inactive"
    assert api.delete(f"/namespaces/_/triggers/{trigger}").status_code == 200
    assert fire(api, trigger, {}).status_code == 404


@pytest.mark.docker
def test_a_fire_with_two_rules_runs_a_wasm_and_a_docker_python_action(
    api: httpx.Client,
    unique_name: str,
    docker_daemon: object,  # noqa: F811
) -> None:
    trigger = f"{unique_name}-t"
    put(api, f"triggers/{trigger}", {"parameters": [{"key": "name", "value": "Ada"}]})
    create_wasm_action(api, f"{unique_name}-wasm", "echo")
    put(api, f"actions/{unique_name}-docker", {"exec": {"kind": "python:3.11", "code": ADD_DOCKER}})
    for kind in ("wasm", "docker"):
        put(api, f"rules/{unique_name}-r{kind}", {"trigger": f"/_/{trigger}", "action": f"/_/{unique_name}-{kind}"})

    record, lines = fired_lines(api, fire(api, trigger, {"city": "London"}))

    assert set(lines) == {f"guest/{unique_name}-rwasm", f"guest/{unique_name}-rdocker"}
    assert all(line["success"] is True for line in lines.values())
    results = {
        kind: wait_for_record(api, lines[f"guest/{unique_name}-r{kind}"]["activationId"], timeout_s=60)
        for kind in ("wasm", "docker")
    }
    assert results["wasm"]["response"]["result"] == {"name": "Ada", "city": "London"}
    assert results["docker"]["response"]["result"] == {"name": "Ada", "city": "London", "docker": "python:3.11"}
    assert record["response"]["result"] == {"city": "London"}
