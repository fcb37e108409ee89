"""Several processes serving one port (``--workers N``, launcher/workers.py), on real components.

Standalone: N whole standalone servers on one port (SO_REUSEPORT), one SQLite store and one bus journal. The
tests tell the workers apart by ``GET /invokers`` over a client pinned to one keep-alive connection: worker K's
controller sees only its own invoker, ``invokerK``. Distributed: N controllers with their own ids over Kafka and
pouchdb-server, told apart by their ``completed{id}`` topics.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from launcher.testing import Deployment, Server, admin, start_deployment, start_standalone, stop_standalone
from tests.conftest import TEST_CONTROLLER_ENV, wasm_code
from tests.integration.helpers import record_counts

pytestmark = pytest.mark.integration

DEADLINE_S = 30.0
ACTIONS = "/api/v1/namespaces/_/actions"
# Long enough that a pinned client's connection is never closed as idle during a test.
ENV = {**TEST_CONTROLLER_ENV, "PYWHISK_HTTP_KEEP_ALIVE_S": "120"}


# helpers ----------------------------------------------------------------------------------------


@contextlib.contextmanager
def pinned_client(server: Server, worker: int) -> Iterator[httpx.Client]:
    """A client whose one keep-alive connection the kernel gave to standalone worker ``worker``."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        with _one_connection_client(server) as client:
            if client.get("/invokers").json() == {f"invoker{worker}": "up"}:
                yield client
                return
        assert time.monotonic() < deadline, f"no connection landed on worker {worker}"


def _one_connection_client(server: Server, **kwargs: Any) -> httpx.Client:
    uuid_, key = server.auth.split(":")
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    return httpx.Client(base_url=server.apihost, auth=(uuid_, key), timeout=70, limits=limits, **kwargs)


def worker_of(client: httpx.Client) -> str:
    return "".join(client.get("/invokers").json())


def worker_pids(parent: int) -> dict[int, int]:
    """Worker index → pid of the live workers of the supervisor ``parent`` (from /proc)."""
    found: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and b"--worker-id" in args and stat.rsplit(")", 1)[1].split()[0] != "Z":
            found[int(args[args.index(b"--worker-id") + 1])] = int(entry.name)
    return found


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"not {what} after {timeout_s} s"
        time.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def put_action(api: httpx.Client, name: str, module: str, **body: Any) -> None:
    response = api.put(
        f"{ACTIONS}/{name}?overwrite=true", json={"exec": {"kind": "wasm:wasi", "code": wasm_code(module)}, **body}
    )
    assert response.status_code == 200, response.text


