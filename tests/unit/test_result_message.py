"""The result ahead of the record (``result_before_record``, [OW] ResultMessage), seen from the balancer.

A result answers the blocking caller and leaves the activation in flight (its memory taken, supervised) until the
completion that follows the store; both come as plain bytes from Kafka and are told apart by ``isSystemError``.
Meanwhile the balancer keeps the record for reads by id (read-your-writes, controller/recent_results.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from controller.loadbalancer import LoadBalancer
from pywhisk.activation import Activation, ActivationResponse, StatusCode, new_activation_id
from pywhisk.bus.memory import MemoryBus
from pywhisk.entities import Action, Exec
from pywhisk.identity import guest_identity
from pywhisk.messages import (
    HEALTH_TOPIC,
    ActionRef,
    ActivationMessage,
    CompletionMessage,
    ControllerInstance,
    InvokerInstance,
    PingMessage,
    ResultMessage,
    completed_topic,
)
from pywhisk.settings import Settings
from pywhisk.store.sqlite import SqliteStore
from tests.doubles import ScriptedExecutor
from tests.inprocess import in_process_whisk, until

pytestmark = pytest.mark.unit

HELLO = Action(namespace="guest", name="hello", exec=Exec(kind="wasm:wasi", code="AA==", binary=True))


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
    ping = PingMessage(name=InvokerInstance(instance=0, userMemory="2048 MB"))
    await bus.send(HEALTH_TOPIC, ping.serialize())
    assert await balancer.wait_for_invoker(5.0)
    yield balancer
    await balancer.close()
    await store.close()


def _message() -> ActivationMessage:
    return ActivationMessage(
        transid=["tid", 1_700_000_000_000.0],
        action=ActionRef(path="guest", name="hello", version="0.0.1"),
        user=guest_identity(),
        activationId=new_activation_id(),
        rootControllerIndex=ControllerInstance(asString="0"),
        blocking=True,
        content={"name": "Ada"},
    )


def _record(activation_id: str, result: dict[str, object]) -> Activation:
    return Activation(
        activationId=activation_id,
        namespace="guest",
        name="hello",
        subject="guest",
        start=1,
        end=2,
        duration=1,
        response=ActivationResponse.of(StatusCode.SUCCESS, result),
    )


def _completion(message: ActivationMessage) -> bytes:
    """The completion that follows the record's store, as plain bytes (as from Kafka)."""
    completion = CompletionMessage(
        transid=message.transid,
        activationId=message.activationId,
        isSystemError=False,
        instance=InvokerInstance(instance=0),
    )
    return bytes(completion.serialize())


async def test_a_result_answers_the_caller_and_frees_the_memory_and_the_completion_ends_the_activation(
    bus: MemoryBus, balancer: LoadBalancer
) -> None:
    # [OW] ContainerProxy.scala sends the completion that frees the slot (CommonLoadBalancer.scala) once the run's
    # logs are collected, never after the store; here that point is the result. Another activation stays in flight
    # on the same invoker throughout, so a memory given back twice would show (the books cap free memory at the
    # invoker's capacity).
    other, message = _message(), _message()
    await balancer.publish(other, HELLO)
    state = balancer.invokers._states[0]
    free = state.free_mb
    await balancer.publish(message, HELLO)
    assert state.free_mb == free - HELLO.limits.memory
    waiting = asyncio.create_task(balancer.wait(message.activationId, timeout_s=5))

    # Plain bytes, as from Kafka: no in-process hand-over of the object. A result may hold any JSON, a key
    # named like the completion's field too.
    record = _record(message.activationId, {"isSystemError": True})
    await bus.send(completed_topic(0), bytes(ResultMessage(transid=message.transid, response=record).serialize()))

    answered = await waiting
    assert answered is not None and answered.response.result == {"isSystemError": True}
    # The run has ended: its memory is free. Not stored yet: the activation stays in flight (supervised) and its
    # namespace's count up.
    assert state.free_mb == free
    assert not balancer.completed(message.activationId)
    assert balancer.active_activations("guest") == 2

    await bus.send(completed_topic(0), _completion(message))
    await until(lambda: balancer.completed(message.activationId), "the completion ends the activation")
    assert balancer.active_activations("guest") == 1
    assert state.free_mb == free, "the memory was given back once, at the result"

    await bus.send(completed_topic(0), _completion(other))
    await until(lambda: balancer.completed(other.activationId), "the other completion ends the other activation")
    assert state.free_mb == free + HELLO.limits.memory


