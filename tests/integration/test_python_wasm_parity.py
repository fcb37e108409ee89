"""The sample Python actions give the same answers on Docker (python:3 runtime image) and on WASM."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from executor_wasm.python.runner import Runner
from tests.conftest import REPO
from tests.docker_service import docker_daemon  # noqa: F401
from tests.integration.helpers import annotations, invoke
from tests.python_wasm import create_wasm_python_action, python_runner  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.docker]

SAMPLES = [
    ("hello", {"name": "Ada"}),
    ("hash", {"input": "pywhisk", "iterations": 2000}),
    ("prime", {"n": 500}),
]


@pytest.fixture(autouse=True)
def _needs(docker_daemon: object, python_runner: Runner) -> None:  # noqa: F811
    """dockerd with the runtime images, and the Python runner component."""


@pytest.mark.parametrize(("sample", "params"), SAMPLES, ids=[name for name, _ in SAMPLES])
def test_sample_python_action_answers_the_same_on_docker_and_on_wasm(
    api: httpx.Client, unique_name: str, sample: str, params: dict[str, Any]
) -> None:
    code = (REPO / "actions" / "python" / f"{sample}.py").read_text()
    docker_body = {"exec": {"kind": "python:3", "code": code}}
    assert api.put(f"/namespaces/_/actions/{unique_name}-docker", json=docker_body).status_code == 200
    create_wasm_python_action(api, f"{unique_name}-wasm", code)

    records = {}
    for executor in ("docker", "wasm"):
        cold = invoke(api, f"{unique_name}-{executor}", params).json()
        warm = invoke(api, f"{unique_name}-{executor}", params).json()
        assert cold["response"]["status"] == "success", (executor, cold)
        assert {"waitTime", "initTime"} <= set(annotations(cold)), (executor, cold)
        assert "waitTime" in annotations(warm) and "initTime" not in annotations(warm), (executor, warm)
        assert warm["response"]["result"] == cold["response"]["result"]
        records[executor] = cold

    assert records["wasm"]["response"]["result"] == records["docker"]["response"]["result"]
    assert _log_texts(records["wasm"]) == _log_texts(records["docker"])


def _log_texts(record: dict[str, Any]) -> list[str]:
    """The log lines without their timestamps."""
    return [line.split(" ", 1)[1].strip() for line in record["logs"]]