def invoke(api: httpx.Client, name: str, params: dict[str, Any]) -> httpx.Response:
    return api.post(f"{ACTIONS}/{name}", params={"blocking": "true", "result": "true"}, json=params)


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One two-worker server for the module's tests that only invoke through it: each uses its own action
    names (or its own tenant), so they do not see each other's work, and a start of two workers is costly.
    The last of them (the SIGTERM test) stops it."""
    server = start_standalone(
        tmp_path_factory.mktemp("two-workers"), "--workers", "2", env={**ENV, "PYWHISK_ENTITY_CACHE_TTL_S": "600"}
    )
    try:
        yield server
    finally:
        if server.process.poll() is None:
            assert stop_standalone(server) == 0, server.log_path.read_text()[-3000:]


# standalone -------------------------------------------------------------------------------------


def test_standalone_workers_share_the_port_and_each_runs_what_it_accepted(two_workers: Server) -> None:
    with pinned_client(two_workers, 0) as first, pinned_client(two_workers, 1) as second:
        put_action(first, "hello", "hello")
        assert invoke(first, "hello", {"name": "zero"}).json() == {"greeting": "Hello, zero!"}
        assert invoke(second, "hello", {"name": "one"}).json() == {"greeting": "Hello, one!"}
        assert (worker_of(first), worker_of(second)) == ("invoker0", "invoker1")


def test_an_update_through_one_worker_is_seen_by_the_next_invoke_through_the_other(two_workers: Server) -> None:
    # The entity cache TTL is 600 s: only the store's change feed can make worker 1 see worker 0's writes.
    with pinned_client(two_workers, 0) as first, pinned_client(two_workers, 1) as second:
        put_action(first, "changing", "hello")
        assert invoke(second, "changing", {"name": "B"}).json() == {"greeting": "Hello, B!"}  # cached on worker 1

        put_action(first, "changing", "echo")
        start = time.monotonic()
        wait_until(lambda: invoke(second, "changing", {"name": "B"}).json() == {"name": "B"}, "the new code on 1")
        seen_after = time.monotonic() - start

        assert first.delete(f"{ACTIONS}/changing").status_code == 200
        wait_until(lambda: invoke(second, "changing", {}).status_code == 404, "404 on worker 1")
        assert invoke(first, "changing", {}).status_code == 404
        assert (worker_of(first), worker_of(second)) == ("invoker0", "invoker1")
    print(f"worker 1 ran the new code {seen_after * 1000:.0f} ms after worker 0 answered the update")


def test_a_scrape_of_either_worker_counts_the_activations_of_both(two_workers: Server) -> None:
    # The supervisor gives its workers one PROMETHEUS_MULTIPROC_DIR (launcher/workers.py), so /metrics
    # aggregates counters over the workers whichever of them answers the scrape (pywhisk/metrics.py).
    with pinned_client(two_workers, 0) as first, pinned_client(two_workers, 1) as second:
        put_action(first, "metered", "hello")
        for _ in range(3):
            assert invoke(first, "metered", {}).status_code == 200
        for _ in range(2):
            assert invoke(second, "metered", {}).status_code == 200

        def activations(client: httpx.Client) -> float:
            total = 0.0
            for family in text_string_to_metric_families(client.get("/metrics").text):
                for sample in family.samples:
                    if sample.name == "openwhisk_action_activations_total" and sample.labels["action"] == "metered":
                        total += sample.value
            return total

        wait_until(lambda: activations(first) == 5 and activations(second) == 5, "5 activations in both scrapes")
        assert (worker_of(first), worker_of(second)) == ("invoker0", "invoker1")


def test_each_standalone_worker_enforces_its_share_of_the_namespace_rate(two_workers: Server) -> None:
    _away_from_a_minute_boundary()
    tenant = new_tenant(two_workers, invocations_per_minute=10)
    with pinned_client(tenant, 1) as second:
        put_action(second, "counted", "hello")
        statuses = [second.post(f"{ACTIONS}/counted", json={}).status_code for _ in range(7)]
        refused = second.post(f"{ACTIONS}/counted", json={})
    # OpenWhisk's share of 10 for a cluster of 2: ceil(10 * 1.2) // 2 = 6 per controller.
    assert statuses == [202] * 6 + [429]
    assert "allowed: 6" in refused.json()["error"]


def test_a_worker_killed_under_load_is_restarted_and_every_202_has_exactly_one_record(tmp_path: Path) -> None:
    server = start_standalone(tmp_path, "--workers", "2", env=ENV)
    try:
        with pinned_client(server, 0) as api:
            put_action(api, "hello", "hello", limits={"memory": 128})
            put_action(api, "sleep", "sleep", limits={"memory": 128})
        before = worker_pids(server.process.pid)
        accepted = asyncio.run(_invoke_until_worker_killed(server, before[1]))
        wait_until(lambda: worker_pids(server.process.pid).get(1, before[1]) != before[1], "worker 1 restarted")
        with pinned_client(server, 1) as api:
            counts = record_counts(api, ["hello", "sleep"], set(accepted), 120, "/api/v1/namespaces/_/activations")
        assert set(counts) == set(accepted), "accepted activations without a record"
        assert all(n == 1 for n in counts.values()), {k: v for k, v in counts.items() if v != 1}
        log = server.log_path.read_text()
        assert "worker 1 exited with signal SIGKILL" in log
        assert "delivering them again" in log  # worker 1's sleeps, mid-run at the kill, ran again
        assert worker_pids(server.process.pid)[0] == before[0]  # the other worker never stopped
    finally:
        stop_standalone(server)


async def _invoke_until_worker_killed(server: Server, worker_pid: int) -> dict[str, str]:
    """Sleeps through worker 1 (running at the kill), then hellos from 32 connections; SIGKILL worker 1 once
    200 of them were answered 202 (or 3 s after the sleeps), invokes still in flight. Returns activation id → action."""
    accepted: dict[str, str] = {}
    killed = asyncio.Event()
    uuid_, key = server.auth.split(":")

    async def post(api: httpx.AsyncClient, name: str, params: dict[str, Any]) -> bool:
        try:
            response = await api.post(f"{ACTIONS}/{name}", json=params)
        except httpx.TransportError:  # on the killed worker, unanswered: never accepted
            return False
        assert response.status_code == 202, response.text
        accepted[response.json()["activationId"]] = name
        return True

    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    while True:  # a connection to worker 1, for the sleeps
        sleeper = httpx.AsyncClient(base_url=server.apihost, auth=(uuid_, key), timeout=30, limits=limits)
        if (await sleeper.get("/invokers")).json() == {"invoker1": "up"}:
            break
        await sleeper.aclose()
    try:
        for _ in range(6):
            assert await post(sleeper, "sleep", {"ms": 8000})
    finally:
        await sleeper.aclose()
    # The kill must find the sleeps mid-run: at 206 hellos, or 3 s after the sleeps were accepted if the hellos are
    # slow (a loaded machine), well inside their 8 s.
    kill_by = time.monotonic() + 3

    async def client() -> None:
        async with httpx.AsyncClient(base_url=server.apihost, auth=(uuid_, key), timeout=30, limits=limits) as api:
            while not killed.is_set() and await post(api, "hello", {"name": "crash"}):
                if (len(accepted) >= 206 or time.monotonic() > kill_by) and not killed.is_set():
                    os.kill(worker_pid, signal.SIGKILL)
                    killed.set()

    await asyncio.gather(*(client() for _ in range(32)))
    return accepted


def test_worker_0_adopts_the_journal_of_a_worker_that_no_longer_runs(tmp_path: Path) -> None:
    server = start_standalone(tmp_path, "--workers", "2", env=ENV)
    accepted: list[str] = []
    try:
        with pinned_client(server, 1) as api:
            put_action(api, "sleep", "sleep", limits={"memory": 128})
            for _ in range(4):
                response = api.post(f"{ACTIONS}/sleep", json={"ms": 4000})
                assert response.status_code == 202, response.text
                accepted.append(response.json()["activationId"])
    finally:  # the whole server dies at once, the sleeps mid-run: the supervisor frozen first, so it restarts nothing
        pids = worker_pids(server.process.pid)
        server.process.send_signal(signal.SIGSTOP)
        for pid in pids.values():
            os.kill(pid, signal.SIGKILL)
        server.process.kill()
        server.process.wait()
    wait_until(lambda: not any(alive(pid) for pid in pids.values()), "the workers gone")

    server = start_standalone(tmp_path, env=ENV)  # one worker now
    try:
        with _one_connection_client(server) as api:
            counts = record_counts(api, ["sleep"], set(accepted), 60, "/api/v1/namespaces/_/activations")
        assert counts == {activation_id: 1 for activation_id in accepted}
        assert "adopted 4 unacknowledged messages of worker 1" in server.log_path.read_text()
        # Worker 1's Docker containers (its prewarmed stem cells) are worker 0's to remove too.
        assert worker_containers(tmp_path, invoker_id=1) == []
    finally:
        assert stop_standalone(server) == 0


def worker_containers(data_dir: Path, invoker_id: int) -> list[str]:
    """Ids of the Docker containers standalone invoker ``invoker_id`` on ``data_dir`` owns ([] without Docker)."""
    try:
        client = docker.from_env(timeout=10)
        client.ping()
    except docker.errors.DockerException:
        return []
    owner = f"invoker{invoker_id}@{socket.gethostname()}:{data_dir.resolve()}"
    with contextlib.closing(client):
        return [c.id for c in client.containers.list(all=True, filters={"label": f"pywhisk.owner={owner}"})]


def test_sigterm_to_the_supervisor_stops_every_worker_and_sigkill_leaves_no_orphan(
    two_workers: Server, tmp_path: Path
) -> None:
    # The module's shared server, stopped here: this test comes after every other test that uses it.
    pids = worker_pids(two_workers.process.pid)
    assert sorted(pids) == [0, 1]
    assert stop_standalone(two_workers) == 0
    assert not any(alive(pid) for pid in pids.values())
    assert two_workers.log_path.read_text().count("pywhisk standalone stopped") == 2  # each drained and closed

    server = start_standalone(tmp_path / "kill", "--workers", "2", env=ENV)
    pids = worker_pids(server.process.pid)
    server.process.kill()  # no chance to stop anything: the kernel tells the workers (PR_SET_PDEATHSIG)
    server.process.wait()
    wait_until(lambda: not any(alive(pid) for pid in pids.values()), "the workers gone after the parent's kill")


def new_tenant(server: Server, *, invocations_per_minute: int) -> Server:
    """The server as seen by a new subject (``pywhisk admin user create``) with this rate limit: its own
    per-minute books, untouched by other tests' invokes."""
    name = f"tenant-{uuid.uuid4().hex[:8]}"
    auth = admin(server.admin_env, "user", "create", name).stdout.strip()
    admin(server.admin_env, "namespace", "limits", "set", name, "--invocations-per-minute", str(invocations_per_minute))
    return dataclasses.replace(server, auth=auth)


