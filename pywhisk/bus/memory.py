"""In-process bus for standalone mode and tests: asyncio queues with Kafka-like group semantics."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import deque

from pywhisk.bus import Consumer, Delivery


class _Topic:
    """One topic: a queue per consumer group, and a backlog kept until the first group subscribes."""

    def __init__(self) -> None:
        self.groups: dict[str, asyncio.Queue[Delivery]] = {}
        self.backlog: deque[Delivery] = deque()
        self._offsets = itertools.count()

    def publish(self, value: bytes, offset: int | None = None) -> None:
        """Deliver ``value`` to every group (or keep it for the first); ``offset`` if the caller numbers them."""
        delivery = Delivery(value, partition=0, offset=next(self._offsets) if offset is None else offset)
        if not self.groups:
            self.backlog.append(delivery)
        for queue in self.groups.values():
            queue.put_nowait(delivery)

    def join(self, group: str) -> asyncio.Queue[Delivery]:
        if group not in self.groups:
            queue: asyncio.Queue[Delivery] = asyncio.Queue()
            while self.backlog:
                queue.put_nowait(self.backlog.popleft())
            self.groups[group] = queue
        return self.groups[group]


class MemoryConsumer(Consumer):
    def __init__(self, queue: asyncio.Queue[Delivery]) -> None:
        self._queue = queue
        self._unacked: dict[int, Delivery] = {}

    async def receive(self, max_messages: int, timeout_s: float) -> list[Delivery]:
        batch: list[Delivery] = []
        if self._queue.empty():
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that races
            # with an arriving message, and the consume loops would then never stop.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    batch.append(await self._queue.get())
        while len(batch) < max_messages and not self._queue.empty():
            batch.append(self._queue.get_nowait())
        self._unacked.update((d.offset, d) for d in batch)
        return batch

    async def ack(self, delivery: Delivery) -> None:
        self._unacked.pop(delivery.offset, None)

    async def keep_alive(self) -> None:
        """Nothing to do: memory groups never drop a member."""

    async def close(self) -> None:
        # Redeliver what was received but never acknowledged, in order and ahead of newer messages,
        # as Kafka does after a rebalance.
        newer = [self._queue.get_nowait() for _ in range(self._queue.qsize())]
        for delivery in [*sorted(self._unacked.values(), key=lambda d: d.offset), *newer]:
            self._queue.put_nowait(delivery)
        self._unacked.clear()


class MemoryBus:
    """A ``Bus`` living in one process; the standalone default."""

    def __init__(self) -> None:
        self._topics: dict[str, _Topic] = {}

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._topics.clear()

    async def send(self, topic: str, value: bytes) -> None:
        self._topics.setdefault(topic, _Topic()).publish(value)

    async def subscribe(self, topic: str, group: str) -> Consumer:
        return MemoryConsumer(self._topics.setdefault(topic, _Topic()).join(group))
