"""The Kafka ``Bus`` against a real Apache Kafka broker (deploy/local/kafka.sh).

Over 400 lines because the bus's at-least-once contract has many cases, all against one broker fixture.

Each test works under its own topic/group prefix, so tests sharing the session's broker never see
each other's messages; their topics are deleted afterwards. The broker-restart test runs last and on
a broker of its own, because it stops the broker.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from pywhisk.bus import Bus, Consumer, Delivery
from pywhisk.bus.kafka import KafkaBus, KafkaBusError, KafkaConsumer
from tests.kafka_service import (  # noqa: F401
    KafkaBroker,
    delete_topics,
    free_port_pair,
    kafka_broker,
    private_kafka_broker,
    unique_prefix,
)

pytestmark = [pytest.mark.integration, pytest.mark.kafka]

# A new group's first receive waits for the join and the first fetch; generous, never reached when green.
DELIVERY_TIMEOUT_S = 30.0

MakeBus = Callable[..., Awaitable[KafkaBus]]


@pytest.fixture
async def make_bus(kafka_broker: str, request: pytest.FixtureRequest) -> AsyncIterator[MakeBus]:  # noqa: F811
    """Build started buses on the shared broker under this test's prefix; close them and drop the topics after."""
    prefix = unique_prefix(request)
    buses: list[KafkaBus] = []

    async def make(**options: object) -> KafkaBus:
        options.setdefault("topic_prefix", prefix)
        bus = KafkaBus(kafka_broker, f"test-{len(buses)}", **options)  # type: ignore[arg-type]
        await bus.start()
        buses.append(bus)
        return bus

    yield make
    for bus in buses:
        await bus.close()
    await delete_topics(kafka_broker, prefix)


async def receive_n(consumer: Consumer, count: int, timeout_s: float = DELIVERY_TIMEOUT_S) -> list[Delivery]:
    """Receive until ``count`` messages arrived (or the time is up); returns what arrived."""
    received: list[Delivery] = []
    deadline = time.monotonic() + timeout_s
    while len(received) < count and time.monotonic() < deadline:
        received += await consumer.receive(max_messages=count - len(received), timeout_s=0.5)
    return received


async def receive_values(consumer: Consumer, count: int, ack: bool = False) -> list[bytes]:
    """The values of ``count`` messages, acknowledged if ``ack``."""
    deliveries = await receive_n(consumer, count)
    if ack:
        for delivery in deliveries:
            await consumer.ack(delivery)
    return [delivery.value for delivery in deliveries]


async def nothing_more(consumer: Consumer, quiet_s: float = 1.5) -> bool:
    return await consumer.receive(max_messages=100, timeout_s=quiet_s) == []


# -- the seam ---------------------------------------------------------------------------------------


async def test_kafka_bus_and_consumer_satisfy_the_bus_seam(make_bus: MakeBus) -> None:
    bus = await make_bus()
    consumer = await bus.subscribe("seam", "g")

    assert isinstance(bus, Bus)
    assert isinstance(consumer, Consumer)


async def test_a_sent_message_is_received_with_its_partition_and_offset(make_bus: MakeBus) -> None:
    bus = await make_bus()
    consumer = await bus.subscribe("invoker0", "invoker")

    await bus.send("invoker0", b'{"activationId":"a1"}')
    await bus.send("invoker0", b'{"activationId":"a2"}')

    assert await receive_n(consumer, 2) == [
        Delivery(b'{"activationId":"a1"}', partition=0, offset=0),
        Delivery(b'{"activationId":"a2"}', partition=0, offset=1),
    ]
    assert await nothing_more(consumer)


async def test_messages_sent_before_the_first_subscriber_are_not_skipped(make_bus: MakeBus) -> None:
    bus = await make_bus()
    await bus.send("invoker0", b"early-1")
    await bus.send("invoker0", b"early-2")

    consumer = await bus.subscribe("invoker0", "invoker")

    assert await receive_values(consumer, 2) == [b"early-1", b"early-2"]


async def test_every_group_gets_every_message(make_bus: MakeBus) -> None:
    bus = await make_bus()
    controller0 = await bus.subscribe("health", "controller0")
    controller1 = await bus.subscribe("health", "controller1")

    for n in range(5):
        await bus.send("health", f"ping-{n}".encode())

    expected = [f"ping-{n}".encode() for n in range(5)]
    assert await receive_values(controller0, 5) == expected
    assert await receive_values(controller1, 5) == expected


