"""``/metrics`` before and after a known workload, on a real standalone server and a real deployment (Kafka,
the CouchDB-API server): every counter and histogram count moves by exactly the workload's amounts.

Each mode gets a platform of its own, so nothing else runs between the two scrapes. The workload's last
effects land just after the client has its answer (an invoker counts an activation once its record is stored
and its completion sent), so the second scrape is polled until the expected values are reached, and then
must equal them exactly: a count that overshoots fails as surely as one that never arrives.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from launcher.testing import Deployment, admin, free_port
from pywhisk.settings import Settings
from tests.conftest import (
    REPO,
    TEST_CONTROLLER_ENV,
    Server,
    start_deployment,
    start_standalone,
    stop_standalone,
)
from tests.docker_service import docker_daemon  # noqa: F401
from tests.integration.helpers import create_wasm_action, invoke

pytestmark = [pytest.mark.integration]

INVOKE_ROUTE = "/api/v1/namespaces/{namespace}/actions/{name}"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@dataclass
class Platform:
    """A platform's API and every /metrics endpoint it has (standalone: one; distributed: controller, invoker)."""

    server: Server
    endpoints: list[str]
    mode: str

    def scrape(self) -> Samples:
        """Every sample of every endpoint, summed by name and labels (as Prometheus' ``sum without(instance)``)."""
        samples: Samples = {}
        for url in self.endpoints:
            response = httpx.get(url, timeout=10)
            assert response.status_code == 200, response.text
            assert response.headers["content-type"].startswith("text/plain")
            for family in text_string_to_metric_families(response.text):
                for sample in family.samples:
                    key = (sample.name, frozenset(sample.labels.items()))
                    samples[key] = samples.get(key, 0.0) + sample.value
        return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def assert_moved_exactly(
    platform: Platform, before: Samples, expected: dict[tuple[str, frozenset[tuple[str, str]]], float]
) -> Samples:
    """Scrape until every expected delta is reached (at most 20 s), then require each to be exact."""
    deadline = time.monotonic() + 20
    while True:
        after = platform.scrape()
        moved = {key: after.get(key, 0.0) - before.get(key, 0.0) for key in expected}
        if all(moved[key] >= delta for key, delta in expected.items()) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    wrong = {f"{name}{dict(labels)}": (moved[(name, labels)], delta) for (name, labels), delta in expected.items()
             if moved[(name, labels)] != delta}  # fmt: skip
    assert not wrong, f"moved by (got, expected): {wrong}"
    return after


def key(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return (name, frozenset(labels.items()))


# the platforms -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def standalone_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    server = start_standalone(tmp_path_factory.mktemp("metrics-standalone"), env=TEST_CONTROLLER_ENV)
    yield Platform(server, [f"{server.apihost}/metrics"], "standalone")
    assert stop_standalone(server) == 0, server.log_path.read_text()


@pytest.fixture(scope="module")
def distributed_platform(
    kafka_broker: str, couchdb_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Platform]:
    invoker_port = free_port()
    deployment = start_deployment(
        kafka_broker,
        couchdb_url,
        tmp_path_factory.mktemp("metrics-distributed"),
        invokers=1,  # one home for every action: its cold and warm starts are exact
        invoker_env={"PYWHISK_INVOKER_METRICS_PORT": str(invoker_port)},
        controller_env=TEST_CONTROLLER_ENV,
    )
    invoker_metrics = f"http://127.0.0.1:{invoker_port}/metrics"
    _wait_for(lambda: httpx.get(invoker_metrics, timeout=1).status_code == 200, deployment)
    yield Platform(deployment.server(), [f"{deployment.apihost()}/metrics", invoker_metrics], "distributed")
    deployment.stop()


@pytest.fixture(params=["standalone", pytest.param("distributed", marks=pytest.mark.kafka)])
def platform(request: pytest.FixtureRequest) -> Platform:
    fixture: Platform = request.getfixturevalue(f"{request.param}_platform")
    return fixture


def _wait_for(ready: Callable[[], bool], deployment: Deployment) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if ready():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"the invoker's /metrics never answered:\n{deployment.logs()}")


