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


async def every(
    period_s: float,
    work: Callable[[], Awaitable[None]],
    what: str,
    log: logging.Logger,
    *,
    at_once: bool = False,
    expected: tuple[type[Exception], ...] = (),
) -> None:
    """Run ``work`` every ``period_s`` (first right away if ``at_once``) until cancelled. A failure is logged
    and the next round comes anyway: an ``expected`` one (e.g. a backend that is down) as a warning, any
    other with its traceback."""
    if not at_once:
        await asyncio.sleep(period_s)
    while True:
        try:
            await work()
        except expected as exc:
            log.warning("%s failed: %s", what, exc)
        except Exception:
            log.exception("%s failed", what)
        await asyncio.sleep(period_s)
