"""What every long-lived part (store, bus, invoker, executor) has in common: start, then close."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable


@runtime_checkable
class Service(Protocol):
    async def start(self) -> None:
        """Acquire resources and start background tasks."""

    async def close(self) -> None:
        """Stop background tasks and release resources; safe to call once after start."""


async def every(period_s: float, work: Callable[[], Awaitable[None]], what: str, log: logging.Logger) -> None:
    """Run ``work`` every ``period_s`` until cancelled; a failure is logged and the next round comes anyway."""
    while True:
        await asyncio.sleep(period_s)
        try:
            await work()
        except Exception:
            log.exception("%s failed", what)
