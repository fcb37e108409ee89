"""Real OpenWhisk clients, unchanged, against ``pywhisk standalone``.

Two programs in tests/clients run a wsk-like scenario and print one JSON line per step:

- ``go/``: built on github.com/apache/openwhisk-client-go, the library that the ``wsk`` CLI
  is made of (it sends wsk's requests and parses the answers; wsk itself cannot be built
  here). Successful bodies are also decoded strictly into client-go's structs, since
  client-go silently ignores a field of the wrong JSON type.
- ``js/``: the official ``openwhisk`` npm package.

deploy/local/install-clients.sh builds/installs them (idempotent and quick when up to date,
so it runs every time: a stale binary is rebuilt). The tests skip only when ``go`` or
``node``/``npm`` is not installed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, WASM_DIR, Server

pytestmark = [pytest.mark.e2e]

INSTALL = REPO / "deploy" / "local" / "install-clients.sh"
CACHE = Path(os.environ.get("PYWHISK_CACHE") or Path.home() / ".cache" / "pywhisk")
GO_BINARY = CACHE / "bin" / "owclient-go"
JS_DIR = REPO / "tests" / "clients" / "js"
SCENARIO_TIMEOUT = 300

# Steps both scenarios must report as ok.
REQUIRED_STEPS = [
    "namespaces",
    "bad-auth",
    "create",
    "create-conflict",
    "update",
    "get",
    "list",
    "invoke-result",
    "invoke-blocking",
    "activation-get",
    "activation-list",
    "activation-logs",
    "activation-result",
    "invoke-nonblocking",
    "activation-poll",
    "invoke-missing",
    "activation-missing",
    "apperror-create",
    "apperror-invoke-result",
    "apperror-delete",
    "delete",
    "get-deleted",
    "delete-again",
    "done",
]


def _install(*flags: str) -> None:
    result = subprocess.run(["bash", str(INSTALL), *flags], capture_output=True, text=True, timeout=900, check=False)
    assert result.returncode == 0, f"install-clients.sh {' '.join(flags)} failed:\n{result.stdout}\n{result.stderr}"


@pytest.fixture(scope="module")
def go_client() -> Path:
    if shutil.which("go") is None:
        pytest.skip("go is not installed: cannot build the openwhisk-client-go scenario")
    _install("--go-only")
    assert GO_BINARY.is_file()
    return GO_BINARY


@pytest.fixture(scope="module")
def js_client() -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node/npm is not installed: cannot run the openwhisk npm client scenario")
    _install("--js-only")
    assert (JS_DIR / "node_modules" / "openwhisk").is_dir()
    return JS_DIR / "scenario.js"


@pytest.fixture
def action_name(unique_name: str) -> str:
    return unique_name.replace("_", "-")


def _run_scenario(command: list[str], server: Server, name: str) -> dict[str, dict[str, Any]]:
    """Runs a client scenario and returns its steps by name, after checking they all passed."""
    args = [
        *command,
        "--apihost",
        server.apihost,
        "--auth",
        server.auth,
        "--wasm",
        str(WASM_DIR / "hello.wasm"),
        "--apperror-wasm",
        str(WASM_DIR / "apperror.wasm"),
        "--name",
        name,
    ]
    result = subprocess.run(args, capture_output=True, text=True, timeout=SCENARIO_TIMEOUT, check=False)
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    failed = [line for line in lines if not line.get("ok") and not line.get("optional")]
    server_log = "\n".join(server.log_path.read_text(errors="replace").splitlines()[-30:])
    assert result.returncode == 0 and not failed, (
        f"{Path(command[-1]).name} exited {result.returncode}; failed steps:\n"
        + "\n".join(json.dumps(line, indent=1) for line in failed)
        + f"\n--- stdout ---\n{result.stdout[-6000:]}\n--- stderr ---\n{result.stderr[-3000:]}"
        + f"\n--- server log (tail) ---\n{server_log}"
    )
    steps = {line["step"]: line for line in lines}
    missing = [step for step in REQUIRED_STEPS if not steps.get(step, {}).get("ok")]
    assert not missing, f"steps not reported as ok: {missing}\n{result.stdout}"
    return steps


def _check_common(steps: dict[str, dict[str, Any]], name: str) -> None:
    assert steps["create"]["name"] == name
    assert steps["create"]["version"] == "0.0.1"
    assert steps["update"]["version"] == "0.0.2"
    assert steps["create-conflict"]["status"] == 409
    assert steps["create-conflict"]["error_message"]
    assert steps["bad-auth"]["status"] == 401
    for step in ("invoke-missing", "activation-missing", "get-deleted", "delete-again"):
        assert steps[step]["status"] == 404, step
    assert steps["invoke-result"]["result"] == {"greeting": "Hello, Ada!"}
    assert steps["activation-result"]["result"] == {"greeting": "Hello, Ada!"}
    assert "waitTime" in steps["invoke-blocking"]["annotations"]
    assert any("hello: greeting Ada" in line for line in steps["activation-logs"]["logs"])
    assert steps["invoke-nonblocking"]["activation_id"] != steps["invoke-blocking"]["activation_id"]


def _check_server_side(server: Server, name: str, activations: dict[str, str]) -> None:
    """The activations the client created (id -> action name) exist on the server, are listed
    under their action's name, and the deleted action is gone."""
    with server.client() as api:
        for activation_id, action in activations.items():
            response = api.get(f"/namespaces/_/activations/{activation_id}")
            assert response.status_code == 200, (activation_id, response.text)
            record = response.json()
            assert record["activationId"] == activation_id
            assert record["name"] == action
            assert record["namespace"] == "guest"
            listed = api.get("/namespaces/_/activations", params={"name": action, "limit": 50})
            assert listed.status_code == 200, listed.text
            assert activation_id in {r["activationId"] for r in listed.json()}
        assert api.get(f"/namespaces/_/actions/{name}").status_code == 404


