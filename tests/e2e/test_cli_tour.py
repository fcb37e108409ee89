"""The README's tour, run with the real `pywsk` console script against a real standalone server."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO, WASM_DIR, Server
from tests.docker_service import docker_daemon  # noqa: F401

pytestmark = pytest.mark.e2e


class Pywsk:
    def __init__(self, server: Server, config: Path) -> None:
        self.env = {**os.environ, "WSK_CONFIG_FILE": str(config)}
        self.server = server

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["pywsk", *args], capture_output=True, text=True, env=self.env, cwd=REPO, timeout=120, check=False
        )
        if check:
            assert result.returncode == 0, f"pywsk {' '.join(args)} exited {result.returncode}:\n{result.stderr}"
        return result

    def json_after_ok(self, *args: str) -> dict[str, object]:
        """Output like wsk's: an `ok: ...` line, then a JSON document."""
        out = self(*args).stdout
        first, _, rest = out.partition("\n")
        assert first.startswith("ok: "), out
        return dict(json.loads(rest))


@pytest.fixture
def pywsk(standalone: Server, tmp_path: Path) -> Pywsk:
    cli = Pywsk(standalone, tmp_path / "wskprops")
    cli("property", "set", "--apihost", standalone.apihost, "--auth", standalone.auth)
    return cli


def _annotation_keys(record: dict[str, object]) -> set[str]:
    return {pair["key"] for pair in record["annotations"]}  # type: ignore[attr-defined]


def test_readme_tour_create_invoke_and_read_cold_then_warm_records(pywsk: Pywsk, unique_name: str) -> None:
    created = pywsk("action", "create", unique_name, str(WASM_DIR / "hello.wasm"))
    assert created.stdout.strip() == f"ok: created action {unique_name}"

    first = pywsk("action", "invoke", unique_name, "-r", "-p", "name", "Ada")
    assert json.loads(first.stdout) == {"greeting": "Hello, Ada!"}
    cold = pywsk.json_after_ok("activation", "get", "--last")
    assert {"waitTime", "initTime"} <= _annotation_keys(cold)

    second = pywsk("action", "invoke", unique_name, "-r", "-p", "name", "Grace")
    assert json.loads(second.stdout) == {"greeting": "Hello, Grace!"}
    warm = pywsk.json_after_ok("activation", "get", "--last")
    assert "waitTime" in _annotation_keys(warm)
    assert "initTime" not in _annotation_keys(warm)
    assert warm["activationId"] != cold["activationId"]

    logs = pywsk("activation", "logs", "--last", "--strip").stdout.splitlines()
    assert logs == ["hello: greeting Grace", "hello: this line goes to stderr"]
    assert unique_name in pywsk("action", "list").stdout
    listed = pywsk("activation", "list").stdout
    assert str(warm["activationId"]) in listed
    assert str(cold["activationId"]) in listed


def test_update_get_and_delete(pywsk: Pywsk, unique_name: str) -> None:
    pywsk("action", "create", unique_name, str(WASM_DIR / "echo.wasm"), "-p", "greeting", "hi", "-t", "5000")
    assert pywsk("action", "update", unique_name, "-m", "128").stdout.strip() == f"ok: updated action {unique_name}"

    action = pywsk.json_after_ok("action", "get", unique_name)

    assert action["version"] == "0.0.2"
    assert action["limits"] == {"timeout": 5000, "memory": 128, "logs": 10, "concurrency": 1}
    assert action["parameters"] == [{"key": "greeting", "value": "hi"}]
    assert "code" not in action["exec"]  # type: ignore[operator]
    result = pywsk("action", "invoke", unique_name, "-r", "-p", "n", "[1, 2]")
    assert json.loads(result.stdout) == {"greeting": "hi", "n": [1, 2]}
    assert pywsk("action", "delete", unique_name).stdout.strip() == f"ok: deleted action {unique_name}"


def test_errors_exit_like_wsk(pywsk: Pywsk, unique_name: str) -> None:
    missing = pywsk("action", "invoke", unique_name, "-r", check=False)
    assert missing.returncode == 404 - 256
    assert "The requested resource does not exist." in missing.stderr

    pywsk("action", "create", unique_name, str(WASM_DIR / "trap.wasm"))
    duplicate = pywsk("action", "create", unique_name, str(WASM_DIR / "trap.wasm"), check=False)
    assert duplicate.returncode == 409 - 256
    assert "resource already exists" in duplicate.stderr

    trapped = pywsk("action", "invoke", unique_name, "-r", check=False)
    assert trapped.returncode != 0
    assert "The action trapped" in trapped.stdout + trapped.stderr


def test_non_blocking_invoke_then_result_by_id(pywsk: Pywsk, unique_name: str) -> None:
    pywsk("action", "create", unique_name, str(WASM_DIR / "hello.wasm"))

    out = pywsk("action", "invoke", unique_name, "-p", "name", "Async").stdout.strip()

    assert out.startswith(f"ok: invoked /_/{unique_name} with id ")
    activation_id = out.rsplit(" ", 1)[1]
    for _ in range(100):
        result = pywsk("activation", "result", activation_id, check=False)
        if result.returncode == 0:
            break
    assert json.loads(result.stdout) == {"greeting": "Hello, Async!"}


@pytest.mark.docker
def test_python_action_from_a_py_file_cold_then_warm(pywsk: Pywsk, unique_name: str, docker_daemon: object) -> None:  # noqa: F811
    created = pywsk("action", "create", unique_name, str(REPO / "actions" / "python" / "hello.py"))
    assert created.stdout.strip() == f"ok: created action {unique_name}"

    assert json.loads(pywsk("action", "invoke", unique_name, "-r", "-p", "name", "Py").stdout) == {
        "greeting": "Hello, Py!"
    }
    cold = pywsk.json_after_ok("activation", "get", "--last")
    pywsk("action", "invoke", unique_name, "-r", "-p", "name", "Again")
    warm = pywsk.json_after_ok("activation", "get", "--last")

    assert {"waitTime", "initTime"} <= _annotation_keys(cold)
    assert "initTime" not in _annotation_keys(warm)
    assert "XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX" not in pywsk("activation", "logs", "--last").stdout