def _away_from_a_minute_boundary() -> None:
    """Throttle windows are calendar minutes: do not count across one."""
    if time.time() % 60 > 50:
        time.sleep(61 - time.time() % 60)


# distributed ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def worker_controllers(
    kafka_broker: str, couchdb_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    deployment = start_deployment(
        kafka_broker,
        couchdb_url,
        tmp_path_factory.mktemp("worker-controllers"),
        controllers=1,
        invokers=2,
        controller_env={**ENV, "PYWHISK_WORKERS": "2"},
    )
    yield deployment
    deployment.stop()


@pytest.mark.kafka
def test_controller_workers_each_dispatch_over_their_own_completion_topic(
    worker_controllers: Deployment, kafka_broker: str
) -> None:
    server = worker_controllers.server(0)
    with _one_connection_client(server) as api:
        put_action(api, "hello", "hello")
    before = asyncio.run(_completed_offsets(kafka_broker, worker_controllers.prefix))
    for n in range(40):  # a new connection each: the kernel spreads them over both workers
        with _one_connection_client(server) as fresh:
            assert invoke(fresh, "hello", {"name": str(n)}).json() == {"greeting": f"Hello, {n}!"}
    after = asyncio.run(_completed_offsets(kafka_broker, worker_controllers.prefix))
    assert all(after[c] > before[c] for c in (0, 1)), (before, after)


