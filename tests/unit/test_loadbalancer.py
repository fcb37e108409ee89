"""Routing activations to invokers as OpenWhisk's sharding balancer does, and waiting for completions.

Over 400 lines because it covers both the pure routing functions and the balancer's supervision of one fixture.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from controller.invokers import Invokers, coprime_steps, java_string_hash, probe_order
from controller.loadbalancer import LoadBalancer
from pywhisk.activation import Activation, ActivationResponse, StatusCode, new_activation_id
from pywhisk.bus import Consumer
from pywhisk.bus.memory import MemoryBus
from pywhisk.entities import Action, Exec
from pywhisk.errors import ServiceUnavailable
from pywhisk.identity import guest_identity
from pywhisk.messages import (
    HEALTH_TOPIC,
    ActionRef,
    ActivationMessage,
    CompletionMessage,
    ControllerInstance,
    InvokerInstance,
    PingMessage,
    completed_topic,
    invoker_topic,
)
from pywhisk.settings import Settings
from pywhisk.store.sqlite import SqliteStore

pytestmark = pytest.mark.unit

HELLO = Action(namespace="guest", name="hello", exec=Exec(kind="wasm:wasi", code="AA==", binary=True))


def _java_hash_reference(text: str) -> int:
    """Java's formula spelled out: h = 31*h + c over UTF-16 code units, in 32-bit two's complement."""
    h = 0
    data = text.encode("utf-16-le")
    for i in range(0, len(data), 2):
        h = (31 * h + int.from_bytes(data[i : i + 2], "little")) % 2**32
    return h - 2**32 if h >= 2**31 else h


# Java's String.hashCode ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", 0),
        ("a", 97),
        ("abc", 96354),
        ("hello", 99162322),
        ("Hello", 69609650),
        ("Aa", 2112),
        ("BB", 2112),  # the textbook collision
        ("polygenelubricants", -2147483648),  # overflows to Integer.MIN_VALUE
    ],
)
def test_java_string_hash_matches_java(text: str, expected: int) -> None:
    assert java_string_hash(text) == expected


@pytest.mark.parametrize("text", ["guest", "/guest/hello", "whisk.system", "a" * 1000, "caf\u00e9"])
def test_java_string_hash_overflows_like_a_java_int(text: str) -> None:
    assert java_string_hash(text) == _java_hash_reference(text)
    assert -(2**31) <= java_string_hash(text) < 2**31


def test_java_string_hash_of_guest() -> None:
    # 31*(31*(31*(31*103 + 117) + 101) + 115) + 116, fits in an int
    assert java_string_hash("guest") == 98708952


def test_java_string_hash_counts_characters_outside_the_bmp_as_two_utf16_units() -> None:
    # U+1F600 is the surrogate pair D83D DE00 in Java: 31 * 0xD83D + 0xDE00.
    assert java_string_hash("\U0001f600") == 31 * 0xD83D + 0xDE00 == 1772899
    assert java_string_hash("x\U0001f600y") == _java_hash_reference("x\U0001f600y")


# probing ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "steps"),
    [(1, [1]), (2, [1]), (3, [1, 2]), (4, [1, 3]), (10, [1, 3, 7]), (12, [1, 5, 7, 11])],
)
def test_coprime_steps_are_pairwise_coprime_numbers_up_to_n(n: int, steps: list[int]) -> None:
    assert coprime_steps(n) == steps


def test_openwhisk_example_hash_13_on_10_invokers() -> None:
    # reference §5.3: hash 13 → home 3, steps [1,3,7], step 3. hash = |h("a") ^ h("l")| = 97 ^ 108 = 13.
    assert abs(java_string_hash("a") ^ java_string_hash("l")) == 13
    assert probe_order("a", "l", 10) == (3, 6, 9, 2, 5, 8, 1, 4, 7, 0)


@pytest.mark.parametrize("invokers", [1, 2, 3, 7, 10, 16])
@pytest.mark.parametrize("action", ["/guest/hello", "/guest/other", "/whisk.system/x"])
def test_probe_order_visits_every_invoker_exactly_once(invokers: int, action: str) -> None:
    order = probe_order("guest", action, invokers)
    assert sorted(order) == list(range(invokers))


def test_probe_order_starts_at_the_home_invoker() -> None:
    hashed = abs(java_string_hash("guest") ^ java_string_hash("/guest/hello"))
    assert probe_order("guest", "/guest/hello", 10)[0] == hashed % 10


def test_probe_order_is_stable_for_the_same_action() -> None:
    assert probe_order("guest", "/guest/hello", 10) == probe_order("guest", "/guest/hello", 10)


# the balancer -----------------------------------------------------------------------------------


@pytest.fixture
async def bus() -> AsyncIterator[MemoryBus]:
    bus = MemoryBus()
    await bus.start()
    yield bus
    await bus.close()


@pytest.fixture
async def balancer(bus: MemoryBus, tmp_path: Path) -> AsyncIterator[LoadBalancer]:
    store = SqliteStore(tmp_path / "store.sqlite3")
    await store.start()
    balancer = LoadBalancer(bus, store, Settings(data_dir=tmp_path, controller_id=0))
    await balancer.start()
    yield balancer
    await balancer.close()
    await store.close()


def _message(blocking: bool, action: str = "hello") -> ActivationMessage:
    return ActivationMessage(
        transid=["tid", 1_700_000_000_000.0],
        action=ActionRef(path="guest", name=action, version="0.0.1"),
        user=guest_identity(),
        activationId=new_activation_id(),
        rootControllerIndex=ControllerInstance(asString="0"),
        blocking=blocking,
        content={"name": "Ada"},
    )


def _record(activation_id: str) -> Activation:
    return Activation(
        activationId=activation_id,
        namespace="guest",
        name="hello",
        subject="guest",
        start=1,
        end=2,
        duration=1,
        response=ActivationResponse.of(StatusCode.SUCCESS, {"name": "Ada"}),
    )


async def _ping(
    bus: MemoryBus, balancer: LoadBalancer, invoker: int, enabled: bool = True, memory: str = "2048 MB"
) -> None:
    ping = PingMessage(name=InvokerInstance(instance=invoker, userMemory=memory), isEnabled=enabled)
    await bus.send(HEALTH_TOPIC, ping.serialize())
    for _ in range(200):
        if (invoker in balancer.invokers.usable()) == enabled:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"ping of invoker{invoker} not seen")


async def _complete(bus: MemoryBus, message: ActivationMessage, record: Activation | None) -> None:
    ack = CompletionMessage(
        transid=message.transid,
        activationId=message.activationId,
        isSystemError=False,
        instance=InvokerInstance(instance=0),
        response=record,
    )
    await bus.send(completed_topic(0), ack.serialize())


async def _receive_one(consumer: Consumer) -> bytes:
    deliveries = await consumer.receive(max_messages=10, timeout_s=1.0)
    assert len(deliveries) == 1
    return deliveries[0].value


async def test_publish_without_any_invoker_is_503_no_invokers_available(balancer: LoadBalancer) -> None:
    with pytest.raises(ServiceUnavailable) as caught:
        await balancer.publish(_message(blocking=False), HELLO)
    assert caught.value.status_code == 503
    assert caught.value.message == "No invokers available"


async def test_after_a_ping_the_activation_arrives_on_the_invokers_topic(
    bus: MemoryBus, balancer: LoadBalancer
) -> None:
    invoker0 = await bus.subscribe(invoker_topic(0), "invoker")
    await _ping(bus, balancer, 0)
    message = _message(blocking=False)

    await balancer.publish(message, HELLO)

    delivered = ActivationMessage.model_validate_json(await _receive_one(invoker0))
    assert delivered == message
    assert balancer.completed(message.activationId) is False


async def test_wait_for_invoker_is_true_once_one_has_pinged(bus: MemoryBus, balancer: LoadBalancer) -> None:
    assert await balancer.wait_for_invoker(0.02) is False
    await _ping(bus, balancer, 0)
    assert await balancer.wait_for_invoker(0.02) is True


async def test_disabled_invoker_gets_no_work(bus: MemoryBus, balancer: LoadBalancer) -> None:
    await _ping(bus, balancer, 0)
    await _ping(bus, balancer, 0, enabled=False)
    assert balancer.invokers.usable() == []
    with pytest.raises(ServiceUnavailable):
        await balancer.publish(_message(blocking=False), HELLO)


async def test_activation_goes_to_the_first_healthy_invoker_in_probe_order(
    bus: MemoryBus, balancer: LoadBalancer
) -> None:
    order = probe_order("guest", "/guest/hello", 4)
    expected = order[1]  # only the home invoker is missing
    consumers = {i: await bus.subscribe(invoker_topic(i), "invoker") for i in range(4)}
    for i in range(4):
        if i != order[0]:
            await _ping(bus, balancer, i)

    await balancer.publish(_message(blocking=False), HELLO)

    assert len(await consumers[expected].receive(max_messages=10, timeout_s=1.0)) == 1
    for i, consumer in consumers.items():
        if i != expected:
            assert await consumer.receive(max_messages=10, timeout_s=0) == []


async def test_blocking_wait_resolves_from_the_completion_ack(bus: MemoryBus, balancer: LoadBalancer) -> None:
    await _ping(bus, balancer, 0)
    message = _message(blocking=True)
    await balancer.publish(message, HELLO)

    waiting = asyncio.create_task(balancer.wait(message.activationId, timeout_s=2))
    await _complete(bus, message, _record(message.activationId))

    record = await waiting
    assert record is not None
    assert record.activationId == message.activationId
    assert record.response.result == {"name": "Ada"}
    assert balancer.completed(message.activationId) is True


async def test_ack_that_came_before_the_wait_is_not_lost(bus: MemoryBus, balancer: LoadBalancer) -> None:
    await _ping(bus, balancer, 0)
    message = _message(blocking=True)
    await balancer.publish(message, HELLO)
    await _complete(bus, message, _record(message.activationId))
    for _ in range(200):
        if balancer.completed(message.activationId):
            break
        await asyncio.sleep(0.005)

    record = await balancer.wait(message.activationId, timeout_s=0.5)
    assert record is not None
    assert record.activationId == message.activationId


async def test_ack_without_record_resolves_the_wait_to_none_but_marks_completion(
    bus: MemoryBus, balancer: LoadBalancer
) -> None:
    await _ping(bus, balancer, 0)
    message = _message(blocking=True)
    await balancer.publish(message, HELLO)

    waiting = asyncio.create_task(balancer.wait(message.activationId, timeout_s=2))
    await _complete(bus, message, None)

    assert await waiting is None
    assert balancer.completed(message.activationId) is True


async def test_wait_times_out_to_none(bus: MemoryBus, balancer: LoadBalancer) -> None:
    await _ping(bus, balancer, 0)
    message = _message(blocking=True)
    await balancer.publish(message, HELLO)

    assert await balancer.wait(message.activationId, timeout_s=0.05) is None
    assert balancer.completed(message.activationId) is False


async def test_wait_for_a_non_blocking_activation_returns_none_at_once(bus: MemoryBus, balancer: LoadBalancer) -> None:
    await _ping(bus, balancer, 0)
    message = _message(blocking=False)
    await balancer.publish(message, HELLO)
    assert await asyncio.wait_for(balancer.wait(message.activationId, timeout_s=10), 1) is None


async def test_non_blocking_completion_frees_the_in_flight_entry(bus: MemoryBus, balancer: LoadBalancer) -> None:
    await _ping(bus, balancer, 0)
    message = _message(blocking=False)
    await balancer.publish(message, HELLO)
    assert {key: entry.invoker for key, entry in balancer.in_flight.items()} == {message.activationId: 0}

    await _complete(bus, message, None)
    for _ in range(200):
        if balancer.completed(message.activationId):
            break
        await asyncio.sleep(0.005)
    assert balancer.in_flight == {}


async def test_malformed_bus_messages_are_dropped_and_the_balancer_keeps_working(
    bus: MemoryBus, balancer: LoadBalancer
) -> None:
    await bus.send(HEALTH_TOPIC, b"not json")
    await bus.send(completed_topic(0), b'{"unexpected": true}')
    await _ping(bus, balancer, 0)
    assert balancer.invokers.usable() == [0]


async def test_memory_permits_move_work_off_a_full_home_invoker(bus: MemoryBus, balancer: LoadBalancer) -> None:
    order = probe_order("guest", "/guest/hello", 2)
    home, other = order
    consumers = {i: await bus.subscribe(invoker_topic(i), "invoker") for i in range(2)}
    await _ping(bus, balancer, home, memory="512 MB")  # room for two 256 MB activations
    await _ping(bus, balancer, other, memory="512 MB")

    for _ in range(3):
        await balancer.publish(_message(blocking=False), HELLO)

    assert len(await consumers[home].receive(max_messages=10, timeout_s=1.0)) == 2
    assert len(await consumers[other].receive(max_messages=10, timeout_s=1.0)) == 1


async def test_when_every_invoker_is_full_the_work_still_goes_out(bus: MemoryBus, balancer: LoadBalancer) -> None:
    consumer = await bus.subscribe(invoker_topic(0), "invoker")
    await _ping(bus, balancer, 0, memory="256 MB")

    for _ in range(3):  # one fits; the others overload the only invoker and queue there
        await balancer.publish(_message(blocking=False), HELLO)

    assert len(await consumer.receive(max_messages=10, timeout_s=1.0)) == 3


async def test_completion_gives_the_memory_back(bus: MemoryBus, balancer: LoadBalancer) -> None:
    await _ping(bus, balancer, 0, memory="1024 MB")
    message = _message(blocking=False)
    await balancer.publish(message, HELLO)
    state = balancer.invokers._states[0]
    assert state.free_mb == 1024 - 256

    await _complete(bus, message, None)
    for _ in range(200):
        if state.free_mb == 1024:
            break
        await asyncio.sleep(0.005)
    assert state.free_mb == 1024


async def test_activations_of_an_invoker_gone_offline_are_recorded_as_whisk_errors(
    bus: MemoryBus, tmp_path: Path
) -> None:
    store = SqliteStore(tmp_path / "lost.sqlite3")
    await store.start()
    balancer = LoadBalancer(bus, store, Settings(data_dir=tmp_path, invoker_offline_after_s=0.2))
    await balancer.start()
    try:
        await _ping(bus, balancer, 0)
        blocking, background = _message(blocking=True), _message(blocking=False)
        await balancer.publish(blocking, HELLO)
        await balancer.publish(background, HELLO)

        # No completion and no more pings: within the offline time plus a supervision round,
        # both end in a record and the blocking caller gets it.
        record = await balancer.wait(blocking.activationId, timeout_s=5)

        assert record is not None
        assert record.status_code == StatusCode.WHISK_ERROR
        assert record.response.result == {
            "error": "The activation did not complete: the invoker running it stopped responding."
        }
        for _ in range(200):  # the second one is recorded in the same supervision round
            if not balancer.in_flight:
                break
            await asyncio.sleep(0.01)
        assert balancer.in_flight == {}
        stored = await store.get_activation("guest", background.activationId)
        assert stored is not None and stored.status_code == StatusCode.WHISK_ERROR
        with pytest.raises(ServiceUnavailable):
            await balancer.publish(_message(blocking=False), HELLO)
    finally:
        await balancer.close()
        await store.close()


async def test_a_record_stored_by_the_invoker_wins_over_the_lost_record(bus: MemoryBus, tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "won.sqlite3")
    await store.start()
    balancer = LoadBalancer(bus, store, Settings(data_dir=tmp_path, invoker_offline_after_s=0.2))
    await balancer.start()
    try:
        await _ping(bus, balancer, 0)
        message = _message(blocking=True)
        await balancer.publish(message, HELLO)
        await store.put_activation(_record(message.activationId))  # stored, but the ack never came

        record = await balancer.wait(message.activationId, timeout_s=5)

        assert record is not None and record.status_code == StatusCode.SUCCESS
    finally:
        await balancer.close()
        await store.close()


def test_a_stale_ping_replayed_from_the_health_topic_is_not_a_sign_of_life() -> None:
    invokers = Invokers(controllers=1, offline_after_s=10)
    old = time.time() * 1000 - 60_000

    invokers.on_ping(PingMessage(name=InvokerInstance(instance=0, userMemory="1024 MB"), timestamp=old))
    assert invokers.usable() == []

    invokers.on_ping(PingMessage(name=InvokerInstance(instance=0, userMemory="1024 MB"), timestamp=time.time() * 1000))
    assert invokers.usable() == [0]


def test_capacity_is_shared_between_controllers() -> None:
    invokers = Invokers(controllers=4, offline_after_s=10)
    invokers.on_ping(PingMessage(name=InvokerInstance(instance=0, userMemory="2048 MB")))
    assert invokers._states[0].capacity_mb == 512
    small = Invokers(controllers=4, offline_after_s=10)
    small.on_ping(PingMessage(name=InvokerInstance(instance=0, userMemory="256 MB")))
    assert small._states[0].capacity_mb == 128  # never below one smallest action


def test_more_than_three_system_errors_in_ten_make_an_invoker_unhealthy_until_the_cool_down(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With errors from two namespaces and nothing succeeding: the invoker is at fault
    (tests/unit/test_invoker_health.py has the cases where the workload is)."""
    invokers = Invokers(controllers=1, offline_after_s=1000)
    invokers.on_ping(PingMessage(name=InvokerInstance(instance=0, userMemory="1024 MB")))
    for namespace in ("guest", "other", "guest"):
        invokers.release(0, 0, system_error=True, namespace=namespace)
    assert invokers.statuses() == {0: "up"}, "three system errors are tolerated"

    invokers.release(0, 0, system_error=True, namespace="other")

    assert invokers.statuses() == {0: "unhealthy"}
    with pytest.raises(ServiceUnavailable):
        invokers.choose("guest", "/guest/hello", 256)
    later = time.monotonic() + 11
    monkeypatch.setattr(time, "monotonic", lambda: later)
    assert invokers.statuses() == {0: "up"}, "after the cool-down it gets work again, with a clean record"