async def test_members_of_one_group_share_the_partitions_and_no_message_reaches_both(make_bus: MakeBus) -> None:
    bus = await make_bus(partitions=2)
    first = await bus.subscribe("invoker0", "invoker")
    second = await bus.subscribe("invoker0", "invoker")
    assert isinstance(first, KafkaConsumer) and isinstance(second, KafkaConsumer)
    # Wait for the rebalance that gives each member one partition; sending earlier would let a
    # partition move between members mid-test, and an unacknowledged message would then legally
    # reach both.
    deadline = time.monotonic() + DELIVERY_TIMEOUT_S
    while {frozenset(first.assigned_partitions()), frozenset(second.assigned_partitions())} != {
        frozenset({0}),
        frozenset({1}),
    }:
        assert time.monotonic() < deadline, (first.assigned_partitions(), second.assigned_partitions())
        await asyncio.gather(first.receive(10, 0.2), second.receive(10, 0.2))

    sent = {f"activation-{n}".encode() for n in range(60)}
    await asyncio.gather(*(bus.send("invoker0", value) for value in sent))

    got: dict[KafkaConsumer, list[bytes]] = {first: [], second: []}
    deadline = time.monotonic() + DELIVERY_TIMEOUT_S
    while sum(map(len, got.values())) < len(sent) and time.monotonic() < deadline:
        batches = await asyncio.gather(first.receive(100, 0.3), second.receive(100, 0.3))
        for consumer, batch in zip(got, batches, strict=True):
            for delivery in batch:
                got[consumer].append(delivery.value)
                await consumer.ack(delivery)

    assert set(got[first]) | set(got[second]) == sent
    assert not set(got[first]) & set(got[second])
    assert got[first] and got[second], "both members should own a partition with messages on it"


# -- at-least-once ----------------------------------------------------------------------------------


async def test_messages_not_acknowledged_are_redelivered_to_the_next_member(make_bus: MakeBus) -> None:
    bus = await make_bus()
    dying_invoker = await bus.subscribe("invoker0", "invoker")
    await bus.send("invoker0", b"activation-1")
    await bus.send("invoker0", b"activation-2")
    assert await receive_values(dying_invoker, 2) == [b"activation-1", b"activation-2"]

    await dying_invoker.close()  # no ack: as if the invoker stopped before storing the records
    next_invoker = await bus.subscribe("invoker0", "invoker")

    assert await receive_values(next_invoker, 2) == [b"activation-1", b"activation-2"]


@pytest.mark.parametrize("keeps_alive", [True, False])
async def test_a_member_taking_nothing_past_max_poll_interval_stays_only_if_it_keeps_alive(
    make_bus: MakeBus, keeps_alive: bool
) -> None:
    # An invoker whose slots are all busy stops receiving; it holds its work in progress unacknowledged.
    bus = await make_bus(max_poll_interval_s=2.0)
    full_invoker = await bus.subscribe("invoker0", "invoker")
    await bus.send("invoker0", b"in-progress")
    assert await receive_values(full_invoker, 1) == [b"in-progress"]

    for _ in range(6):  # three max.poll.intervals without a receive
        await asyncio.sleep(1.0)
        if keeps_alive:
            await full_invoker.keep_alive()
    await bus.send("invoker0", b"next")

    # Dropped from the group, it would rejoin and get its own unacknowledged work again (run twice).
    expected = [b"next"] if keeps_alive else [b"in-progress", b"next"]
    assert await receive_values(full_invoker, len(expected)) == expected


async def test_acknowledged_messages_are_not_redelivered_in_any_ack_order(make_bus: MakeBus) -> None:
    bus = await make_bus()
    invoker = await bus.subscribe("invoker0", "invoker")
    for n in range(3):
        await bus.send("invoker0", f"activation-{n}".encode())
    slow, medium, fast = await receive_n(invoker, 3)
    for delivery in (fast, slow, medium):  # activations complete in any order
        await invoker.ack(delivery)
    await bus.send("invoker0", b"not-yet-received")
    await invoker.close()

    restarted = await bus.subscribe("invoker0", "invoker")

    assert await receive_values(restarted, 1) == [b"not-yet-received"]
    assert await nothing_more(restarted)