# the workload ------------------------------------------------------------------------------------


def test_wasm_invokes_an_error_and_a_throttle_move_the_counters_by_exactly_that(
    platform: Platform, unique_name: str
) -> None:
    hello, failing = f"{unique_name}-hello", f"{unique_name}-apperror"
    tenant = f"metrics-{unique_name[-6:]}"
    tenant_key = admin(platform.server.admin_env, "user", "create", tenant).stdout.strip()
    # No invoke at all, in any minute: the first is refused, whatever the clock.
    admin(platform.server.admin_env, "namespace", "limits", "set", tenant, "--invocations-per-minute", "0")
    uuid_, secret = tenant_key.split(":")
    with (
        platform.server.client() as api,
        httpx.Client(base_url=f"{platform.server.apihost}/api/v1", auth=(uuid_, secret), timeout=30) as tenant_api,
    ):
        create_wasm_action(api, hello, "hello")
        create_wasm_action(api, failing, "apperror")
        create_wasm_action(tenant_api, "hello", "hello")
        before = platform.scrape()

        assert invoke(api, hello, {"name": "cold"}).status_code == 200
        assert invoke(api, hello, {"name": "warm"}).status_code == 200
        error = invoke(api, failing)
        assert error.status_code == 502, error.text
        assert error.json()["response"]["status"] == "application error"
        throttled = invoke(tenant_api, "hello")
        assert throttled.status_code == 429, throttled.text

    store = "sqlite" if platform.mode == "standalone" else "couchdb"
    # Every activation's completion is one publish on its controller's completed topic; where the invoker sends
    # a blocking result ahead of its record ([OW] ResultMessage: by default in distributed mode, where this
    # deployment's processes read the same PYWHISK_* environment as the test), each of the three blocking
    # invokes' results is a publish on that topic too.
    bus = "sqlite" if platform.mode == "standalone" else "kafka"
    results_ahead = 3 if Settings.model_validate({"bus": bus}).result_before_record else 0
    ow = {"namespace": "guest", "initiator": "guest"}
    after = assert_moved_exactly(
        platform,
        before,
        {
            # OpenWhisk's user events, per action
            key("openwhisk_action_activations_total", **ow, action=hello, kind="wasm:wasi", memory="256"): 2,
            key("openwhisk_action_activations_total", **ow, action=failing, kind="wasm:wasi", memory="256"): 1,
            key("openwhisk_action_coldStarts_total", **ow, action=hello): 1,
            key("openwhisk_action_coldStarts_total", **ow, action=failing): 1,
            key("openwhisk_action_status_total", **ow, action=hello, status="success"): 2,
            key("openwhisk_action_status_total", **ow, action=failing, status="application_error"): 1,
            key("openwhisk_action_status_total", **ow, action=failing, status="success"): 0,
            key("openwhisk_action_waitTime_seconds_count", **ow, action=hello): 2,
            key("openwhisk_action_initTime_seconds_count", **ow, action=hello): 1,
            key("openwhisk_action_duration_seconds_count", **ow, action=hello): 2,
            key("openwhisk_action_duration_seconds_count", **ow, action=failing): 1,
            key("openwhisk_action_limit_timed_total", namespace=tenant): 1,
            # the platform's
            key("pywhisk_starts_total", executor="wasm", start="cold"): 2,
            key("pywhisk_starts_total", executor="wasm", start="warm"): 1,
            key("pywhisk_throttled_requests_total", reason="invocationsPerMinute"): 1,
            key("pywhisk_http_requests_total", route=INVOKE_ROUTE, method="POST", status="200"): 2,
            key("pywhisk_http_requests_total", route=INVOKE_ROUTE, method="POST", status="502"): 1,
            key("pywhisk_http_requests_total", route=INVOKE_ROUTE, method="POST", status="429"): 1,
            key("pywhisk_http_request_duration_seconds_count", route=INVOKE_ROUTE, method="POST"): 4,
            key("pywhisk_bus_publish_seconds_count", topic="invoker"): 3,
            key("pywhisk_bus_publish_seconds_count", topic="completed"): 3 + results_ahead,
            key("pywhisk_store_batch_size_sum", kind=store): 3,
        },
    )
    assert value(after, "openwhisk_action_memory", **ow, action=hello) == 256
    assert value(after, "pywhisk_invoker_health", invoker="invoker0", state="up") == 1
    assert value(after, "pywhisk_invoker_health", invoker="invoker0", state="offline") == 0
    assert value(after, "pywhisk_invoker_inflight_activations", invoker="invoker0") == 0
    assert value(after, "pywhisk_queue_depth", invoker="invoker0") == 0
    assert value(after, "pywhisk_pool_instances", invoker="invoker0", executor="wasm", state="warm") >= 2
    # The scrape itself is counted by its route template, as any request.
    assert value(after, "pywhisk_http_requests_total", route="/metrics", method="GET", status="200") >= 1


