"""Distributed mode against the real services: controller and invoker processes, Kafka, CouchDB API."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from controller.invokers import probe_order
from launcher.testing import Deployment, start_deployment
from loadgen.transport import LendingTransport
from tests.conftest import GUEST_AUTH, wasm_code
from tests.integration.helpers import annotations, create_wasm_action, invoke, stored_in_couchdb, wait_for_record
from tests.kafka_service import KafkaBroker

pytestmark = [pytest.mark.integration, pytest.mark.kafka]

# Plenty of memory, so every activation goes to its home invoker and hashing is visible.
ROOMY = {"PYWHISK_USER_MEMORY_MB": "65536", "PYWHISK_WASM_THREADS": "64"}


@pytest.fixture(scope="module")
def deployment(kafka_broker: str, couchdb_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    deployment = start_deployment(kafka_broker, couchdb_url, tmp_path_factory.mktemp("dist"), invoker_env=ROOMY)
    yield deployment
    deployment.stop()


def _homes(names: list[str], invokers: int) -> dict[str, int]:
    return {name: probe_order("guest", f"/guest/{name}", invokers)[0] for name in names}


async def _invoke_many(
    apihost: str, calls: list[tuple[str, dict[str, object]]], concurrency: int
) -> list[httpx.Response]:
    uuid, key = GUEST_AUTH.split(":")
    semaphore = asyncio.Semaphore(concurrency)
    transport = LendingTransport(concurrency)
    async with httpx.AsyncClient(
        base_url=f"{apihost}/api/v1", auth=(uuid, key), timeout=120, transport=transport
    ) as client:

        async def one(name: str, params: dict[str, object]) -> httpx.Response:
            async with semaphore:
                return await client.post(f"/namespaces/_/actions/{name}", params={"blocking": "true"}, json=params)

        return await asyncio.gather(*(one(name, params) for name, params in calls))


async def _consumed(bootstrap: str, prefix: str, invoker: int) -> int:
    """Messages invoker N has acknowledged: its consumer group's committed offset on its topic."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        topic = f"{prefix}invoker{invoker}"
        offsets = await admin.list_consumer_group_offsets(topic)
        return sum(meta.offset for tp, meta in offsets.items() if tp.topic == topic and meta.offset > 0)
    finally:
        await admin.close()


