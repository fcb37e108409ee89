"""The result ahead of the record (``invoker_result_before_record``, [OW] ResultMessage), seen from the balancer.

A result answers the blocking caller and leaves the activation in flight (its memory taken, supervised) until the
completion that follows the store; both come as plain bytes from Kafka and are told apart by ``isSystemError``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

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


async def test_a_result_answers_the_caller_and_the_completion_after_the_store_frees_the_slot(
    bus: MemoryBus, balancer: LoadBalancer
) -> None:
    message = _message()
    await balancer.publish(message, HELLO)
    state = balancer.invokers._states[0]
    free = state.free_mb
    waiting = asyncio.create_task(balancer.wait(message.activationId, timeout_s=5))

    # Plain bytes, as from Kafka: no in-process hand-over of the object. A result may hold any JSON, a key
    # named like the completion's field too.
    record = _record(message.activationId, {"isSystemError": True})
    await bus.send(completed_topic(0), bytes(ResultMessage(transid=message.transid, response=record).serialize()))

    answered = await waiting
    assert answered is not None and answered.response.result == {"isSystemError": True}
    # Not stored yet: the activation stays in flight, its memory taken and its namespace's count up.
    assert not balancer.completed(message.activationId)
    assert balancer.active_activations("guest") == 1
    assert state.free_mb == free

    completion = CompletionMessage(
        transid=message.transid,
        activationId=message.activationId,
        isSystemError=False,
        instance=InvokerInstance(instance=0),
    )
    await bus.send(completed_topic(0), bytes(completion.serialize()))
    for _ in range(400):
        if balancer.completed(message.activationId):
            break
        await asyncio.sleep(0.005)
    assert balancer.completed(message.activationId)
    assert balancer.active_activations("guest") == 0
    assert state.free_mb == free + HELLO.limits.memory