def test_go_client_scenario(go_client: Path, standalone: Server, action_name: str) -> None:
    steps = _run_scenario([str(go_client)], standalone, action_name)
    _check_common(steps, action_name)

    # What wsk would show and exit with: client-go's WskError, exit code = HTTP status - 256.
    assert steps["create-conflict"]["exit_code"] == 409 - 256
    assert steps["invoke-missing"]["exit_code"] == 404 - 256
    assert steps["apperror-invoke-result"]["status"] == 502
    assert "something went wrong" in steps["apperror-invoke-result"]["wsk_message"]
    assert steps["apperror-invoke-blocking"]["response_status"] == "application error"
    assert steps["apperror-activation-get"]["response_status"] == "application error"
    assert steps["get"]["code_returned"] is False
    assert steps["get"]["kind"] == "wasm:wasi"
    assert action_name in steps["list"]["row"]
    assert steps["activation-last"]["activation_id"] == steps["invoke-blocking"]["activation_id"]
    assert steps["invoke-nonblocking"]["status"] == 202
    assert steps["activation-poll"]["activation_id"] == steps["invoke-nonblocking"]["activation_id"]

    _check_server_side(
        standalone,
        action_name,
        {
            steps["invoke-blocking"]["activation_id"]: action_name,
            steps["invoke-nonblocking"]["activation_id"]: action_name,
            steps["apperror-invoke-blocking"]["activation_id"]: f"{action_name}-apperr",
        },
    )


def test_js_client_scenario(js_client: Path, standalone: Server, action_name: str) -> None:
    node = shutil.which("node")
    assert node is not None
    steps = _run_scenario([node, str(js_client)], standalone, action_name)
    _check_common(steps, action_name)

    assert steps["client"]["api"] == f"{standalone.apihost}/api/v1/"
    assert "Returned HTTP 404" in steps["invoke-missing"]["message"]
    assert steps["invoke-default-param"]["result"] == {"greeting": "Hello, stranger!"}
    assert steps["get"]["limits"]["timeout"] == 30000
    assert "description" in steps["get"]["annotations"]
    assert steps["list-count"]["actions"] >= 1
    assert steps["activation-list-count"]["activations"] >= 3
    assert steps["apperror-invoke-result"]["status"] == 502
    assert "something went wrong" in steps["apperror-invoke-result"]["message"]

    _check_server_side(
        standalone,
        action_name,
        {
            steps["invoke-blocking"]["activation_id"]: action_name,
            steps["invoke-nonblocking"]["activation_id"]: action_name,
            steps["apperror-invoke-result"]["activation_id"]: f"{action_name}-apperr",
        },
    )


