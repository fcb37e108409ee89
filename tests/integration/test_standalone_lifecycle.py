"""Standalone as a process: restarts keep state, idle instances are evicted, the WASM executor can
run as its own service, and SIGTERM ends everything cleanly."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port, start_standalone, stop_standalone
from tests.integration.helpers import annotations, create_wasm_action, invoke

pytestmark = pytest.mark.integration


def test_actions_and_activations_survive_a_restart(tmp_path: Path) -> None:
    server = start_standalone(tmp_path)
    with server.client() as api:
        create_wasm_action(api, "kept", "hello")
        first = invoke(api, "kept", {"name": "before"}).json()
    assert stop_standalone(server) == 0

    server = start_standalone(tmp_path)
    try:
        with server.client() as api:
            assert api.get("/namespaces/_/actions/kept").status_code == 200
            assert api.get(f"/namespaces/_/activations/{first['activationId']}").json()["response"]["result"] == {
                "greeting": "Hello, before!"
            }
            after = invoke(api, "kept", {"name": "after"}).json()
            assert after["response"]["result"] == {"greeting": "Hello, after!"}
            assert "initTime" in annotations(after), "a new process starts cold"
    finally:
        assert stop_standalone(server) == 0


def test_idle_instances_are_evicted_after_the_idle_timeout(tmp_path: Path) -> None:
    server = start_standalone(tmp_path, "--idle-timeout", "0.5")
    try:
        with server.client() as api:
            create_wasm_action(api, "idle", "hello")
            cold = invoke(api, "idle").json()
            warm = invoke(api, "idle").json()
            time.sleep(1.5)
            evicted = invoke(api, "idle").json()
        assert "initTime" in annotations(cold)
        assert "initTime" not in annotations(warm)
        assert "initTime" in annotations(evicted), "the idle instance was destroyed, so this start is cold"
    finally:
        assert stop_standalone(server) == 0


def test_standalone_drives_a_separate_wasm_executor_service(tmp_path: Path) -> None:
    port = free_port()
    executor = subprocess.Popen(
        [sys.executable, "-m", "pywhisk", "executor-wasm", "--port", str(port), "--data-dir", str(tmp_path / "ex")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_until_up(f"http://127.0.0.1:{port}/health")
        server = start_standalone(tmp_path / "sa", env={"PYWHISK_WASM_EXECUTOR_URL": f"http://127.0.0.1:{port}"})
        try:
            with server.client() as api:
                create_wasm_action(api, "remote", "hello")
                create_wasm_action(api, "remote-trap", "trap")
                result = invoke(api, "remote", {"name": "remote"}, result="true")
                trapped = invoke(api, "remote-trap")
            assert result.json() == {"greeting": "Hello, remote!"}
            assert trapped.status_code == 502
            assert trapped.json()["response"]["result"]["error"].startswith("The action trapped")
            # The module was compiled by the service, in its own cache directory.
            assert list((tmp_path / "ex" / "modules").glob("*.cwasm"))
        finally:
            assert stop_standalone(server) == 0
    finally:
        executor.terminate()
        assert executor.wait(timeout=30) == 0


def _wait_until_up(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"{url} did not answer")


def test_without_a_docker_daemon_standalone_runs_wasm_and_docker_kinds_get_a_clear_error(tmp_path: Path) -> None:
    server = start_standalone(tmp_path, env={"DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"})
    try:
        with server.client() as api:
            create_wasm_action(api, "still-wasm", "hello")
            assert invoke(api, "still-wasm", result="true").json() == {"greeting": "Hello, stranger!"}
            code = "def main(args):\n    return {}\n"
            api.put("/namespaces/_/actions/py", json={"exec": {"kind": "python:3", "code": code}}).raise_for_status()
            started = time.monotonic()
            response = invoke(api, "py")
        assert time.monotonic() - started < 10, "an answer, not a hang"
        assert response.status_code == 500
        assert response.json()["response"]["status"] == "whisk internal error"
        assert response.json()["response"]["result"] == {
            "error": "No executor on this invoker can run actions of kind 'python:3.11'."
        }
        assert "executor 'docker' is not available" in server.log_path.read_text()
    finally:
        assert stop_standalone(server) == 0
