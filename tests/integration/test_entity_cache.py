"""The entity cache across controllers: a change made through one controller reaches the others over Kafka.

Two controllers over Kafka and pouchdb-server, each with its entity cache (controller/entity_cache.py). The
caches' TTL is set far beyond the tests' deadlines, so what makes controller 1 see controller 0's writes can only
be the ``cacheInvalidation`` topic ([OW] RemoteCacheInvalidation.scala), not expiry. The documented bound is
the bus latency (milliseconds); the deadline allows for a consumer group still joining at start (Kafka waits
3 s before its first rebalance) on a loaded machine.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from launcher.testing import Deployment, start_deployment
from tests.conftest import TEST_CONTROLLER_ENV, wasm_code

pytestmark = [pytest.mark.integration, pytest.mark.kafka]

DEADLINE_S = 10.0
ACTIONS = "/namespaces/_/actions"
PACKAGES = "/namespaces/_/packages"


@pytest.fixture(scope="module")
def two_controllers(
    kafka_broker: str,
    couchdb_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Deployment]:
    env = {**TEST_CONTROLLER_ENV, "PYWHISK_ENTITY_CACHE_TTL_S": "600"}
    deployment = start_deployment(
        kafka_broker,
        couchdb_url,
        tmp_path_factory.mktemp("entity-cache"),
        controllers=2,
        invokers=1,
        controller_env=env,
    )
    yield deployment
    deployment.stop()


def put(api: httpx.Client, path: str, body: dict[str, Any]) -> None:
    response = api.put(f"{path}?overwrite=true", json=body)
    assert response.status_code == 200, response.text


def invoke(api: httpx.Client, name: str, params: dict[str, Any]) -> httpx.Response:
    return api.post(f"{ACTIONS}/{name}", params={"blocking": "true", "result": "true"}, json=params)


def eventually(probe: Callable[[], httpx.Response], expected: Callable[[httpx.Response], bool]) -> float:
    """Seconds until ``probe()`` answers as ``expected`` (polling the peer, with a deadline)."""
    start = time.monotonic()
    while True:
        response = probe()
        if expected(response):
            return time.monotonic() - start
        assert time.monotonic() - start < DEADLINE_S, f"still {response.status_code} {response.text}"
        time.sleep(0.05)


def test_an_update_on_one_controller_runs_the_new_code_through_the_other(two_controllers: Deployment) -> None:
    with two_controllers.client(0) as first, two_controllers.client(1) as second:
        put(first, f"{ACTIONS}/changing", {"exec": {"kind": "wasm:wasi", "code": wasm_code("hello")}})
        assert invoke(second, "changing", {"name": "B"}).json() == {"greeting": "Hello, B!"}  # cached on B

        put(first, f"{ACTIONS}/changing", {"exec": {"kind": "wasm:wasi", "code": wasm_code("echo")}})
        echoed = {"name": "B"}
        seen_after = eventually(
            lambda: invoke(second, "changing", echoed), lambda r: r.status_code == 200 and r.json() == echoed
        )
        assert invoke(first, "changing", {"name": "A"}).json() == {"name": "A"}

        assert first.delete(f"{ACTIONS}/changing").status_code == 200
        eventually(lambda: invoke(second, "changing", {}), lambda r: r.status_code == 404)
        assert invoke(first, "changing", {}).status_code == 404
    print(f"controller 1 ran the new code {seen_after * 1000:.0f} ms after controller 0 answered the update")


def test_a_delete_on_the_second_controller_is_404_on_the_first(two_controllers: Deployment) -> None:
    with two_controllers.client(0) as first, two_controllers.client(1) as second:
        put(second, f"{ACTIONS}/doomed", {"exec": {"kind": "wasm:wasi", "code": wasm_code("echo")}})
        assert invoke(first, "doomed", {"n": 1}).json() == {"n": 1}  # cached on the first
        assert second.delete(f"{ACTIONS}/doomed").status_code == 200
        assert invoke(second, "doomed", {}).status_code == 404
        eventually(lambda: invoke(first, "doomed", {}), lambda r: r.status_code == 404)


def test_a_binding_parameter_changed_on_one_controller_reaches_invokes_through_the_other(
    two_controllers: Deployment,
) -> None:
    with two_controllers.client(0) as first, two_controllers.client(1) as second:
        put(first, f"{PACKAGES}/lib", {})
        put(first, f"{ACTIONS}/lib/echo", {"exec": {"kind": "wasm:wasi", "code": wasm_code("echo")}})
        binding = {"binding": {"namespace": "guest", "name": "lib"}, "parameters": [{"key": "p", "value": 1}]}
        put(first, f"{PACKAGES}/bound", binding)
        assert invoke(second, "bound/echo", {}).json() == {"p": 1}  # binding and package cached on the second

        put(first, f"{PACKAGES}/bound", {**binding, "parameters": [{"key": "p", "value": 2}]})
        eventually(lambda: invoke(second, "bound/echo", {}), lambda r: r.status_code == 200 and r.json() == {"p": 2})