# The programming model beyond single actions (issue 13): tests/clients/js/model.js and tests/clients/go/model.go.
MODEL_STEPS = [
    "package-create",
    "package-action-create",
    "package-get",
    "binding-create",
    "package-list",
    "binding-invoke",
    "sequence-parts",
    "sequence-create",
    "sequence-invoke",
    "web-create",
    "web-get",
    "package-delete-nonempty",
    "cleanup",
    "package-deleted",
    "done",
]


def _run_model(command: list[str], server: Server) -> dict[str, dict[str, Any]]:
    result = subprocess.run(command, capture_output=True, text=True, timeout=SCENARIO_TIMEOUT, check=False)
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    steps = {line["step"]: line for line in lines}
    missing = [step for step in MODEL_STEPS if not steps.get(step, {}).get("ok")]
    server_log = "\n".join(server.log_path.read_text(errors="replace").splitlines()[-30:])
    assert result.returncode == 0 and not missing, (
        f"{Path(command[1] if command[0].endswith('node') else command[0]).name} exited {result.returncode}; "
        f"steps not ok: {missing}\n--- stdout ---\n{result.stdout[-6000:]}\n--- stderr ---\n{result.stderr[-3000:]}"
        f"\n--- server log (tail) ---\n{server_log}"
    )
    return steps


def _check_model(steps: dict[str, dict[str, Any]], server: Server) -> None:
    # Parameters: package < binding < action < invoke ([OW] docs/packages.md, Actions.scala mergeActionWithPackage).
    merged = steps["binding-invoke"]["result"]
    assert {k: merged[k] for k in ("p", "shared", "b", "a", "i")} == {
        "p": "package",
        "shared": "binding",
        "b": "binding",
        "a": "action",
        "i": "invoke",
    }
    assert "echo" in steps["package-get"]["actions"]
    # echo (WASM) → upper (Python on Docker) → hello (WASM); the record's logs are the three component ids.
    invoked = steps["sequence-invoke"]
    assert invoked["result"] == {"greeting": "Hello, ADA!"}
    assert len(invoked["logs"]) == 3
    with server.client() as api:
        for component_id in invoked["logs"]:
            record = api.get(f"/namespaces/_/activations/{component_id}").json()
            assert record["cause"] == invoked["activation_id"], record
    web = steps["web-get"]
    assert web["status"] == 200 and web["content_type"].startswith("application/json")
    assert web["body"]["x"] == "1" and web["body"]["__ow_method"] == "get"
    assert steps["package-delete-nonempty"]["status"] == 409


@pytest.mark.docker
def test_go_client_drives_packages_bindings_sequences_and_web_actions(
    go_client: Path, platform: Server, action_name: str
) -> None:
    command = [str(go_client), "-scenario", "model", "-apihost", platform.apihost, "-auth", platform.auth]
    command += ["-echo-wasm", str(WASM_DIR / "echo.wasm"), "-hello-wasm", str(WASM_DIR / "hello.wasm")]
    steps = _run_model([*command, "-name", action_name], platform)
    _check_model(steps, platform)
    assert steps["package-delete-nonempty"]["exit_code"] == 409 - 256


@pytest.mark.docker
def test_js_client_drives_packages_bindings_sequences_and_web_actions(
    js_client: Path, platform: Server, action_name: str
) -> None:
    node = shutil.which("node")
    assert node is not None
    command = [node, str(JS_DIR / "model.js"), "--apihost", platform.apihost, "--auth", platform.auth]
    command += ["--echo-wasm", str(WASM_DIR / "echo.wasm"), "--hello-wasm", str(WASM_DIR / "hello.wasm")]
    steps = _run_model([*command, "--name", action_name], platform)
    _check_model(steps, platform)


