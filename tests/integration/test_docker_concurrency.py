"""Intra-container concurrency on Docker: a ``python:3`` action with ``limits.concurrency`` > 1, end to end.

Through a real standalone server and dockerd with pywhisk's python:3.11 image (``__OW_ALLOW_CONCURRENT=true``,
executor_docker/runtimes/proxy/actionproxy.py): the invoker's pool sends up to ``limits.concurrency`` runs to
one warm container (invoker/pool.py), and the proxy runs them at once, each with its own params and result.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import Server
from tests.docker_service import RuntimeImages, docker_daemon  # noqa: F401
from tests.integration.helpers import annotations, invoke

pytestmark = [pytest.mark.integration, pytest.mark.docker]

# BOOT is drawn once per container (module state survives between runs), so it tells containers apart.
SLEEPER = """
import os, time
BOOT = os.urandom(8).hex()
def main(args):
    start = time.time()
    print(f"run {args['n']} sleeping")
    time.sleep(args.get("ms", 0) / 1000)
    return {"boot": BOOT, "n": args["n"], "pid": os.getpid(), "start": start, "end": time.time()}
"""


@pytest.fixture
def api(standalone: Server, docker_daemon: RuntimeImages) -> Iterator[httpx.Client]:  # noqa: F811
    with standalone.client() as client:
        yield client


def create(api: httpx.Client, name: str, concurrency: int) -> None:
    body = {"exec": {"kind": "python:3", "code": SLEEPER}, "limits": {"concurrency": concurrency, "memory": 128}}
    response = api.put(f"/namespaces/_/actions/{name}", json=body)
    assert response.status_code == 200, response.text


def invoke_at_once(api: httpx.Client, name: str, params: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Blocking invokes of ``name``, one per params, all in flight together; the records in params' order."""
    records: list[dict[str, Any] | None] = [None] * len(params)

    def one(index: int) -> None:
        response = invoke(api, name, params[index])
        assert response.status_code == 200, response.text
        records[index] = response.json()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(params))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(record is not None for record in records), "an invoke failed (see above)"
    return [record for record in records if record is not None]


def test_concurrency_3_runs_three_sleeps_at_once_in_one_container(api: httpx.Client, unique_name: str) -> None:
    create(api, unique_name, concurrency=3)
    warm = invoke(api, unique_name, {"n": -1}).json()
    assert warm["response"]["success"], warm
    container = warm["response"]["result"]["boot"]

    records = invoke_at_once(api, unique_name, [{"n": n, "ms": 1500} for n in range(3)])

    results = [record["response"]["result"] for record in records]
    assert [r["n"] for r in results] == [0, 1, 2], "each activation got its own params and result"
    assert {r["boot"] for r in results} == {container}, "all three ran in the warm container"
    assert len({r["pid"] for r in results}) == 1, "in its one proxy process"
    assert max(r["start"] for r in results) < min(r["end"] for r in results), "and slept at the same time"
    assert all("initTime" not in annotations(record) for record in records), "no container was started for them"
    assert len({record["activationId"] for record in records}) == 3
    # Concurrent runs' lines cannot be told apart (actionproxy.py): each record has the lines written since the
    # previous run ended, and two prints at once may even share a line. None is lost or doubled.
    text = "".join(line.split(": ", 1)[1] for record in records for line in record["logs"])
    assert [text.count(f"run {n} sleeping") for n in range(3)] == [1, 1, 1]


def test_a_cold_burst_of_concurrency_3_starts_one_container(api: httpx.Client, unique_name: str) -> None:
    """The two runs arriving while the first one's container starts join it ([OW] WarmingColdData)."""
    create(api, unique_name, concurrency=3)

    records = invoke_at_once(api, unique_name, [{"n": n, "ms": 1500} for n in range(3)])

    results = [record["response"]["result"] for record in records]
    assert [r["n"] for r in results] == [0, 1, 2]
    assert len({r["boot"] for r in results}) == 1, "one container for the three"
    assert sum("initTime" in annotations(record) for record in records) == 1, "one /init"
    assert max(r["start"] for r in results) < min(r["end"] for r in results)


def test_concurrency_1_never_runs_two_activations_in_one_container_at_once(api: httpx.Client, unique_name: str) -> None:
    create(api, unique_name, concurrency=1)
    assert invoke(api, unique_name, {"n": -1}).json()["response"]["success"]

    records = invoke_at_once(api, unique_name, [{"n": n, "ms": 1000} for n in range(2)])

    results = [record["response"]["result"] for record in records]
    assert [r["n"] for r in results] == [0, 1]
    first, second = sorted(results, key=lambda r: r["start"])
    if first["boot"] == second["boot"]:  # the pool waited for the warm container rather than start another
        assert second["start"] >= first["end"], "one container ran two activations at once"
    else:
        assert sum("initTime" in annotations(record) for record in records) == 1, "a second container was started"
