"""The closed-loop ramp's scheduling, driven by a fake clock and a fake invoke (no server, no real time)."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from loadgen.client import Invocation
from loadgen.experiments.ramp import ramp

pytestmark = pytest.mark.unit


class FakeServer:
    """Each invoke takes ``service_s`` of fake time and records how many were in flight when it was issued."""

    def __init__(self, service_s: float = 0.125) -> None:  # exact in binary: no rounding at window edges
        self.now = 0.0
        self.service_s = service_s
        self.in_flight = 0
        self.max_in_flight = 0
        self.issued = 0

    def clock(self) -> float:
        return self.now

    async def invoke(self, name: str, params: dict[str, Any]) -> Invocation:
        self.in_flight += 1
        self.issued += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        issued = self.now
        await asyncio.sleep(0)
        self.now += self.service_s  # the fake clock only moves when something completes
        self.in_flight -= 1
        record = {"response": {"status": "success"}, "annotations": [{"key": "waitTime", "value": 1}]}
        return Invocation(name, f"id{self.issued}", 200, self.service_s * 1000, issued, self.now, record, "success")


def choose() -> tuple[str, dict[str, Any]]:
    return "hello", {}


async def test_ramp_climbs_one_level_per_window_up_to_abort_after() -> None:
    server = FakeServer()

    result = await ramp(server.invoke, choose, increase_after_s=1.0, abort_after=5, clock=server.clock)

    assert [w.level for w in result.windows] == [1, 2, 3, 4, 5]
    assert all(w.end_s - w.start_s >= 1.0 for w in result.windows)
    assert all(a.end_s == b.start_s for a, b in zip(result.windows, result.windows[1:], strict=False))
    assert {level for level, _ in result.completions} == {1, 2, 3, 4, 5}
    # Never more in flight than the highest level; nothing issued is lost.
    assert server.max_in_flight == 5
    assert server.issued == len(result.completions)
    assert server.in_flight == 0


async def test_in_flight_equals_the_level_while_ramping() -> None:
    server = FakeServer()
    seen: list[tuple[int, int]] = []

    async def invoke(name: str, params: dict[str, Any]) -> Invocation:
        seen.append((server.in_flight + 1, server.issued))
        return await server.invoke(name, params)

    result = await ramp(invoke, choose, increase_after_s=0.5, abort_after=4, clock=server.clock)

    # The level each request was issued at equals the number in flight right after issuing it
    # (the replacement of a completion, or the extra request that opens a level).
    levels = [level for level, _ in sorted(result.completions, key=lambda c: c[1].issued_at)]
    in_flight_at_issue = [count for count, _ in seen]
    assert max(in_flight_at_issue) == 4
    assert Counter(levels).keys() == {1, 2, 3, 4}
    for level, window in zip(range(1, 5), result.windows, strict=True):
        assert window.level == level


async def test_each_window_counts_the_requests_issued_in_it() -> None:
    server = FakeServer(service_s=0.25)

    result = await ramp(server.invoke, choose, increase_after_s=1.0, abort_after=3, clock=server.clock)

    issued_per_level = Counter(level for level, _ in result.completions)
    assert {w.level: w.issued for w in result.windows} == dict(issued_per_level)


async def test_zero_increase_after_adds_one_per_completion() -> None:
    server = FakeServer()

    result = await ramp(server.invoke, choose, increase_after_s=0.0, abort_after=3, clock=server.clock)

    assert [w.level for w in result.windows] == [1, 2, 3]
    assert server.max_in_flight <= 3


async def test_abort_after_one_is_a_single_level() -> None:
    server = FakeServer()

    result = await ramp(server.invoke, choose, increase_after_s=1.0, abort_after=1, clock=server.clock)

    assert [w.level for w in result.windows] == [1]
    assert server.max_in_flight == 1
    assert len(result.completions) == 8  # 1 s of 0.125 s requests, one at a time


async def test_a_failing_invoke_cancels_the_rest() -> None:
    server = FakeServer()
    calls = 0

    async def invoke(name: str, params: dict[str, Any]) -> Invocation:
        nonlocal calls
        calls += 1
        if calls == 5:
            raise RuntimeError("boom")
        return await server.invoke(name, params)

    with pytest.raises(RuntimeError, match="boom"):
        await ramp(invoke, choose, increase_after_s=0.1, abort_after=10, clock=server.clock)
    await asyncio.sleep(0)
    assert server.in_flight <= 1  # whatever was in flight was cancelled


async def test_abort_after_below_one_is_refused() -> None:
    from loadgen.errors import LoadgenError

    server = FakeServer()
    with pytest.raises(LoadgenError):
        await ramp(server.invoke, choose, increase_after_s=1.0, abort_after=0, clock=server.clock)
