"""Activation retention, shared by the store backends: delete records older than N days, every interval.

A backend provides ``purge_activations_older_than``; ``Retention`` runs it on ``pywhisk.lifecycle.every``
(first round at start, so a store that was down for a while catches up at once) as one named task that
``close`` cancels. Without ``retention_days`` nothing runs and records are kept forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Protocol

from pywhisk.lifecycle import every

DAY_MS = 86_400_000


class PurgesActivations(Protocol):
    """A store that can delete old activation records."""

    async def purge_activations_older_than(self, cutoff_ms: int) -> int:
        """Delete every activation record whose ``start`` is before ``cutoff_ms``; returns how many."""


async def purge_expired_activations(store: PurgesActivations, retention_ms: int, log: logging.Logger) -> None:
    """One round of activation retention: delete the records older than ``retention_ms``."""
    purged = await store.purge_activations_older_than(int(time.time() * 1000) - retention_ms)
    if purged:
        log.info("retention: deleted %d activation records", purged)


class Retention:
    """The background task deleting ``store``'s activation records older than ``retention_days`` every
    ``interval_s``. Failures of a round are logged (``expected`` ones, e.g. the backend being down, as a
    warning without traceback) and the next round comes anyway."""

    def __init__(
        self,
        store: PurgesActivations,
        retention_days: float | None,
        interval_s: float,
        log: logging.Logger,
        *,
        name: str,
        expected: tuple[type[Exception], ...] = (),
    ) -> None:
        self._store = store
        self._retention_ms = None if retention_days is None else int(retention_days * DAY_MS)
        self._interval_s = interval_s
        self._log = log
        self._name = name
        self._expected = expected
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the task if retention is configured and it is not running yet."""
        if (retention_ms := self._retention_ms) is None or self._task is not None:
            return
        self._task = asyncio.get_running_loop().create_task(
            every(
                self._interval_s,
                lambda: purge_expired_activations(self._store, retention_ms, self._log),
                "retention: purging old activation records",
                self._log,
                at_once=True,
                expected=self._expected,
            ),
            name=self._name,
        )

    async def close(self) -> None:
        """Stop the task (a round in progress is abandoned; the next start catches up)."""
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