class _StallingBus(MemoryBus):
    """Activation sends hang until released, then fail: a broker that went away mid-send."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    async def send(self, topic: str, value: bytes) -> None:
        if topic.startswith("invoker"):
            await self.release.wait()
            raise ConnectionError("the broker went away")
        await super().send(topic, value)


async def test_an_activation_whose_send_fails_while_its_invoker_goes_offline_gets_no_lost_record(
    tmp_path: Path,
) -> None:
    bus = _StallingBus()
    await bus.start()
    store = SqliteStore(tmp_path / "refused.sqlite3")
    await store.start()
    balancer = LoadBalancer(bus, store, Settings(data_dir=tmp_path, invoker_offline_after_s=0.2))
    await balancer.start()
    try:
        await _ping(bus, balancer, 0)
        message = _message(blocking=False)
        publishing = asyncio.create_task(balancer.publish(message, HELLO))
        # The invoker goes offline while the send hangs; supervision runs meanwhile.
        await asyncio.sleep(2.5)
        bus.release.set()
        with pytest.raises(ConnectionError):
            await publishing  # refused: the caller is answered 503 ...

        # ... so nothing may be recorded for it.
        assert await store.get_activation("guest", message.activationId) is None
        assert balancer.in_flight == {}
    finally:
        await balancer.close()
        await store.close()
        await bus.close()
