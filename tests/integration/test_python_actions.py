"""Docker actions (kinds python:3 and blackbox), through the whole path in both modes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pywhisk.runtimes import RuntimeManifest
from tests.conftest import REPO, Server, start_standalone, stop_standalone
from tests.docker_service import docker_daemon  # noqa: F401
from tests.integration.helpers import annotations, invoke, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.docker]

HELLO = (REPO / "actions" / "python" / "hello.py").read_text()
DOCKER_RUNTIMES = [runtime for runtime in RuntimeManifest.load_default().all_runtimes() if runtime.executor == "docker"]


@pytest.fixture(autouse=True)
def _images(docker_daemon: object) -> None:  # noqa: F811
    """Every test here needs dockerd and the runtime images."""


def create_python_action(api: httpx.Client, name: str, code: str, **limits: int) -> None:
    body: dict[str, Any] = {"exec": {"kind": "python:3", "code": code}}
    if limits:
        body["limits"] = limits
    response = api.put(f"/namespaces/_/actions/{name}", json=body)
    assert response.status_code == 200, response.text


def test_hello_py_is_cold_then_warm_with_logs_free_of_sentinels(api: httpx.Client, unique_name: str) -> None:
    create_python_action(api, unique_name, HELLO.replace("def main", "print('hi from python')\n\ndef main"))

    cold = invoke(api, unique_name, {"name": "Ada"})
    warm = invoke(api, unique_name, {"name": "Grace"})

    assert cold.status_code == 200, cold.text
    assert cold.json()["response"]["result"] == {"greeting": "Hello, Ada!"}
    assert warm.json()["response"]["result"] == {"greeting": "Hello, Grace!"}
    assert "initTime" in annotations(cold.json())
    assert "initTime" not in annotations(warm.json())
    assert annotations(cold.json())["kind"] == "python:3.11"
    everything = "\n".join(cold.json()["logs"] + warm.json()["logs"])
    assert "XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX" not in everything
    assert any(line.endswith("stdout: hi from python") for line in cold.json()["logs"])


BROKEN = {
    "timeout": ("def main(args):\n    while True:\n        pass\n", {"timeout": 1000}),
    "oom": (
        "def main(args):\n    hog = []\n    while True:\n        hog.append(bytearray(16 * 1024 * 1024))\n",
        {"memory": 128},
    ),
    "crash": ("import os\n\ndef main(args):\n    os._exit(1)\n", {}),
    "non-dict": ("def main(args):\n    return 42\n", {}),
    "exception": ("def main(args):\n    raise ValueError('no good')\n", {}),
    "syntax": ("def main(args) return {}\n", {}),
}


@pytest.mark.parametrize(
    ("case", "status", "message"),
    [
        ("timeout", "action developer error", "The action exceeded its time limits of 1000 milliseconds."),
        ("oom", "action developer error", "The action exhausted its memory and was aborted."),
        ("crash", "action developer error", "The action did not produce a valid response and exited unexpectedly."),
        ("non-dict", "action developer error", "The action did not return a dictionary or array."),
        ("exception", "application error", "no good"),
        ("syntax", "action developer error", "The action failed to generate or locate a binary. See logs for details."),
    ],
)
def test_broken_python_actions_get_openwhisk_statuses_and_the_invoker_keeps_serving(
    api: httpx.Client, unique_name: str, case: str, status: str, message: str
) -> None:
    code, limits = BROKEN[case]
    create_python_action(api, unique_name, code, **limits)

    response = invoke(api, unique_name)

    assert response.status_code == 502, response.text
    assert response.json()["response"]["status"] == status
    assert message in str(response.json()["response"]["result"]["error"])
    create_python_action(api, f"{unique_name}-ok", HELLO)
    assert invoke(api, f"{unique_name}-ok", {"name": "after"}, result="true").json() == {"greeting": "Hello, after!"}


def test_huge_log_output_is_cut_at_the_log_limit(api: httpx.Client, unique_name: str) -> None:
    code = "def main(args):\n    for i in range(200000):\n        print('x' * 100)\n    return {'done': True}\n"
    create_python_action(api, unique_name, code, logs=1)

    record = invoke(api, unique_name).json()

    assert record["response"]["result"] == {"done": True}
    assert record["logs"][-1].endswith(
        "Logs were truncated because the total bytes size exceeds the limit of 1048576 bytes."
    )
    assert sum(len(line) for line in record["logs"]) < 2 * 1024 * 1024


def test_a_prewarmed_container_is_taken_by_the_first_start_and_a_paused_one_is_resumed(tmp_path: Path) -> None:
    server: Server = start_standalone(tmp_path, env={"PYWHISK_PAUSE_GRACE_S": "0.5"})
    try:
        with server.client() as api:
            # 256 MB matches the python stem cell of runtimes.json; 128 MB has none: a fresh container.
            create_python_action(api, "prewarmed", HELLO, memory=256)
            create_python_action(api, "fresh", HELLO, memory=128)
            # The stem cells (runtimes.json: python's and node's) are started in the background at start-up; a busy
            # machine takes seconds. The metric counts the ready ones of every kind.
            cells = sum(cell.count for runtime in DOCKER_RUNTIMES for cell in runtime.stemCells)
            ready = lambda: _metric(server, "pywhisk_pool_instances", state="prewarmed") == cells  # noqa: E731
            wait_until(ready, "stem cells ready")

            prewarmed = annotations(invoke(api, "prewarmed").json())
            assert _metric(server, "pywhisk_starts_total", start="prewarmed") == 1, "the stem cell was taken"
            fresh = annotations(invoke(api, "fresh").json())
            assert _metric(server, "pywhisk_starts_total", start="cold") == 1, "a new container for 128 MB"
            assert "initTime" in prewarmed and "initTime" in fresh, "both are cold starts: /init ran"
            # How much faster the stem cell makes a first start is measured by loadgen's cold-start experiment
            # (docs/benchmarks.md), not asserted here: on a loaded machine either one can take seconds.

            wait_until(lambda: bool(_paused_containers(server)), "an idle container paused past the grace")
            again = invoke(api, "prewarmed", {"name": "thawed"})
            assert again.json()["response"]["result"] == {"greeting": "Hello, thawed!"}
            assert "initTime" not in annotations(again.json()), "warm: resumed, not re-created"
            assert _metric(server, "pywhisk_starts_total", start="warm") == 1
    finally:
        assert stop_standalone(server) == 0
    assert not _owned_containers(server), "the server removed its containers on shutdown"


def _metric(server: Server, name: str, **labels: str) -> float:
    """A Docker-executor sample of the server's /metrics (0 when absent)."""
    response = httpx.get(f"{server.apihost}/metrics", timeout=10)
    assert response.status_code == 200, response.text
    wanted = {"executor": "docker", **labels}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name == name and wanted.items() <= sample.labels.items():
                return float(sample.value)
    return 0.0


