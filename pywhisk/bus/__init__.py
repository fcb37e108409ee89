"""The ``Bus`` seam: topics of bytes between controllers and invokers (Kafka in distributed mode).

Semantics follow Kafka's, narrowed to what pywhisk needs: ``send`` appends to a topic and returns once
the bus holds the message; a consumer in a group receives each message once per group. Each received
``Delivery`` is acknowledged with ``ack`` when fully handled (for an invoker: when its activation
record is stored). Acknowledgements may come in any order; the bus remembers, per partition, only
the prefix of acknowledged messages, and every message not covered by it when a consumer goes away
is delivered again (at-least-once).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class Delivery:
    """One received message and where it sits in its topic."""

    value: bytes
    partition: int
    offset: int


@runtime_checkable
class Consumer(Protocol):
    """A subscription of one consumer group to one topic."""

    async def receive(self, max_messages: int, timeout_s: float) -> list[Delivery]:
        """Up to ``max_messages`` messages; waits at most ``timeout_s`` for the first one."""

    async def ack(self, delivery: Delivery) -> None:
        """``delivery`` is fully handled and need never be delivered again."""

    async def keep_alive(self) -> None:
        """Stay a member of the group while taking no messages (e.g. an invoker whose slots are full).

        Kafka drops a member that has not received for ``max.poll.interval``; its unacknowledged
        messages would then be delivered again and run twice.
        """

    async def close(self) -> None:
        """Stop consuming; unacknowledged messages go back to the group."""


@runtime_checkable
class Bus(Protocol):
    """Publish/subscribe over named topics."""

    async def start(self) -> None:
        """Connect; called once before use."""

    async def close(self) -> None:
        """Flush and disconnect."""

    async def send(self, topic: str, value: bytes) -> None:
        """Append ``value`` to ``topic``; returns when the bus has accepted it."""

    async def subscribe(self, topic: str, group: str) -> Consumer:
        """Consume ``topic`` as a member of ``group``."""
