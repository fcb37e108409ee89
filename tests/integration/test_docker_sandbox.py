"""Container breakout basics from a python:3 action against the real dockerd (actions/python/escape.py).

The container runs as uid 1000 with every capability dropped, ``no-new-privileges``, pids 1024 and
nofile 1024 (executor_docker/containers.py ``host_config``); the memory cap is tested with the
``oom`` action of test_python_actions.py.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import REPO, Server
from tests.docker_service import docker_daemon  # noqa: F401
from tests.integration.helpers import invoke

pytestmark = [pytest.mark.integration, pytest.mark.docker]

ESCAPE = (REPO / "actions" / "python" / "escape.py").read_text()
DENIED = "PermissionError: Operation not permitted"


@pytest.fixture(scope="module")
def api(docker_daemon: object, standalone: Server) -> Any:  # noqa: F811
    with standalone.client() as client:
        yield client


@pytest.fixture(scope="module")
def escape(api: httpx.Client) -> str:
    name = "escape-docker-sandbox"
    response = api.put(
        f"/namespaces/_/actions/{name}?overwrite=true", json={"exec": {"kind": "python:3", "code": ESCAPE}}
    )
    assert response.status_code == 200, response.text
    return name


def result_of(api: httpx.Client, action: str, op: str) -> dict[str, Any]:
    record = invoke(api, action, {"op": op}).json()
    assert record["response"]["status"] == "success", record
    return dict(record["response"]["result"])


def test_an_action_has_no_privileges(api: httpx.Client, escape: str) -> None:
    seen = result_of(api, escape, "privileges")
    assert seen["uid"] == 1000
    assert seen["cap_eff"] == seen["cap_bnd"] == "0000000000000000"
    assert seen["no_new_privs"] == "1"
    assert seen["mount"] == DENIED
    assert seen["raw_socket"] == DENIED
    assert seen["chown"] == DENIED
    assert seen["setuid"] == DENIED


def test_an_action_sees_neither_the_docker_socket_nor_host_processes(api: httpx.Client, escape: str) -> None:
    seen = result_of(api, escape, "privileges")
    assert seen["docker_socket"] == []
    assert seen["processes"] == ["python3"]  # the action proxy alone: its own pid namespace


def test_a_fork_bomb_stops_at_the_pids_limit(api: httpx.Client, escape: str) -> None:
    bomb = result_of(api, escape, "forkbomb")
    assert bomb["refused"] == "BlockingIOError: Resource temporarily unavailable"
    assert 900 < bomb["forked"] < 1024
    # The container survived it and keeps serving.
    assert result_of(api, escape, "privileges")["uid"] == 1000


def test_opening_files_stops_at_the_nofile_limit(api: httpx.Client, escape: str) -> None:
    files = result_of(api, escape, "files")
    assert files["refused"] == "OSError: Too many open files"
    assert 1000 < files["opened"] < 1024
    assert result_of(api, escape, "privileges")["nofile"] == [1024, 1024]
