"""The in-process buses: Kafka-like consumer groups, backlog, timeouts and redelivery.

Every test runs against both one-process backends: the memory bus and the SQLite-journalled bus
(standalone's), the latter with every topic journalled. What only the journal does (surviving a
restart) is in test_sqlite_bus.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pywhisk.bus import Bus, Consumer, Delivery
from pywhisk.bus.memory import MemoryBus
from pywhisk.bus.sqlite import SqliteBus

pytestmark = pytest.mark.unit

BusBackend = MemoryBus | SqliteBus


@pytest.fixture(params=["memory", "sqlite"])
async def bus(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BusBackend]:
    bus: BusBackend = MemoryBus() if request.param == "memory" else SqliteBus(tmp_path / "bus.sqlite3")
    await bus.start()
    yield bus
    await bus.close()


async def _drain(consumer: Consumer) -> list[bytes]:
    return _values(await consumer.receive(max_messages=1000, timeout_s=0))


def _values(deliveries: list[Delivery]) -> list[bytes]:
    return [d.value for d in deliveries]


async def test_the_bus_and_its_consumers_satisfy_the_bus_seam(bus: BusBackend) -> None:
    assert isinstance(bus, Bus)
    assert isinstance(await bus.subscribe("t", "g"), Consumer)


async def test_every_group_gets_every_message(bus: BusBackend) -> None:
    controllers = await bus.subscribe("health", "controller0")
    others = await bus.subscribe("health", "controller1")

    await bus.send("health", b"ping-1")
    await bus.send("health", b"ping-2")

    assert await _drain(controllers) == [b"ping-1", b"ping-2"]
    assert await _drain(others) == [b"ping-1", b"ping-2"]


async def test_consumers_of_one_group_share_the_messages(bus: BusBackend) -> None:
    first = await bus.subscribe("invoker0", "invoker")
    second = await bus.subscribe("invoker0", "invoker")
    for n in range(6):
        await bus.send("invoker0", f"m{n}".encode())

    got_first = _values(await first.receive(max_messages=2, timeout_s=0))
    got_second = await _drain(second)

    assert got_first == [b"m0", b"m1"]
    assert got_second == [b"m2", b"m3", b"m4", b"m5"]
    assert await _drain(first) == []


async def test_topics_are_independent(bus: BusBackend) -> None:
    invoker0 = await bus.subscribe("invoker0", "invoker")
    invoker1 = await bus.subscribe("invoker1", "invoker")
    await bus.send("invoker1", b"for-1")
    assert await _drain(invoker0) == []
    assert await _drain(invoker1) == [b"for-1"]


async def test_messages_sent_before_anyone_subscribed_are_delivered_to_the_first_group(bus: BusBackend) -> None:
    await bus.send("completed0", b"early-1")
    await bus.send("completed0", b"early-2")

    first = await bus.subscribe("completed0", "controller")
    late = await bus.subscribe("completed0", "latecomer")

    assert await _drain(first) == [b"early-1", b"early-2"]
    assert await _drain(late) == []


async def test_receive_returns_up_to_max_messages_in_order(bus: BusBackend) -> None:
    consumer = await bus.subscribe("t", "g")
    for n in range(5):
        await bus.send("t", bytes([n]))
    assert _values(await consumer.receive(max_messages=3, timeout_s=1)) == [b"\x00", b"\x01", b"\x02"]
    assert _values(await consumer.receive(max_messages=3, timeout_s=1)) == [b"\x03", b"\x04"]


async def test_receive_on_an_empty_topic_times_out_with_an_empty_list(bus: BusBackend) -> None:
    consumer = await bus.subscribe("quiet", "g")
    started = time.monotonic()
    assert await consumer.receive(max_messages=10, timeout_s=0.05) == []
    assert 0.04 <= time.monotonic() - started < 1


async def test_receive_wakes_up_when_a_message_arrives(bus: BusBackend) -> None:
    consumer = await bus.subscribe("t", "g")
    waiting = asyncio.create_task(consumer.receive(max_messages=10, timeout_s=5))
    await asyncio.sleep(0)
    await bus.send("t", b"hello")
    assert _values(await asyncio.wait_for(waiting, 1)) == [b"hello"]


async def test_unacknowledged_messages_are_redelivered_after_close(bus: BusBackend) -> None:
    consumer = await bus.subscribe("invoker0", "invoker")
    await bus.send("invoker0", b"a")
    await bus.send("invoker0", b"b")
    assert await _drain(consumer) == [b"a", b"b"]

    await consumer.close()

    replacement = await bus.subscribe("invoker0", "invoker")
    assert await _drain(replacement) == [b"a", b"b"]


async def test_acknowledged_messages_are_not_redelivered_in_any_ack_order(bus: BusBackend) -> None:
    consumer = await bus.subscribe("invoker0", "invoker")
    for value in (b"slow", b"fast", b"pending"):
        await bus.send("invoker0", value)
    slow, fast, _pending = await consumer.receive(max_messages=10, timeout_s=0)
    await consumer.ack(fast)  # completes before the one received earlier
    await consumer.ack(slow)
    await bus.send("invoker0", b"newer")

    await consumer.close()

    replacement = await bus.subscribe("invoker0", "invoker")
    assert await _drain(replacement) == [b"pending", b"newer"]


async def test_close_of_one_group_does_not_redeliver_to_another(bus: BusBackend) -> None:
    mine = await bus.subscribe("health", "a")
    theirs = await bus.subscribe("health", "b")
    await bus.send("health", b"ping")
    assert await _drain(mine) == [b"ping"]
    assert await _drain(theirs) == [b"ping"]

    await mine.close()

    assert await _drain(theirs) == []


async def test_receive_cancelled_as_a_message_arrives_is_cancelled_and_keeps_the_message() -> None:
    # The memory bus only: a journalled send returns after its receiver already woke up with the message.
    bus = MemoryBus()
    consumer = await bus.subscribe("invoker0", "invoker")
    receiving = asyncio.create_task(consumer.receive(max_messages=10, timeout_s=5))
    await asyncio.sleep(0)  # now waiting for the first message

    await bus.send("invoker0", b"activation")
    receiving.cancel()  # e.g. Invoker.close() right after a publish

    outcome = await asyncio.gather(receiving, return_exceptions=True)
    assert isinstance(outcome[0], asyncio.CancelledError), f"cancellation swallowed, receive returned {outcome[0]}"
    assert await _drain(consumer) == [b"activation"]