@pytest.mark.docker
def test_a_python_action_in_docker_counts_one_cold_or_prewarmed_start_then_a_warm_one(
    docker_daemon: object,  # noqa: F811
    platform: Platform,
    unique_name: str,
) -> None:
    body = {"exec": {"kind": "python:3.11", "code": (REPO / "actions" / "python" / "hello.py").read_text()}}
    with platform.server.client() as api:
        assert api.put(f"/namespaces/_/actions/{unique_name}", json=body).status_code == 200
        before = platform.scrape()
        if value(before, "pywhisk_pool_instances", invoker="invoker0", executor="docker", state="warm") + value(
            before, "pywhisk_pool_instances", invoker="invoker0", executor="docker", state="busy"
        ):
            pytest.fail("a Docker instance from another test is warm: the starts below would not be exact")
        prewarmed = value(before, "pywhisk_pool_instances", invoker="invoker0", executor="docker", state="prewarmed")

        assert invoke(api, unique_name, {"name": "cold"}).status_code == 200
        assert invoke(api, unique_name, {"name": "warm"}).status_code == 200

    # A stem cell of python:3.11 at 256 MB (runtimes.json) is taken before a new container is made.
    first = "prewarmed" if prewarmed else "cold"
    ow = {"namespace": "guest", "initiator": "guest", "action": unique_name}
    assert_moved_exactly(
        platform,
        before,
        {
            key("openwhisk_action_activations_total", **ow, kind="python:3.11", memory="256"): 2,
            key("openwhisk_action_coldStarts_total", **ow): 1,
            key("openwhisk_action_initTime_seconds_count", **ow): 1,
            key("openwhisk_action_status_total", **ow, status="success"): 2,
            key("pywhisk_starts_total", executor="docker", start=first): 1,
            key("pywhisk_starts_total", executor="docker", start="warm"): 1,
            key("pywhisk_http_requests_total", route=INVOKE_ROUTE, method="POST", status="200"): 2,
        },
    )


def test_metrics_asks_for_the_token_when_one_is_set(tmp_path: Path) -> None:
    server = start_standalone(tmp_path, env={"PYWHISK_METRICS_TOKEN": "s3cret", "PYWHISK_BUS": "memory"})
    try:
        assert httpx.get(f"{server.apihost}/metrics").status_code == 401
        wrong = httpx.get(f"{server.apihost}/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        right = httpx.get(f"{server.apihost}/metrics", headers={"Authorization": "Bearer s3cret"})
        assert right.status_code == 200
        names = {family.name for family in text_string_to_metric_families(right.text)}
        assert {"openwhisk_action_activations", "pywhisk_http_requests", "pywhisk_pool_instances"} <= names
    finally:
        stop_standalone(server)
