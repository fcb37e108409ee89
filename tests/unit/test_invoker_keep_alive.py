"""An invoker whose slots are all busy keeps its consumer-group membership (Kafka's max.poll.interval)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

import invoker.invoker as invoker_module
from launcher.compose import build_invoker
from pywhisk.activation import new_activation_id
from pywhisk.bus import Consumer, Delivery
from pywhisk.bus.memory import MemoryBus
from pywhisk.entities import Action, Exec
from pywhisk.identity import guest_identity
from pywhisk.messages import ActionRef, ActivationMessage, ControllerInstance, invoker_topic
from pywhisk.settings import Settings
from pywhisk.store.sqlite import SqliteStore
from tests.doubles import ScriptedExecutor
from tests.inprocess import MANIFEST

pytestmark = pytest.mark.unit


class CountingConsumer(Consumer):
    """A memory consumer that counts keep-alives."""

    def __init__(self, inner: Consumer) -> None:
        self.inner = inner
        self.keep_alives = 0

    async def receive(self, max_messages: int, timeout_s: float) -> list[Delivery]:
        return await self.inner.receive(max_messages, timeout_s)

    async def ack(self, delivery: Delivery) -> None:
        await self.inner.ack(delivery)

    async def keep_alive(self) -> None:
        self.keep_alives += 1

    async def close(self) -> None:
        await self.inner.close()


class CountingBus(MemoryBus):
    consumer: CountingConsumer | None = None

    async def subscribe(self, topic: str, group: str) -> Consumer:
        self.consumer = CountingConsumer(await super().subscribe(topic, group))
        return self.consumer


async def test_an_invoker_with_every_slot_busy_keeps_its_consumer_alive_and_only_then(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(invoker_module, "KEEP_ALIVE_S", 0.1)
    settings = Settings(data_dir=tmp_path, invoker_max_in_progress=1)
    store, bus = SqliteStore(settings.store_path), CountingBus()
    await store.start()
    await bus.start()
    await store.put_action(
        Action(namespace="guest", name="slow", exec=Exec(kind="script:1", code="slow:1500")), expected_rev=None
    )
    invoker = build_invoker(settings, store=store, bus=bus, executors={"wasm": ScriptedExecutor()}, manifest=MANIFEST)
    await invoker.start()
    try:
        assert bus.consumer is not None
        await asyncio.sleep(0.5)
        assert bus.consumer.keep_alives == 0, "a slot is free: it receives, no keep-alive needed"

        message = ActivationMessage(
            transid=["tid", time.time() * 1000],
            action=ActionRef(path="guest", name="slow", version="0.0.1"),
            user=guest_identity(),
            activationId=new_activation_id(),
            rootControllerIndex=ControllerInstance(asString="0"),
            blocking=False,
        )
        await bus.send(invoker_topic(0), message.serialize())
        await asyncio.sleep(1.0)  # the only slot runs the slow activation

        assert bus.consumer.keep_alives >= 5
        record = None
        for _ in range(100):
            record = await store.get_activation("guest", message.activationId)
            if record is not None:
                break
            await asyncio.sleep(0.05)
        assert record is not None and record.response.success
    finally:
        await invoker.close()
        await bus.close()
        await store.close()