# OpenWhisk's event model (issue 14): tests/clients/js/events.js and tests/clients/go/events.go.
EVENT_STEPS = [
    "actions",
    "trigger-create",
    "rule-create",
    "rule-get",
    "rule-disable",
    "rule-enable",
    "trigger-fire",
    "trigger-record",
    "rule-activations",
    "feed-create",
    "feed-get",
    "feed-delete",
    "cleanup",
    "trigger-deleted",
    "done",
]


def _run_events(command: list[str], server: Server) -> dict[str, dict[str, Any]]:
    result = subprocess.run(command, capture_output=True, text=True, timeout=SCENARIO_TIMEOUT, check=False)
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    steps = {line["step"]: line for line in lines}
    missing = [step for step in EVENT_STEPS if not steps.get(step, {}).get("ok")]
    server_log = "\n".join(server.log_path.read_text(errors="replace").splitlines()[-30:])
    assert result.returncode == 0 and not missing, (
        f"exited {result.returncode}; steps not ok: {missing}\n--- stdout ---\n{result.stdout[-6000:]}"
        f"\n--- stderr ---\n{result.stderr[-3000:]}\n--- server log (tail) ---\n{server_log}"
    )
    return steps


def _check_events(steps: dict[str, dict[str, Any]], name: str) -> None:
    # [OW] docs/triggers_rules.md, Triggers.scala: the trigger record's logs hold one JSON line per rule.
    assert steps["rule-get"]["status"] == "active"
    assert steps["rule-disable"]["status"] == "inactive" and steps["rule-enable"]["status"] == "active"
    logs = steps["trigger-record"]["logs"]
    assert steps["trigger-record"]["name"] == f"{name}-t"
    assert sorted(line["rule"].rsplit("/", 1)[-1] for line in logs) == [f"{name}-r1", f"{name}-r2"]
    assert all(line["success"] and line["statusCode"] == 0 for line in logs)
    results = steps["rule-activations"]["results"]
    fire_id = steps["trigger-fire"]["activation_id"]
    # Both actions got the trigger's parameter under the fire's. OpenWhisk invokes a rule's action as any invoke
    # (Triggers.scala posts to the actions API), so its record has no `cause`: the link is the trigger's logs.
    assert results[f"{name}-wasm"]["result"] == {"from": "trigger", "x": 1}
    assert results[f"{name}-py"]["result"] == {"python": 1, "from": "trigger"}
    assert {entry.get("cause") or None for entry in results.values()} == {None}
    assert fire_id not in {line["activationId"] for line in logs}


@pytest.mark.docker
def test_go_client_drives_triggers_rules_and_feeds(go_client: Path, platform: Server, action_name: str) -> None:
    command = [str(go_client), "-scenario", "events", "-apihost", platform.apihost, "-auth", platform.auth]
    steps = _run_events([*command, "-echo-wasm", str(WASM_DIR / "echo.wasm"), "-name", action_name], platform)
    _check_events(steps, action_name)
    assert steps["trigger-fire"]["status"] == 202


@pytest.mark.docker
def test_js_client_drives_triggers_rules_and_feeds(js_client: Path, platform: Server, action_name: str) -> None:
    node = shutil.which("node")
    assert node is not None
    command = [node, str(JS_DIR / "events.js"), "--apihost", platform.apihost, "--auth", platform.auth]
    steps = _run_events([*command, "--echo-wasm", str(WASM_DIR / "echo.wasm"), "--name", action_name], platform)
    _check_events(steps, action_name)
    # [OW] Rules.scala: a rule naming a missing action is a 400 ("action /ns/a does not exist"); firing a missing
    # trigger is a 404.
    assert steps["rule-missing-action"]["status"] == 400 and steps["fire-missing"]["status"] == 404