# read-your-writes (controller/recent_results.py): the record kept from its result until its completion


async def test_the_balancer_keeps_a_result_until_its_completion(bus: MemoryBus, balancer: LoadBalancer) -> None:
    message = _message()
    await balancer.publish(message, HELLO)
    waiting = asyncio.create_task(balancer.wait(message.activationId, timeout_s=5))
    answered = _record(message.activationId, {"greeting": "Hello, Ada!"})
    await bus.send(completed_topic(0), bytes(ResultMessage(transid=message.transid, response=answered).serialize()))
    assert await waiting == answered
    # Kept before the caller was answered: a GET sent on the answer finds it.
    assert balancer.recent_results.get("guest", message.activationId) == answered

    await bus.send(completed_topic(0), _completion(message))
    await until(lambda: balancer.completed(message.activationId), "no completion")
    assert len(balancer.recent_results) == 0, "stored now: the store answers"


async def test_a_result_after_its_completion_is_not_kept(bus: MemoryBus, balancer: LoadBalancer) -> None:
    # Not in flight any more (completed, or given up as lost): the store has a record, and no completion would
    # come to discard it.
    late = _record(new_activation_id(), {})
    await bus.send(completed_topic(0), bytes(ResultMessage(transid=["tid", 1.0], response=late).serialize()))
    message = _message()  # a blocking activation's result, on the same topic after it: handled after it
    await balancer.publish(message, HELLO)
    waiting = asyncio.create_task(balancer.wait(message.activationId, timeout_s=5))
    result = ResultMessage(transid=message.transid, response=_record(message.activationId, {}))
    await bus.send(completed_topic(0), bytes(result.serialize()))
    await waiting
    assert balancer.recent_results.get("guest", late.activationId) is None
    assert len(balancer.recent_results) == 1


@pytest.mark.parametrize(
    ("bus_kind", "explicit", "ahead"),
    [
        ("kafka", None, True),
        ("sqlite", None, False),
        ("memory", None, False),
        ("kafka", False, False),
        ("sqlite", True, True),
    ],
)
def test_the_result_goes_ahead_by_default_over_kafka_only(bus_kind: str, explicit: bool | None, ahead: bool) -> None:
    # Distributed, the CouchDB write was half a warm blocking invoke's latency; standalone's SQLite write is
    # local and cheap, and there a blocking answer keeps meaning the record is listed (docs/benchmarks.md).
    settings = Settings.model_validate({"bus": bus_kind, "invoker_result_before_record": explicit})
    assert settings.result_before_record is ahead


async def test_with_the_result_ahead_a_blocking_invokes_record_can_be_read_soon_after(tmp_path: Path) -> None:
    # OpenWhisk allows the record to trail the answer by the store write; `activation get` of the answered id
    # must still succeed once it is written, with the very record the caller got.
    settings = Settings(data_dir=tmp_path, invoker_result_before_record=True)
    async with in_process_whisk(settings, SqliteStore(settings.store_path), ScriptedExecutor()) as whisk:
        results: list[str] = []  # the ids of the results sent ahead, as the invoker sends them
        send = whisk.bus.send

        async def counting_send(topic: str, value: bytes) -> None:
            message = orjson.loads(bytes(value)) if topic == completed_topic(0) else {}
            if "response" in message and "isSystemError" not in message:  # a ResultMessage, not a completion
                results.append(message["response"]["activationId"])
            await send(topic, value)

        whisk.bus.send = counting_send  # type: ignore[method-assign]
        await whisk.create("hello")
        ids: list[str] = []
        for n in range(5):
            response = await whisk.invoke("hello", {"n": n})
            assert response.status_code == 200, response.text
            answered = response.json()
            assert answered["response"]["result"] == {"n": n}
            ids.append(answered["activationId"])
            assert await whisk.record(answered["activationId"]) == answered
        assert results == ids
