"""One namespace's big activation records must not stall another namespace's requests (issue 12, the ``records``
class of the noisy neighbour), against a real ``pywhisk standalone``.

Standalone runs controller, invoker and executor on one event loop: a pass over a ~7 MB record made on it
(building, cutting, serialising, parsing it back) stalls every other request for as long as it takes. The
attacker's ``logs`` action prints 1,000,000 lines at its 10 MB log limit, so every record is cut at
``activation_max_bytes``; meanwhile the guest invokes hello back to back and polls ``GET /api/v1`` (no store,
no auth: its latency is the time the loop was busy elsewhere). Speed is the benchmark's (bench/noisy_records.py,
docs/benchmarks.md "Noisy neighbour"); this test holds generous bounds that a pass over a whole record on the
loop exceeds on this machine, and checks that the records themselves come out whole and the same every way
they are read.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from launcher.testing import Server, start_standalone, stop_standalone
from pywhisk.activation import Messages
from tests.conftest import TEST_CONTROLLER_ENV, wasm_code

pytestmark = pytest.mark.integration

BIG_RECORDS = 6
ATTACKER_CONCURRENCY = 2
LOG_LINES = 1_000_000
RECORD_MAX_BYTES = 7_000_000  # Settings.activation_max_bytes, the default
# Generous bounds. Here (2 cores, shared) hello takes ~6 ms and a probe ~1.5 ms quiet (p99 ~15 ms and ~5 ms). With
# each pass over a whole record made on the loop (building and cutting it, its completion serialised and parsed,
# the API answer), the probes' p99 was 130-136 ms in three runs (max 237-283 ms); with them on threads, a slice
# at a time, 47-63 ms (max 112-146 ms): what is left is the executor turning 10 MB of output into lines on its
# worker threads (executor_wasm/stdio.py collect_logs), which competes for the GIL. The probe bound sits well
# above both so that a busy machine cannot fail it; it catches a loop held for whole passes again and again
# (several records' worth), and the benchmark tells the finer difference.
HELLO_BOUND_MS = 1000.0
PROBE_P99_BOUND_MS = 250.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_standalone(tmp_path_factory.mktemp("big-records"), env=TEST_CONTROLLER_ENV)
    yield server
    stop_standalone(server)


@pytest.fixture(scope="module")
def attacker(server: Server) -> str:
    return server.admin("user", "create", "logger", "--namespace", "logger")


@pytest.fixture(scope="module")
def run(server: Server, attacker: str) -> dict[str, Any]:
    """The attacker's big records beside the guest's hellos and probes; what each side saw."""
    return asyncio.run(_run(server, attacker))


async def _run(server: Server, attacker: str) -> dict[str, Any]:
    base = f"{server.apihost}/api/v1"
    victim = httpx.AsyncClient(base_url=base, auth=tuple(server.auth.split(":")), timeout=120)  # type: ignore[arg-type]
    mallory = httpx.AsyncClient(base_url=base, auth=tuple(attacker.split(":")), timeout=120)  # type: ignore[arg-type]
    async with victim, mallory:
        for client, name, module, limits in (
            (victim, "hello", "hello", {}),
            (mallory, "logs", "logs", {"logs": 10, "timeout": 60_000}),
        ):
            body = {"exec": {"kind": "wasm:wasi", "code": wasm_code(module)}, "limits": limits}
            put = await client.put(f"/namespaces/_/actions/{name}", params={"overwrite": "true"}, json=body)
            assert put.status_code == 200, put.text
        warm = await victim.post("/namespaces/_/actions/hello", params={"blocking": "true"}, json={})
        assert warm.status_code == 200, warm.text

        done = asyncio.Event()
        hellos: list[tuple[float, int]] = []
        probes: list[float] = []
        answers: list[httpx.Response] = []

        async def hello() -> None:
            while not done.is_set():
                started = time.perf_counter()
                r = await victim.post("/namespaces/_/actions/hello", params={"blocking": "true"}, json={"name": "v"})
                hellos.append(((time.perf_counter() - started) * 1000, r.status_code))

        async def probe() -> None:
            while not done.is_set():
                started = time.perf_counter()
                await victim.get("", auth=None)
                probes.append((time.perf_counter() - started) * 1000)

        async def big_records(count: int) -> None:
            for _ in range(count):
                answers.append(
                    await mallory.post(
                        "/namespaces/_/actions/logs", params={"blocking": "true"}, json={"count": LOG_LINES}
                    )
                )

        watchers = [asyncio.create_task(hello()), asyncio.create_task(probe())]
        try:
            per_worker = BIG_RECORDS // ATTACKER_CONCURRENCY
            await asyncio.gather(*(big_records(per_worker) for _ in range(ATTACKER_CONCURRENCY)))
        finally:
            done.set()
            await asyncio.gather(*watchers)
        stored = [
            await mallory.get(f"/namespaces/_/activations/{r.headers['x-openwhisk-activation-id']}") for r in answers
        ]
        logs = await mallory.get(f"/namespaces/_/activations/{answers[0].headers['x-openwhisk-activation-id']}/logs")
    return {"hellos": hellos, "probes": probes, "answers": answers, "stored": stored, "logs": logs}


def test_big_records_are_cut_at_the_bound_and_read_back_the_same(run: dict[str, Any]) -> None:
    answers: list[httpx.Response] = run["answers"]
    stored: list[httpx.Response] = run["stored"]

    assert [r.status_code for r in answers] == [200] * BIG_RECORDS
    for answer, again in zip(answers, stored, strict=True):
        record = answer.json()
        assert record["response"] == {
            "status": "success",
            "success": True,
            "result": {"lines": LOG_LINES},
            "size": len('{"lines":1000000}'),
        }
        assert len(answer.content) <= RECORD_MAX_BYTES
        assert record["logs"][0].endswith("stdout: line 1")
        assert record["logs"][-1].endswith(f"stderr: {Messages.truncated_logs(RECORD_MAX_BYTES)}")
        assert len(record["logs"]) > 100_000  # cut near the bound, not far below it
        # The blocking answer (read from the store: too big for the completion) and a later GET agree byte
        # for byte.
        assert again.status_code == 200
        assert again.content == answer.content
    assert run["logs"].json() == {"logs": answers[0].json()["logs"]}


def test_another_namespaces_hellos_stay_within_a_generous_bound(run: dict[str, Any]) -> None:
    hellos: list[tuple[float, int]] = run["hellos"]

    assert len(hellos) > 10, "the hellos did not overlap the big records"
    assert {status for _, status in hellos} == {200}
    slow = sorted(ms for ms, _ in hellos if ms > HELLO_BOUND_MS)
    assert not slow, f"{len(slow)} of {len(hellos)} hellos over {HELLO_BOUND_MS} ms: {slow}"


def test_the_event_loop_is_not_held_by_the_big_records(run: dict[str, Any]) -> None:
    probes = sorted(run["probes"])

    assert len(probes) > 50, "the probes did not overlap the big records"
    p99 = probes[int(len(probes) * 0.99)]
    assert p99 < PROBE_P99_BOUND_MS, f"probe p99 {p99:.0f} ms over {len(probes)} probes; slowest {probes[-10:]}"


@pytest.mark.kafka
def test_a_big_record_is_answered_to_a_blocking_caller_in_distributed_mode(distributed: Server) -> None:
    """A ~7 MB record is more than a Kafka message takes (4 MiB here): its completion goes without it, as
    OpenWhisk's shrunk acknowledgement ([OW] core/invoker/.../MessagingActiveAck.scala: ``acknowledegment.shrink``
    on ``RecordTooLargeException``), and the controller answers from the store, at once rather than after the
    blocking timeout."""
    with distributed.client() as api:
        body = {"exec": {"kind": "wasm:wasi", "code": wasm_code("logs")}, "limits": {"logs": 10, "timeout": 60_000}}
        assert api.put("/namespaces/_/actions/big-logs", params={"overwrite": "true"}, json=body).status_code == 200
        started = time.monotonic()
        answer = api.post(
            "/namespaces/_/actions/big-logs", params={"blocking": "true"}, json={"count": LOG_LINES}, timeout=120
        )
        elapsed = time.monotonic() - started

    assert answer.status_code == 200, answer.text[:500]
    record = answer.json()
    assert record["response"]["result"] == {"lines": LOG_LINES}
    assert record["logs"][-1].endswith(f"stderr: {Messages.truncated_logs(RECORD_MAX_BYTES)}")
    assert elapsed < 30, f"answered after {elapsed:.0f} s: the completion was lost and the caller waited it out"
