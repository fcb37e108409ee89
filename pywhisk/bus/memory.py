"""In-process bus for standalone mode and tests: asyncio queues with Kafka-like group semantics."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

from pywhisk.bus import Consumer


class _Topic:
    """One topic: a queue per consumer group, and a backlog kept until the first group subscribes."""

    def __init__(self) -> None:
        self.groups: dict[str, asyncio.Queue[bytes]] = {}
        self.backlog: deque[bytes] = deque()

    def publish(self, value: bytes) -> None:
        if not self.groups:
            self.backlog.append(value)
        for queue in self.groups.values():
            queue.put_nowait(value)

    def join(self, group: str) -> asyncio.Queue[bytes]:
        if group not in self.groups:
            queue: asyncio.Queue[bytes] = asyncio.Queue()
            while self.backlog:
                queue.put_nowait(self.backlog.popleft())
            self.groups[group] = queue
        return self.groups[group]


class MemoryConsumer(Consumer):
    def __init__(self, queue: asyncio.Queue[bytes]) -> None:
        self._queue = queue
        self._uncommitted: list[bytes] = []

    async def receive(self, max_messages: int, timeout_s: float) -> list[bytes]:
        batch: list[bytes] = []
        if self._queue.empty():
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that races
            # with an arriving message, and the consume loops would then never stop.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    batch.append(await self._queue.get())
        while len(batch) < max_messages and not self._queue.empty():
            batch.append(self._queue.get_nowait())
        self._uncommitted.extend(batch)
        return batch

    async def commit(self) -> None:
        self._uncommitted.clear()

    async def close(self) -> None:
        # Redeliver what was received but never acknowledged, in order and ahead of newer messages,
        # as Kafka does after a rebalance.
        newer = [self._queue.get_nowait() for _ in range(self._queue.qsize())]
        for value in [*self._uncommitted, *newer]:
            self._queue.put_nowait(value)
        self._uncommitted.clear()


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
