"""What every long-lived part (store, bus, invoker, executor) has in common: start, then close."""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class Service(Protocol):
    async def start(self) -> None:
        """Acquire resources and start background tasks."""

    async def close(self) -> None:
        """Stop background tasks and release resources; safe to call once after start."""