async def test_only_the_acknowledged_prefix_counts_when_a_message_in_the_middle_is_unfinished(
    make_bus: MakeBus,
) -> None:
    bus = await make_bus()
    invoker = await bus.subscribe("invoker0", "invoker")
    for n in range(3):
        await bus.send("invoker0", f"activation-{n}".encode())
    first, unfinished, third = await receive_n(invoker, 3)
    await invoker.ack(third)
    await invoker.ack(first)
    await invoker.close()

    restarted = await bus.subscribe("invoker0", "invoker")

    # Kafka keeps one offset per partition: everything from the first unfinished message comes again.
    assert await receive_values(restarted, 2) == [unfinished.value, third.value]
    assert await nothing_more(restarted)


async def test_acknowledgements_are_committed_soon_without_waiting_for_close(
    make_bus: MakeBus,
    kafka_broker: str,  # noqa: F811
) -> None:
    bus = await make_bus(commit_interval_s=0.1)
    invoker = await bus.subscribe("invoker0", "invoker")
    await bus.send("invoker0", b"activation")
    (delivery,) = await receive_n(invoker, 1)

    await invoker.ack(delivery)

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_broker, request_timeout_ms=10_000)
    await admin.start()
    try:
        deadline = time.monotonic() + 5.0
        committed: dict[int, int] = {}
        while committed != {0: 1} and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            offsets = await admin.list_consumer_group_offsets(f"{bus.topic_prefix}invoker")
            committed = {tp.partition: meta.offset for tp, meta in offsets.items()}
        assert committed == {0: 1}  # the offset after the acknowledged message
    finally:
        await admin.close()


async def test_acknowledging_twice_or_after_close_is_harmless(make_bus: MakeBus) -> None:
    bus = await make_bus()
    invoker = await bus.subscribe("invoker0", "invoker")
    await bus.send("invoker0", b"activation")
    (delivery,) = await receive_n(invoker, 1)

    await invoker.ack(delivery)
    await invoker.ack(delivery)
    await invoker.close()
    await invoker.ack(delivery)
    await invoker.close()


async def test_closing_the_bus_commits_acknowledged_and_returns_unacknowledged_messages(make_bus: MakeBus) -> None:
    bus = await make_bus()
    invoker = await bus.subscribe("invoker0", "invoker")
    await bus.send("invoker0", b"recorded")
    await bus.send("invoker0", b"in-progress")
    recorded, _in_progress = await receive_n(invoker, 2)
    await invoker.ack(recorded)

    await bus.close()  # e.g. the invoker shutting down before the second record was stored

    with pytest.raises(KafkaBusError, match="closed"):
        await invoker.receive(max_messages=1, timeout_s=0)
    restarted = await (await make_bus(topic_prefix=bus.topic_prefix)).subscribe("invoker0", "invoker")
    assert await receive_values(restarted, 1) == [b"in-progress"]
    assert await nothing_more(restarted)


# -- timing and volume ------------------------------------------------------------------------------


async def test_receive_returns_nothing_when_its_timeout_passes(make_bus: MakeBus) -> None:
    bus = await make_bus()
    consumer = await bus.subscribe("quiet", "g")
    await consumer.receive(max_messages=10, timeout_s=2.0)  # let the group join before timing

    started = time.monotonic()
    assert await consumer.receive(max_messages=10, timeout_s=0.5) == []
    waited = time.monotonic() - started
    assert 0.4 <= waited < 1.5, waited

    started = time.monotonic()
    assert await consumer.receive(max_messages=10, timeout_s=0) == []
    assert time.monotonic() - started < 0.5


async def test_a_cancelled_receive_loses_nothing(make_bus: MakeBus) -> None:
    bus = await make_bus()
    consumer = await bus.subscribe("invoker0", "invoker")
    receiving = asyncio.create_task(consumer.receive(max_messages=10, timeout_s=30))
    await asyncio.sleep(0.5)

    receiving.cancel()  # e.g. Invoker.close() while the consume loop waits
    with pytest.raises(asyncio.CancelledError):
        await receiving
    await bus.send("invoker0", b"activation")

    assert await receive_values(consumer, 1) == [b"activation"]


