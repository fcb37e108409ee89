"""The action proxy's side of ``limits.concurrency`` > 1: concurrent ``/run``s with ``__OW_ALLOW_CONCURRENT=true``.

The proxy (executor_docker/runtimes/proxy/actionproxy.py) runs as a plain process, as in test_action_proxy.py.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.unit.test_action_proxy import RUN_META, SENTINEL, RunningProxy, start_proxy, stop

pytestmark = pytest.mark.unit

# Each run waits until `n` runs are inside main at once (or `wait` s pass), then answers its own params.
BARRIER_ACTION = """
import sys, threading, time
inside = 0
lock = threading.Lock()
def main(args):
    global inside
    with lock:
        inside += 1
    # One write per line: print() writes the text and the newline apart, and concurrent runs interleaved them.
    sys.stdout.write(f"run {args['id']} in\\n")
    deadline = time.monotonic() + args.get("wait", 5)
    while inside < args["n"] and time.monotonic() < deadline:
        time.sleep(0.01)
    return {"id": args["id"], "met": inside >= args["n"]}
"""

NATIVE_ACTION = """#!/bin/sh
id=$(echo "$1" | sed 's/.*"id": *\\([0-9]*\\).*/\\1/')
echo "native $id one"
sleep 0.2
echo "native $id two"
echo "{\\"id\\": $id}"
"""


@pytest.fixture
def concurrent(tmp_path: Path) -> Iterator[RunningProxy]:
    running = start_proxy(tmp_path, {"__OW_ALLOW_CONCURRENT": "true"})
    yield running
    stop(running)


@pytest.fixture
def serial(tmp_path: Path) -> Iterator[RunningProxy]:
    running = start_proxy(tmp_path)
    yield running
    stop(running)


def run_at_once(proxy: RunningProxy, values: list[dict[str, Any]]) -> list[httpx.Response]:
    """POST /run with each value at the same time, each on its own connection (as the invoker does)."""
    answers: list[httpx.Response | None] = [None] * len(values)

    def run(index: int) -> None:
        with httpx.Client(base_url=str(proxy.client.base_url), timeout=30) as client:
            answers[index] = client.post("/run", json={"value": values[index], **RUN_META})

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(values))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(answer is not None for answer in answers)
    return [answer for answer in answers if answer is not None]


def test_concurrent_runs_are_all_inside_the_action_at_once_and_get_their_own_results(
    concurrent: RunningProxy,
) -> None:
    assert concurrent.init(BARRIER_ACTION).status_code == 200
    answers = run_at_once(concurrent, [{"id": i, "n": 3} for i in range(3)])
    assert [a.json() for a in answers] == [{"id": i, "met": True} for i in range(3)]
    stdout = concurrent.stdout().splitlines()
    assert sorted(stdout[:3]) == ["run 0 in", "run 1 in", "run 2 in"], "all in before any sentinel"
    assert stdout.count(SENTINEL) == 3 and concurrent.stderr().splitlines().count(SENTINEL) == 3


def test_without_the_variable_runs_are_one_at_a_time(serial: RunningProxy) -> None:
    assert serial.init(BARRIER_ACTION).status_code == 200
    answers = run_at_once(serial, [{"id": i, "n": 2, "wait": 0.5} for i in range(2)])
    # The first run waits out its 0.5 s alone; the second then finds the count at 2 at once.
    assert sorted(a.json()["met"] for a in answers) == [False, True]
    stdout = serial.stdout().splitlines()
    assert stdout[1] == SENTINEL, "the second run started after the first one's sentinel"


def test_concurrent_native_runs_keep_their_lines_with_their_own_sentinels(tmp_path: Path) -> None:
    native = start_proxy(tmp_path, {"__OW_ALLOW_CONCURRENT": "true", "OW_ACTION_KIND": "native"})
    try:
        assert native.init(NATIVE_ACTION).status_code == 200
        answers = run_at_once(native, [{"id": i} for i in range(4)])
        assert [a.json() for a in answers] == [{"id": i} for i in range(4)]
        blocks = native.stdout().split(SENTINEL + "\n")
        assert blocks[-1] == ""
        assert sorted(blocks[:-1]) == [f"native {i} one\nnative {i} two\n" for i in range(4)]
    finally:
        stop(native)