def _owned_containers(server: Server, *filters: str) -> list[str]:
    import subprocess

    args = ["docker", "ps", "-aq", "--filter", f"label=pywhisk.owner=invoker0@{_hostname()}:{server.data_dir}"]
    for extra in filters:
        args += ["--filter", extra]
    return subprocess.run(args, capture_output=True, text=True, check=True).stdout.split()


def _paused_containers(server: Server) -> list[str]:
    return _owned_containers(server, "status=paused")


def _hostname() -> str:
    import socket

    return socket.gethostname()


def test_blackbox_native_skeleton_runs_an_executable(api: httpx.Client, unique_name: str) -> None:
    # What `wsk action create --native` sends: the dockerskeleton image and an executable.
    script = '#!/bin/sh\necho \'a log line\'\necho "{\\"args\\": $1}"\n'
    body = {"exec": {"kind": "blackbox", "image": "openwhisk/dockerskeleton", "code": script}}
    assert api.put(f"/namespaces/_/actions/{unique_name}", json=body).status_code == 200

    record = invoke(api, unique_name, {"n": 1}).json()

    assert record["response"]["result"] == {"args": {"n": 1}}
    assert any(line.endswith("stdout: a log line") for line in record["logs"])


def test_blackbox_without_an_image_is_400(api: httpx.Client, unique_name: str) -> None:
    response = api.put(f"/namespaces/_/actions/{unique_name}", json={"exec": {"kind": "blackbox", "code": "x"}})

    assert response.status_code == 400
    assert "image undefined" in response.json()["error"]