async def test_a_thousand_concurrent_sends_arrive_exactly_once_per_group(make_bus: MakeBus) -> None:
    bus = await make_bus(partitions=3)
    invokers = await bus.subscribe("invoker0", "invoker")
    auditors = await bus.subscribe("invoker0", "auditor")
    sent = [f"activation-{n:04d}".encode() for n in range(1000)]

    await asyncio.gather(*(bus.send("invoker0", value) for value in sent))

    for group in (invokers, auditors):
        received = await receive_values(group, len(sent), ack=True)
        assert Counter(received) == Counter(sent)
        assert await nothing_more(group)


async def test_a_message_of_several_megabytes_round_trips(make_bus: MakeBus) -> None:
    bus = await make_bus()
    consumer = await bus.subscribe("completed0", "controller")
    big = b"x" * (3 * 1024 * 1024)  # a 1 MB result, logs and envelope fit with room to spare

    await bus.send("completed0", big)

    assert await receive_values(consumer, 1) == [big]


async def test_a_message_above_the_size_limit_is_refused_at_once(make_bus: MakeBus) -> None:
    bus = await make_bus(max_message_bytes=64 * 1024)
    consumer = await bus.subscribe("completed0", "controller")

    started = time.monotonic()
    with pytest.raises(KafkaBusError, match="MessageSizeTooLarge"):
        await bus.send("completed0", b"x" * (65 * 1024))
    assert time.monotonic() - started < 1.0

    await bus.send("completed0", b"small")  # the bus is still usable
    assert await receive_values(consumer, 1) == [b"small"]


async def test_the_topic_prefix_keeps_deployments_apart(make_bus: MakeBus, request: pytest.FixtureRequest) -> None:
    blue = await make_bus()
    green = await make_bus(topic_prefix=unique_prefix(request))
    blue_invoker = await blue.subscribe("invoker0", "invoker")
    green_invoker = await green.subscribe("invoker0", "invoker")

    await blue.send("invoker0", b"blue")
    await green.send("invoker0", b"green")

    assert await receive_values(blue_invoker, 1) == [b"blue"]
    assert await receive_values(green_invoker, 1) == [b"green"]
    assert await nothing_more(blue_invoker, 0.5)
    await delete_topics(green.bootstrap_servers, green.topic_prefix)


# -- bad input and unreachable brokers --------------------------------------------------------------


async def test_using_the_bus_before_start_is_a_clear_error(kafka_broker: str) -> None:  # noqa: F811
    bus = KafkaBus(kafka_broker, "test")

    with pytest.raises(KafkaBusError, match="not started"):
        await bus.send("invoker0", b"x")
    with pytest.raises(KafkaBusError, match="not started"):
        await bus.subscribe("invoker0", "invoker")


async def test_start_fails_clearly_when_no_broker_answers() -> None:
    nowhere = f"127.0.0.1:{free_port_pair()}"
    bus = KafkaBus(nowhere, "test", timeout_s=3.0)

    started = time.monotonic()
    with pytest.raises(KafkaBusError, match=nowhere):
        await bus.start()
    assert time.monotonic() - started < 4.0
    await bus.close()


# -- broker restart: keep last, it stops a broker ---------------------------------------------------


async def test_the_bus_survives_a_broker_restart_and_fails_fast_while_it_is_down(
    private_kafka_broker: KafkaBroker,  # noqa: F811
) -> None:
    broker = private_kafka_broker
    bus = KafkaBus(broker.bootstrap_servers, "test", timeout_s=3.0)
    await bus.start()
    try:
        consumer = await bus.subscribe("invoker0", "invoker")
        await bus.send("invoker0", b"before")
        (before,) = await receive_n(consumer, 1)

        await asyncio.to_thread(broker.down)
        await consumer.ack(before)  # no I/O: committed once the broker is back
        started = time.monotonic()
        with pytest.raises(KafkaBusError, match="within 3 s"):
            await bus.send("invoker0", b"while-down")
        assert time.monotonic() - started < 3.5

        await asyncio.to_thread(broker.up)
        # The same producer and consumer reconnect by themselves: nothing is re-created.
        await bus.send("invoker0", b"after")
        received = await receive_values(consumer, 1, ack=True)
        # The refused send was dropped when it timed out, so it does not turn up late.
        received += [d.value for d in await consumer.receive(max_messages=10, timeout_s=1.5)]
        assert received == [b"after"]

        await consumer.close()
        restarted = await bus.subscribe("invoker0", "invoker")
        assert await nothing_more(restarted)  # both acknowledgements reached the restarted broker
    finally:
        await bus.close()
