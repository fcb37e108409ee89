"""The experiments against a fake OpenWhisk server (httpx.MockTransport): cold-start verification, the mixed
draw, capacity's judgement of levels, and the raw files each writes."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import httpx
import pytest

from loadgen.actions import BENCHMARKS
from loadgen.client import WhiskClient
from loadgen.config import Target
from loadgen.errors import LoadgenError
from loadgen.experiments import Context
from loadgen.experiments.capacity import CapacityParams, levels, run_capacity
from loadgen.experiments.coldstart import ColdStartParams, run_coldstart
from loadgen.experiments.ramp import MixedParams, run_mixed
from loadgen.records import load_rows, load_summary

pytestmark = pytest.mark.unit


class FakeWhisk:
    """Actions with revisions and a pool of warm instances keyed like OpenWhisk's: (action, revision).

    ``revision_aware=False`` models a server that would reuse a warm instance across updates (the case the
    cold-start experiment must catch). ``slots`` bounds how many activations run at once (the rest queue).
    """

    def __init__(self, *, revision_aware: bool = True, slots: int = 1000) -> None:
        self.revision_aware = revision_aware
        self.revisions: dict[str, int] = {}
        self.idle: Counter[tuple[str, int]] = Counter()
        self.slots = asyncio.Semaphore(slots)
        self.puts = 0
        self.bodies: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.count = 0

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/api/v1":
            return httpx.Response(200, json={"build": "fake"})
        name = path.rsplit("/", 1)[-1]
        if request.method == "GET":
            return httpx.Response(200, json=[])
        if request.method == "PUT":
            self.puts += 1
            self.revisions[name] = self.revisions.get(name, 0) + 1
            return httpx.Response(200, json={"name": name, **json.loads(request.content)})
        params = json.loads(request.content)
        self.bodies[name].append(params)
        key = (name, self.revisions[name] if self.revision_aware else 0)
        cold = self.idle[key] == 0
        if not cold:
            self.idle[key] -= 1
        async with self.slots:
            start = time.time()
            await asyncio.sleep(params.get("ms", 0) / 1000 if "sleep" in name else 0)
            end = time.time()
        self.idle[key] += 1
        self.count += 1
        annotations = [{"key": "waitTime", "value": 1}] + ([{"key": "initTime", "value": 5}] if cold else [])
        record = {
            "activationId": f"id{self.count}",
            "start": int(start * 1000),
            "end": int(end * 1000),
            "duration": int((end - start) * 1000),
            "response": {"status": "success", "success": True, "result": {}},
            "annotations": annotations,
        }
        return httpx.Response(200, json=record)


@pytest.fixture
def actions_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "actions"
    (folder / "wasm").mkdir(parents=True)
    for name in BENCHMARKS:
        (folder / "wasm" / f"{name}.wasm").write_bytes(b"\0asm\1\0\0\0")
    return folder


def context(server: FakeWhisk, actions_dir: Path, out: Path) -> Context:
    client = WhiskClient(Target("http://openwhisk.test", "u:k"), transport=httpx.MockTransport(server))
    return Context(client, "wasm", actions_dir, out)


async def test_coldstart_updates_every_action_so_each_request_is_cold(actions_dir: Path, tmp_path: Path) -> None:
    server = FakeWhisk()
    out = tmp_path / "cold"

    rows = await run_coldstart(context(server, actions_dir, out), ColdStartParams(levels=3, runs=2))

    assert len(rows) == 2 * (1 + 2 + 3)
    assert all(r.cold and r.cold_start_ms == 6 for r in rows)
    assert Counter((r.run, r.level) for r in rows) == {(run, lvl): lvl for run in (1, 2) for lvl in (1, 2, 3)}
    # level L goes to the L distinct copies cold-1..cold-L
    assert {r.action for r in rows if r.level == 3} == {"lg-wasm-cold-1", "lg-wasm-cold-2", "lg-wasm-cold-3"}
    assert server.puts == 4 + 2 * (1 + 2 + 3)  # creates (with the warm-up copy), then a new revision per level
    assert len(load_rows(out)) == len(rows)
    summary = load_summary(out)
    assert (summary["status"], summary["experiment"], summary["parameters"]["cold_by"]) == (
        "complete",
        "coldstart",
        "update",
    )


async def test_coldstart_fails_loudly_when_a_request_was_warm(actions_dir: Path, tmp_path: Path) -> None:
    server = FakeWhisk(revision_aware=False)
    out = tmp_path / "cold"

    with pytest.raises(LoadgenError, match=r"run 1 level 2: 1 of 2 activations were NOT cold"):
        await run_coldstart(context(server, actions_dir, out), ColdStartParams(levels=3, runs=1))

    summary = load_summary(out)
    assert summary["status"] == "failed"
    assert "NOT cold" in summary["error"]
    assert [r.cold for r in load_rows(out)] == [True, False, True]  # what was measured is kept


async def test_mixed_draws_net_and_prime_by_weight(actions_dir: Path, tmp_path: Path) -> None:
    for share, expected in ((100, {"lg-wasm-net"}), (0, {"lg-wasm-prime"})):
        server = FakeWhisk()
        params = MixedParams(increase_after_s=0.01, abort_after=3, io_share=share, seed=1, net_ms=5)

        rows = await run_mixed(context(server, actions_dir, tmp_path / f"mixed{share}"), params)

        assert {r.action for r in rows} == expected
        assert {r.level for r in rows} == {1, 2, 3}
    assert server.bodies["lg-wasm-prime"][0] == {}  # the action's default n unless --prime-n


async def test_capacity_stops_at_the_first_failed_level(actions_dir: Path, tmp_path: Path) -> None:
    server = FakeWhisk(slots=4)
    out = tmp_path / "capacity"
    params = CapacityParams(start=2, step=2, max=8, ms=60, pause_s=0, require_simultaneous=True)

    outcomes = await run_capacity(context(server, actions_dir, out), params)

    assert [(o.level, o.passed, o.peak_simultaneous) for o in outcomes] == [(2, True, 2), (4, True, 4), (6, False, 4)]
    assert "only 4 of 6" in (outcomes[-1].first_failure or "")
    result = load_summary(out)["result"]
    assert (result["highest_passed_level"], result["first_failed_level"]) == (4, 6)
    assert (out / "resources.jsonl").exists()


async def test_capacity_without_strictness_counts_queued_levels_as_passed(actions_dir: Path, tmp_path: Path) -> None:
    server = FakeWhisk(slots=3)
    params = CapacityParams(start=3, step=3, max=6, ms=40, pause_s=0)

    outcomes = await run_capacity(context(server, actions_dir, tmp_path / "capacity"), params)

    assert [(o.level, o.passed, o.peak_simultaneous) for o in outcomes] == [(3, True, 3), (6, True, 3)]
    assert outcomes[-1].max_duration is not None and outcomes[-1].max_duration >= 40


async def test_capacity_refuses_a_sleep_that_openwhisks_largest_timeout_cannot_hold(
    actions_dir: Path, tmp_path: Path
) -> None:
    # The action's timeout was 2 x --ms: past 150 s the server refused the action (limit 300 s, issue 17).
    server = FakeWhisk()
    params = CapacityParams(start=1, max=1, ms=290_000, pause_s=0, non_blocking=True)

    with pytest.raises(LoadgenError, match="--ms 280000 or less"):
        await run_capacity(context(server, actions_dir, tmp_path / "capacity"), params)
    assert not server.bodies, "nothing was invoked"


def test_capacity_levels_always_end_at_max() -> None:
    assert levels(100, 100, 300) == [100, 200, 300]
    assert levels(5, 5, 12) == [5, 10, 12]
    assert levels(7, 1, 7) == [7]
    with pytest.raises(LoadgenError):
        levels(10, 5, 5)


async def test_a_missing_action_file_is_named(tmp_path: Path) -> None:
    server = FakeWhisk()
    empty = tmp_path / "empty"
    empty.mkdir()

    with pytest.raises(LoadgenError, match=r"the wasm build of 'hello' is missing: .*wasm/hello.wasm"):
        await run_coldstart(context(server, empty, tmp_path / "out"), ColdStartParams(levels=1, runs=1))
