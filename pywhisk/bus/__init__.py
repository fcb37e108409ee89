"""The ``Bus`` seam: topics of bytes between controllers and invokers (Kafka in distributed mode).

Semantics follow Kafka's, narrowed to what pywhisk needs: ``send`` appends to a topic; a consumer in a
group receives each message once per group; ``commit`` acknowledges everything received so far, and
messages received but not committed when a consumer dies are delivered again (at-least-once).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class Consumer(Protocol):
    """A subscription of one consumer group to one topic."""

    async def receive(self, max_messages: int, timeout_s: float) -> list[bytes]:
        """Up to ``max_messages`` messages; waits at most ``timeout_s`` for the first one."""

    async def commit(self) -> None:
        """Acknowledge every message received so far."""

    async def close(self) -> None:
        """Stop consuming; uncommitted messages go back to the group."""


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
