"""A noisy neighbour in the invoker's pool, with real Wasmtime in a real ``pywhisk standalone``.

Namespace A floods one WASM sleep action (``limits.concurrency`` 1, 256 MB) far past what the pool's
budget holds at once, while namespace B invokes hello. The pool (invoker/pool.py) must: run at most
``(user_memory_mb - reserve) / 256`` of A's sleeps at once (each run charged, none beyond the action's
concurrency), start B's hellos at once from the reserve kept for namespaces running nothing, not behind
A's queue, and end every one of A's activations with its record: success, or OpenWhisk's timeout as a
developer error.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from launcher.testing import Server, start_standalone, stop_standalone
from tests.conftest import TEST_CONTROLLER_ENV
from tests.integration.helpers import annotations, create_wasm_action, wait_for_record

pytestmark = pytest.mark.integration

BUDGET_MB = 1024  # with the default reserve (512, at most a quarter): 256 MB kept for namespaces running nothing
ACTION_MB = 256  # the default limits.memory
A_AT_ONCE = (BUDGET_MB - BUDGET_MB // 4) // ACTION_MB  # 3
SLEEP_MS = 3000
FLOOD = 30  # 30 sleeps of 3 s, 3 at a time: 30 s to drain, first come first served
LATE = 3  # of them, invoked on an action with a 1 s timeout: OpenWhisk's timeout record
HELLOS = 5
# Generous (a quiet hello takes milliseconds): without the reserve a hello would wait for the next release
# of one of A's sleeps (1.5 s on average), and first come first served behind A's whole queue (30 s).
HELLO_BOUND_S = 1.0


def tenant(server: Server, name: str) -> httpx.Client:
    uuid_, key = server.admin("user", "create", name, "--namespace", name).split(":")
    return httpx.Client(base_url=f"{server.apihost}/api/v1", auth=(uuid_, key), timeout=70)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    # WASM only: without a Docker daemon no Docker stem cell (runtimes.json) holds part of the budget.
    env = {**TEST_CONTROLLER_ENV, "PYWHISK_USER_MEMORY_MB": str(BUDGET_MB), "DOCKER_HOST": "unix:///nonexistent.sock"}
    server = start_standalone(tmp_path / "standalone", env=env)
    yield server
    code = stop_standalone(server)
    assert code == 0, f"standalone exited with {code}:\n{server.log_path.read_text()}"


def most_at_once(records: list[dict[str, Any]]) -> int:
    """The most activations whose [start, end] overlapped (an end before a start at the same ms)."""
    events = sorted([(r["start"], 1) for r in records] + [(r["end"], -1) for r in records])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def test_a_flooding_namespace_queues_its_own_sleeps_and_never_delays_anothers_hello(server: Server) -> None:
    alice, bob = tenant(server, "alice"), tenant(server, "bobby")
    try:
        server.admin("namespace", "limits", "set", "alice", "--concurrent-invocations", "500")
        server.admin("namespace", "limits", "set", "alice", "--invocations-per-minute", "1000")
        create_wasm_action(alice, "nap", "sleep", timeout=10_000)
        create_wasm_action(alice, "late", "sleep", timeout=1000)
        create_wasm_action(bob, "hello", "hello")
        quiet_seconds = []
        for _ in range(HELLOS):
            started = time.monotonic()
            assert bob.post("/namespaces/_/actions/hello", params={"blocking": "true"}, json={}).status_code == 200
            quiet_seconds.append(time.monotonic() - started)

        calls = [("late" if i % (FLOOD // LATE) == 0 else "nap", {"ms": SLEEP_MS}) for i in range(FLOOD)]
        flooded = time.monotonic()
        ids = asyncio.run(_flood_as(alice, calls))

        hello_seconds = []
        for i in range(HELLOS):
            started = time.monotonic()
            answer = bob.post("/namespaces/_/actions/hello", params={"blocking": "true"}, json={"name": f"b{i}"})
            hello_seconds.append(time.monotonic() - started)
            assert answer.status_code == 200, answer.text
            assert answer.json()["response"]["result"] == {"greeting": f"Hello, b{i}!"}
        hellos_done = time.monotonic()

        records = [wait_for_record(alice, activation_id, timeout_s=90) for activation_id in ids]
    finally:
        alice.close()
        bob.close()

    # B was served while A's queue was still deep, and promptly.
    assert hellos_done - flooded < FLOOD / A_AT_ONCE * SLEEP_MS / 1000 / 2, "A's queue had drained"
    assert max(hello_seconds) < HELLO_BOUND_S, f"quiet {quiet_seconds}, under the flood {hello_seconds}"

    # A's runs were held to the budget less the reserve: never more than three 256 MB runs at once.
    assert most_at_once(records) <= A_AT_ONCE
    # Every one of A's activations ended with the right record.
    outcomes = {(r["name"], r["response"]["status"]) for r in records}
    assert outcomes == {("nap", "success"), ("late", "action developer error")}, outcomes
    for record in records:
        if record["name"] == "late":
            assert record["response"]["result"] == {
                "error": "The action exceeded its time limits of 1000 milliseconds."
            }
            assert annotations(record)["timeout"] is True
        else:
            assert record["response"]["result"] == {"slept": SLEEP_MS}
    # The sleeps waited in the pool's queue: that wait is their waitTime, not their duration.
    assert max(annotations(r)["waitTime"] for r in records) > 2 * SLEEP_MS


async def _flood_as(api: httpx.Client, calls: list[tuple[str, dict[str, Any]]]) -> list[str]:
    async with httpx.AsyncClient(base_url=str(api.base_url), auth=api.auth, timeout=70) as client:
        answers = await asyncio.gather(*(client.post(f"/namespaces/_/actions/{n}", json=p) for n, p in calls))
    assert [a.status_code for a in answers] == [202] * len(calls), [a.text for a in answers if a.status_code != 202]
    return [a.json()["activationId"] for a in answers]