async def _unacknowledged(bootstrap: str, prefix: str, invoker: int) -> int:
    """Messages on invoker N's topic its consumer group has not acknowledged (committed) yet."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        # One partition per topic: the KafkaBus default (pywhisk/bus/kafka.py).
        ends = await consumer.end_offsets([TopicPartition(f"{prefix}invoker{invoker}", 0)])
    finally:
        await consumer.stop()
    return sum(ends.values()) - await _consumed(bootstrap, prefix, invoker)


def test_500_invocations_spread_over_both_invokers_with_one_record_each(deployment: Deployment) -> None:
    names = [f"spread-{i}" for i in range(12)]
    homes = _homes(names, 2)
    assert set(homes.values()) == {0, 1}, "the names hash to both invokers"
    with deployment.client() as api:
        for name in names:
            create_wasm_action(api, name, "hello")
    calls = [(names[i % len(names)], {"name": str(i)}) for i in range(500)]

    responses = asyncio.run(_invoke_many(deployment.apihost(), calls, concurrency=40))

    assert Counter(r.status_code for r in responses) == {200: 500}
    with deployment.client() as api:
        for name in names:
            records = api.get("/namespaces/_/activations", params={"name": name, "limit": 200, "docs": "true"}).json()
            expected = sum(1 for call in calls if call[0] == name)
            assert len(records) == len({r["activationId"] for r in records}) == expected
            assert all("waitTime" in annotations(r) for r in records)
            cold = [r for r in records if "initTime" in annotations(r)]
            assert 1 <= len(cold) < expected, f"{name}: the first start is cold, later ones reuse warm instances"
    # Home hashing, seen from Kafka: each invoker consumed exactly the activations homed on it.
    per_invoker = Counter(homes[name] for name, _ in calls)
    for invoker in (0, 1):
        consumed = asyncio.run(_consumed(deployment.bootstrap_servers, deployment.prefix, invoker))
        assert consumed == per_invoker[invoker]


def test_standalone_errors_look_the_same_in_distributed_mode(deployment: Deployment) -> None:
    with deployment.client() as api:
        create_wasm_action(api, "dist-loop", "loop", timeout=1000)
        create_wasm_action(api, "dist-bomb", "membomb", memory=128)
        looped = invoke(api, "dist-loop")
        bombed = invoke(api, "dist-bomb")
    assert looped.status_code == 502
    assert looped.json()["response"]["result"] == {"error": "The action exceeded its time limits of 1000 milliseconds."}
    assert bombed.json()["response"]["result"] == {"error": "The action exhausted its memory and was aborted."}


def test_kill_9_of_an_invoker_loses_no_accepted_activation(
    kafka_broker: str,
    couchdb_url: str,
    tmp_path: Path,
) -> None:
    deployment = start_deployment(kafka_broker, couchdb_url, tmp_path, invoker_env=ROOMY)
    try:
        names = [f"sleepy-{i}" for i in range(6)]
        homes = _homes(names, 2)
        assert set(homes.values()) == {0, 1}
        with deployment.client() as api:
            for name in names:
                create_wasm_action(api, name, "sleep", timeout=20000)
        calls = [(names[i % len(names)], {"ms": 3000}) for i in range(100)]

        killer = threading.Timer(1.0, deployment.kill_invoker, args=(0,))
        killer.start()
        started = time.monotonic()
        responses = asyncio.run(_invoke_many(deployment.apihost(), calls, concurrency=100))
        killer.join()
        elapsed = time.monotonic() - started

        # Every blocking caller got an answer: success from invoker1, or the controller's record of
        # an activation lost with invoker0 (after the 10 s offline detection).
        outcomes = Counter((r.status_code, r.json()["response"]["status"]) for r in responses)
        assert set(outcomes) <= {(200, "success"), (500, "whisk internal error")}, outcomes
        assert outcomes[(500, "whisk internal error")] > 0, "invoker0 had activations in flight"
        assert elapsed < 60
        ids = [r.json()["activationId"] for r in responses]
        assert len(set(ids)) == 100
        deployment.wait_for_invokers({"invoker0": "down", "invoker1": "up"})

        # While invoker0 is down its actions go to invoker1.
        homed_on_0 = next(name for name in names if homes[name] == 0)
        with deployment.client() as api:
            assert invoke(api, homed_on_0, {"ms": 1}).status_code == 200

        deployment.start_invoker(0)
        deployment.wait_for_invokers({"invoker0": "up", "invoker1": "up"})
        before = asyncio.run(_consumed(deployment.bootstrap_servers, deployment.prefix, 0))
        with deployment.client() as api:
            assert invoke(api, homed_on_0, {"ms": 1}).status_code == 200
            # The restarted invoker0 replays what it had not acknowledged; it acknowledges a message once the
            # record is stored, so with nothing left unacknowledged every replay has left its trace.
            deadline = time.monotonic() + 60
            while asyncio.run(_unacknowledged(deployment.bootstrap_servers, deployment.prefix, 0)):
                assert time.monotonic() < deadline, "invoker0 never acknowledged its replay"
                time.sleep(0.1)
            for activation_id in ids:
                record = api.get(f"/namespaces/_/activations/{activation_id}").json()
                assert record["activationId"] == activation_id
            total = sum(
                api.get("/namespaces/_/activations", params={"name": name, "count": "true"}).json()["activations"]
                for name in names
            )
        assert total == 100 + 2, "exactly one record per activation, none doubled by the replay"
        assert asyncio.run(_consumed(deployment.bootstrap_servers, deployment.prefix, 0)) > before
    finally:
        deployment.stop()


def test_two_controllers_share_one_platform(
    kafka_broker: str,
    couchdb_url: str,
    tmp_path: Path,
) -> None:
    deployment = start_deployment(kafka_broker, couchdb_url, tmp_path, controllers=2, invokers=1)
    try:
        with deployment.client(0) as first, deployment.client(1) as second:
            create_wasm_action(first, "shared", "hello")
            accepted = first.post("/namespaces/_/actions/shared", json={"name": "via first"})
            assert accepted.status_code == 202
            record = wait_for_record(second, accepted.json()["activationId"])
            assert record["response"]["result"] == {"greeting": "Hello, via first!"}
            blocking = invoke(second, "shared", {"name": "via second"}, result="true")
            assert blocking.json() == {"greeting": "Hello, via second!"}
    finally:
        deployment.stop()


def test_broker_restart_under_light_load_loses_nothing_accepted(
    private_kafka_broker: KafkaBroker,
    couchdb_url: str,
    tmp_path: Path,
) -> None:
    deployment = start_deployment(private_kafka_broker.bootstrap_servers, couchdb_url, tmp_path)
    accepted: list[str] = []
    refused: Counter[int] = Counter()
    stop = threading.Event()

    def load() -> None:
        with deployment.client(timeout=30) as api:
            while not stop.is_set():
                try:
                    response = api.post("/namespaces/_/actions/steady", json={"name": "load"})
                except httpx.HTTPError:
                    refused[0] += 1
                    continue
                if response.status_code == 202:
                    accepted.append(response.json()["activationId"])
                else:
                    refused[response.status_code] += 1
                time.sleep(0.05)

    try:
        with deployment.client() as api:
            create_wasm_action(api, "steady", "hello")
        worker = threading.Thread(target=load)
        worker.start()
        time.sleep(2)
        private_kafka_broker.down()
        time.sleep(2)
        private_kafka_broker.up()
        deployment.wait_for_invokers({"invoker0": "up", "invoker1": "up"})
        time.sleep(3)
        stop.set()
        worker.join()

        assert len(accepted) > 20
        assert set(refused) <= {0, 503}, refused  # refused while the broker was away, never lost
        with deployment.client() as api:
            for activation_id in accepted:
                record = wait_for_record(api, activation_id, timeout_s=90)
                assert record["response"]["status"] in ("success", "whisk internal error")
            # Every accepted activation has its one record. A send that timed out while the broker went away
            # may still have reached it (Kafka cannot tell the producer): that request was answered 503, and
            # its activation may run and be recorded all the same; nothing accepted is lost or doubled.
            recorded = api.get("/namespaces/_/activations", params={"name": "steady", "count": "true"}).json()
            assert len(accepted) <= recorded["activations"] <= len(accepted) + refused[503] + refused[0], (
                recorded,
                len(accepted),
                refused,
            )
            assert invoke(api, "steady", {"name": "after"}, result="true").json() == {"greeting": "Hello, after!"}
    finally:
        stop.set()
        deployment.stop()


def test_code_of_an_action_reaches_every_invoker(deployment: Deployment) -> None:
    # The invokers read actions from CouchDB by revision: an update is seen at once.
    with deployment.client() as api:
        create_wasm_action(api, "changing", "hello")
        assert invoke(api, "changing", {"name": "one"}, result="true").json() == {"greeting": "Hello, one!"}
        api.put(
            "/namespaces/_/actions/changing",
            params={"overwrite": "true"},
            json={"exec": {"kind": "wasm:wasi", "code": wasm_code("echo")}},
        ).raise_for_status()
        assert invoke(api, "changing", {"name": "two"}, result="true").json() == {"name": "two"}


class _HoldingProxy:
    """A TCP proxy in front of CouchDB that holds back activation-record writes (``_bulk_docs`` on the
    activations database) while ``hold`` is set: the store is slow, on demand, and everything else passes."""

    def __init__(self, upstream: str) -> None:
        self._upstream_host, port = upstream.removeprefix("http://").split(":")
        self._upstream_port = int(port)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._released = asyncio.Event()
        self.held = 0  # record writes waiting at the proxy so far
        self.port = 0

    def __enter__(self) -> _HoldingProxy:
        self._thread.start()
        server = asyncio.run_coroutine_threadsafe(asyncio.start_server(self._serve, "127.0.0.1", 0), self._loop)
        self._server = server.result(timeout=10)
        self.port = self._server.sockets[0].getsockname()[1]
        self.release()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
        self._loop.call_soon_threadsafe(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def hold(self) -> None:
        self._loop.call_soon_threadsafe(self._released.clear)

    def release(self) -> None:
        self._loop.call_soon_threadsafe(self._released.set)

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(self._upstream_host, self._upstream_port)

        async def requests() -> None:
            while chunk := await client_reader.read(65536):
                # httpx writes a request's head in one piece, so its request line is at the start of a chunk.
                line = chunk.split(b"\r\n", 1)[0]
                if line.startswith(b"POST /") and b"activations/_bulk_docs" in line and not self._released.is_set():
                    self.held += 1
                    await self._released.wait()
                upstream_writer.write(chunk)
                await upstream_writer.drain()
            upstream_writer.close()

        async def responses() -> None:
            while chunk := await upstream_reader.read(65536):
                client_writer.write(chunk)
                await client_writer.drain()
            client_writer.close()

        with contextlib.suppress(ConnectionError):
            await asyncio.gather(requests(), responses())


def test_result_before_record_answers_a_blocking_invoke_while_its_record_is_being_stored(
    kafka_broker: str, couchdb_url: str, tmp_path: Path
) -> None:
    """With ``invoker_result_before_record`` the blocking caller gets its result while the record's write is
    still held at the store; the bus message stays unacknowledged until the record is stored, and exactly one
    record is stored. (Without the setting the answer waits for the store: here, past the blocking wait, 202.)"""
    with _HoldingProxy(couchdb_url) as proxy:
        deployment = start_deployment(
            kafka_broker,
            couchdb_url,
            tmp_path,
            invokers=1,
            invoker_env={
                "PYWHISK_COUCHDB_URL": f"http://127.0.0.1:{proxy.port}",
                "PYWHISK_INVOKER_RESULT_BEFORE_RECORD": "true",
            },
            controller_env={"PYWHISK_MAX_BLOCKING_WAIT_MS": "10000"},
        )
        try:
            with deployment.client() as api:
                create_wasm_action(api, "early", "hello")
                assert invoke(api, "early", {"name": "warm"}).status_code == 200  # its instance is warm now
                prefix = deployment.prefix
                deadline = time.monotonic() + 30
                while asyncio.run(_unacknowledged(deployment.bootstrap_servers, prefix, 0)):
                    assert time.monotonic() < deadline, "the invoker never acknowledged the first activation"
                    time.sleep(0.1)
                proxy.hold()
                answer = invoke(api, "early", {"name": "early"})
                assert answer.status_code == 200, answer.text
                assert answer.json()["response"]["result"] == {"greeting": "Hello, early!"}
                activation_id = answer.json()["activationId"]
                deadline = time.monotonic() + 30
                while proxy.held == 0:  # the write comes after the result: wait until it is at the proxy
                    assert time.monotonic() < deadline, "the record was never written"
                    time.sleep(0.01)
                assert not stored_in_couchdb(couchdb_url, prefix, activation_id), "not stored yet"
                # Read-your-writes (controller/recent_results.py): the controller that answered serves the record.
                early = api.get(f"/namespaces/_/activations/{activation_id}")
                assert early.status_code == 200, early.text
                assert early.json()["response"]["result"] == {"greeting": "Hello, early!"}
                assert asyncio.run(_unacknowledged(deployment.bootstrap_servers, prefix, 0)) == 1
                proxy.release()
                record = wait_for_record(api, activation_id)
                assert record["response"]["result"] == {"greeting": "Hello, early!"}
                while asyncio.run(_unacknowledged(deployment.bootstrap_servers, prefix, 0)):
                    assert time.monotonic() < deadline, "the invoker never acknowledged the activation"
                    time.sleep(0.1)
                count = api.get("/namespaces/_/activations", params={"name": "early", "count": "true"}).json()
                assert count["activations"] == 2
        finally:
            proxy.release()  # or a held write would hold up the invoker's drain
            deployment.stop()