@pytest.mark.kafka
def test_each_controller_worker_enforces_its_share_of_the_namespace_rate(worker_controllers: Deployment) -> None:
    _away_from_a_minute_boundary()
    tenant = new_tenant(worker_controllers.server(0), invocations_per_minute=10)
    with _one_connection_client(tenant) as api:
        put_action(api, "counted", "hello")
        statuses = [api.post(f"{ACTIONS}/counted", json={}).status_code for _ in range(7)]
        refused = api.post(f"{ACTIONS}/counted", json={})
    assert statuses == [202] * 6 + [429]  # 10 shared by a cluster of 2 controllers: 6 each (OpenWhisk)
    assert "allowed: 6" in refused.json()["error"]


@pytest.mark.kafka
def test_sigterm_to_the_controller_supervisor_stops_its_workers(worker_controllers: Deployment) -> None:
    process = worker_controllers.controller_procs[0][0]
    pids = worker_pids(process.pid)
    assert sorted(pids) == [0, 1]
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
    wait_until(lambda: not any(alive(pid) for pid in pids.values()), "the controller workers gone")


async def _completed_offsets(bootstrap: str, prefix: str) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        # One partition per topic: the KafkaBus default (pywhisk/bus/kafka.py).
        ends = await consumer.end_offsets([TopicPartition(f"{prefix}completed{c}", 0) for c in (0, 1)])
    finally:
        await consumer.stop()
    return {int(tp.topic.removeprefix(f"{prefix}completed")): offset for tp, offset in ends.items()}
