"""Bus messages that never left the process are handed over as objects, the rest parsed and validated
(``pywhisk.messages.parse``): standalone's consumers skip re-validating what their own process sent, while a
message from Kafka or a journal replay is checked as before."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from pywhisk.activation import new_activation_id
from pywhisk.bus.sqlite import SqliteBus
from pywhisk.identity import guest_identity
from pywhisk.messages import (
    ActionRef,
    ActivationMessage,
    CompletionMessage,
    ControllerInstance,
    InvokerInstance,
    invoker_topic,
    parse,
)

pytestmark = pytest.mark.unit


def activation_message() -> ActivationMessage:
    return ActivationMessage(
        transid=["tid", time.time() * 1000],
        action=ActionRef(path="guest", name="hello", version="0.0.1"),
        user=guest_identity(),
        activationId=new_activation_id(),
        rootControllerIndex=ControllerInstance(asString="0"),
        blocking=True,
        content={"name": "bus"},
    )


async def test_a_message_sent_in_this_process_reaches_its_consumer_as_the_sent_object(tmp_path: Path) -> None:
    bus = SqliteBus(tmp_path / "bus.sqlite3")
    await bus.start()
    try:
        consumer = await bus.subscribe(invoker_topic(0), "invoker0")
        message = activation_message()
        await bus.send(invoker_topic(0), message.serialize())
        [delivery] = await consumer.receive(max_messages=10, timeout_s=1.0)
        assert parse(ActivationMessage, delivery.value) is message
    finally:
        await bus.close()


async def test_a_journalled_message_replayed_after_a_restart_is_validated_again(tmp_path: Path) -> None:
    message = activation_message()
    first = SqliteBus(tmp_path / "bus.sqlite3")
    await first.start()
    await first.subscribe(invoker_topic(0), "invoker0")
    await first.send(invoker_topic(0), message.serialize())
    await first.close()  # unacknowledged: the next bus on the file delivers it again

    second = SqliteBus(tmp_path / "bus.sqlite3")
    await second.start()
    try:
        consumer = await second.subscribe(invoker_topic(0), "invoker0")
        [delivery] = await consumer.receive(max_messages=10, timeout_s=1.0)
        replayed = parse(ActivationMessage, delivery.value)
        assert replayed is not message
        assert replayed == message
        assert delivery.value == message.serialize()  # the journal holds the wire form
    finally:
        await second.close()


def test_plain_bytes_are_validated_and_malformed_ones_refused() -> None:
    message = activation_message()
    wire = bytes(message.serialize())
    assert parse(ActivationMessage, wire) == message
    with pytest.raises(ValidationError):
        parse(ActivationMessage, b'{"activationId": "x"}')


def test_a_message_of_another_kind_is_not_handed_over_as_the_kind_asked_for() -> None:
    completion = CompletionMessage(
        transid=["tid", 0], activationId=new_activation_id(), isSystemError=False, instance=InvokerInstance(instance=0)
    )
    with pytest.raises(ValidationError):
        parse(ActivationMessage, completion.serialize())
    assert parse(CompletionMessage, completion.serialize()).activationId == completion.activationId
