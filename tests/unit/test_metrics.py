"""The metrics kernel (pywhisk/metrics.py) and the controller's request metrics, without servers: the label
cap's "other" bucket, multiprocess aggregation across real processes, route templates as labels, the
invoker's own endpoint and the group-commit hook."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from controller.metrics import INVOKE_ROUTE, RequestMetrics
from pywhisk.activation import Activation, ActivationResponse, StatusCode
from pywhisk.entities import KeyValue
from pywhisk.metrics import OTHER, ActionLabels, Metrics, serve_metrics, topic_kind
from pywhisk.store.writer import GroupCommitWriter

pytestmark = pytest.mark.unit


def samples(metrics: Metrics | bytes) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = (metrics.render() if isinstance(metrics, Metrics) else metrics).decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def record(
    namespace: str, name: str, *, init_ms: int | None = None, status: StatusCode = StatusCode.SUCCESS
) -> Activation:
    annotations = [
        KeyValue(key="waitTime", value=3),
        KeyValue(key="kind", value="wasm:wasi"),
        KeyValue(key="limits", value={"memory": 128, "timeout": 60000, "logs": 10, "concurrency": 1}),
    ]
    if init_ms is not None:
        annotations.append(KeyValue(key="initTime", value=init_ms))
    return Activation(
        activationId="0" * 32,
        namespace=namespace,
        name=name,
        subject="tester",
        start=1000,
        end=1020,
        duration=20,
        response=ActivationResponse.of(status, {"ok": True}),
        annotations=annotations,
    )


def test_the_label_cap_admits_the_first_triples_and_counts_the_rest_as_other() -> None:
    labels = ActionLabels(2)
    assert labels("a", "a", "x") == ("a", "a", "x")
    assert labels("a", "b", "x") == ("a", "b", "x")  # the initiator is part of the key
    assert labels("c", "c", "y") == (OTHER, OTHER, OTHER)
    assert labels("a", "a", "x") == ("a", "a", "x")  # admitted ones stay
    with pytest.raises(ValueError, match="at least 0"):
        ActionLabels(-1)


def test_activations_past_the_cap_are_counted_under_other_never_dropped() -> None:
    metrics = Metrics(max_actions=1)
    metrics.record_activation(record("guest", "first", init_ms=5), initiator="guest")
    for name in ("second", "third"):
        metrics.record_activation(record("guest", name, status=StatusCode.APPLICATION_ERROR), initiator="guest")

    seen = samples(metrics)
    first = {"namespace": "guest", "initiator": "guest", "action": "first"}
    other = {"namespace": OTHER, "initiator": OTHER, "action": OTHER}
    assert (
        seen[("openwhisk_action_activations_total", frozenset({**first, "kind": "wasm:wasi", "memory": "128"}.items()))]
        == 1
    )
    assert (
        seen[("openwhisk_action_activations_total", frozenset({**other, "kind": "wasm:wasi", "memory": "128"}.items()))]
        == 2
    )
    assert seen[("openwhisk_action_coldStarts_total", frozenset(first.items()))] == 1
    assert seen[("openwhisk_action_status_total", frozenset({**other, "status": "application_error"}.items()))] == 2
    assert seen[("openwhisk_action_waitTime_seconds_sum", frozenset(first.items()))] == pytest.approx(0.003)
    assert seen[("openwhisk_action_initTime_seconds_count", frozenset(first.items()))] == 1
    assert seen.get(("openwhisk_action_initTime_seconds_count", frozenset(other.items())), 0) == 0  # warm ones
    assert not any("second" in dict(labels).values() for _, labels in seen)


def test_an_action_in_a_package_is_labelled_as_openwhisk_names_it() -> None:
    metrics = Metrics()
    metrics.record_activation(record("guest/utils", "echo"), initiator="team")
    labels = {"namespace": "guest", "initiator": "team", "action": "utils/echo"}
    assert samples(metrics)[("openwhisk_action_duration_seconds_count", frozenset(labels.items()))] == 1


def test_two_metrics_objects_never_share_counts() -> None:
    one, two = Metrics(), Metrics()
    one.record_start("wasm", "cold")
    assert samples(one)[("pywhisk_starts_total", frozenset({"executor": "wasm", "start": "cold"}.items()))] == 1
    assert ("pywhisk_starts_total", frozenset({"executor": "wasm", "start": "cold"}.items())) not in samples(two)


def test_bus_topics_are_labelled_by_kind() -> None:
    assert [topic_kind(t) for t in ("invoker12", "completed0", "health", "cacheInvalidation", "weird7")] == [
        "invoker",
        "completed",
        "health",
        "cacheInvalidation",
        OTHER,
    ]


WORKER = textwrap.dedent(
    """
    import sys
    from pywhisk.metrics import Metrics
    metrics = Metrics()
    for _ in range(int(sys.argv[1])):
        metrics.record_start("wasm", "cold")
    metrics.store_batch.labels("sqlite").observe(int(sys.argv[1]))
    if sys.argv[2] == "scrape":
        sys.stdout.buffer.write(metrics.render())
    """
)


def test_in_multiprocess_mode_one_scrape_sums_every_process(tmp_path: Path) -> None:
    # prometheus_client picks its value store at import, so each worker is a process of its own, as
    # `--workers N` makes them; the last one scrapes (and counts too).
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for count in ("3", "4"):
        subprocess.run([sys.executable, "-c", WORKER, count, "-"], env=env, check=True, timeout=60)
    scraped = subprocess.run(
        [sys.executable, "-c", WORKER, "5", "scrape"], env=env, check=True, timeout=60, capture_output=True
    ).stdout

    seen = samples(scraped)
    assert seen[("pywhisk_starts_total", frozenset({"executor": "wasm", "start": "cold"}.items()))] == 12
    assert seen[("pywhisk_store_batch_size_count", frozenset({"kind": "sqlite"}.items()))] == 3
    assert seen[("pywhisk_store_batch_size_sum", frozenset({"kind": "sqlite"}.items()))] == 12
    assert len(list(tmp_path.glob("*.db"))) >= 3  # one file per process and kind of metric


async def test_requests_are_labelled_by_route_template_never_by_raw_path() -> None:
    metrics = Metrics()
    app = FastAPI()

    @app.get("/api/v1/namespaces/{namespace}/actions/{name}")
    async def get_action(namespace: str, name: str) -> dict[str, str]:
        return {"name": name}

    wrapped = RequestMetrics(app, metrics)
    invoke = RequestMetrics(app, metrics, route=INVOKE_ROUTE)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=wrapped), base_url="http://t") as client:
        for name in ("a", "b", "c"):
            assert (await client.get(f"/api/v1/namespaces/_/actions/{name}")).status_code == 200
        assert (await client.get("/no/such/path/1234")).status_code == 404
        assert (await client.request("BREW", "/api/v1/namespaces/_/actions/a")).status_code == 405
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=invoke), base_url="http://t") as client:
        await client.get("/api/v1/namespaces/_/actions/z")

    seen = samples(metrics)
    route = "/api/v1/namespaces/{namespace}/actions/{name}"
    requests = {dict(labels)["route"]: v for (n, labels), v in seen.items() if n == "pywhisk_http_requests_total"}
    assert (
        seen[("pywhisk_http_requests_total", frozenset({"route": route, "method": "GET", "status": "200"}.items()))]
        == 4
    )
    assert (
        seen[("pywhisk_http_requests_total", frozenset({"route": OTHER, "method": "GET", "status": "404"}.items()))]
        == 1
    )
    assert (
        seen[("pywhisk_http_requests_total", frozenset({"route": route, "method": OTHER, "status": "405"}.items()))]
        == 1
    )
    assert set(requests) == {route, OTHER}
    assert (
        seen[("pywhisk_http_request_duration_seconds_count", frozenset({"route": route, "method": "GET"}.items()))] == 4
    )


async def test_an_invokers_endpoint_serves_metrics_and_nothing_else() -> None:
    metrics = Metrics()
    metrics.watch_invoker("invoker3", ["wasm"], lambda: 2, lambda: 1, lambda: [("wasm", "busy"), ("wasm", "warm")])
    server = await serve_metrics(metrics, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            scraped = await client.get("/metrics")
            missing = await client.get("/")
    finally:
        server.close()
        await server.wait_closed()

    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain")
    seen = samples(scraped.content)
    assert seen[("pywhisk_invoker_inflight_activations", frozenset({"invoker": "invoker3"}.items()))] == 2
    assert seen[("pywhisk_queue_depth", frozenset({"invoker": "invoker3"}.items()))] == 1
    pool = {dict(labels)["state"]: v for (n, labels), v in seen.items() if n == "pywhisk_pool_instances"}
    assert pool == {"busy": 1, "warm": 1, "paused": 0, "prewarmed": 0}
    assert missing.status_code == 404


async def test_the_group_commit_writer_reports_each_flush_and_its_size() -> None:
    flushed: list[int] = []
    release = asyncio.Event()

    async def flush(items: list[int]) -> list[BaseException | None]:
        await release.wait()
        return [None] * len(items)

    writer = GroupCommitWriter[int](
        flush, name="t", what="items", log=logging.getLogger("t"), on_flush=lambda n, s: flushed.append(n)
    )
    first = asyncio.ensure_future(writer.put(1))
    await asyncio.sleep(0)
    rest = [asyncio.ensure_future(writer.put(i)) for i in range(2, 5)]
    release.set()
    await asyncio.gather(first, *rest)
    assert flushed == [1, 3]
