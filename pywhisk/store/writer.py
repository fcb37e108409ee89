"""Group commit for activation records, shared by the store backends.

Every item waiting when the previous flush returns goes into the next one: there is no linger timer, so an
idle system writes each record at once while a busy one amortises a transaction (SQLite) or a
``_bulk_docs`` round trip (CouchDB) over hundreds of records. The backend gives the flush function; the
writer owns the queue, the one background task, batch bounds and resolving each caller's future.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

Flush = Callable[[list[T]], Awaitable[Sequence[BaseException | None]]]
"""Writes one batch. Returns one outcome per item, in order (None: stored), or raises if none was stored."""


@dataclass
class _Waiting(Generic[T]):
    item: T
    done: asyncio.Future[None]


class GroupCommitWriter(Generic[T]):
    """Queues items and writes them in batches through ``flush``; ``put`` returns once its item is written.

    ``name`` names the background task, ``what`` the items in log lines (e.g. "activation records").

    A batch holds at most ``max_items`` items and, past its first item, at most ``max_bytes`` by ``size``
    (both unbounded when None). ``on_flush`` is told the size and seconds of every flush that returns (the
    store metrics). A flush that raises fails every caller of its batch, with a warning in the log; an outcome
    that is an exception fails only its own caller. A caller cancelled while waiting does not take its item
    back: it is written regardless.
    """

    def __init__(
        self,
        flush: Flush[T],
        *,
        name: str,
        what: str,
        log: logging.Logger,
        max_items: int | None = None,
        max_bytes: int | None = None,
        size: Callable[[T], int] = lambda _: 0,
        on_flush: Callable[[int, float], None] | None = None,
    ) -> None:
        if max_items is not None and max_items < 1:
            raise ValueError("max_items must be at least 1")
        self._flush = flush
        self._name = name
        self._what = what
        self._log = log
        self._max_items = max_items
        self._max_bytes = max_bytes
        self._size = size
        self._on_flush = on_flush  # (batch size, seconds) of every flush: pywhisk/metrics.py
        self._pending: list[_Waiting[T]] = []
        self._task: asyncio.Task[None] | None = None
        self.flushes = 0
        """How many batches have been handed to ``flush`` (so batching is observable)."""

    async def put(self, item: T) -> None:
        """Queue ``item`` for the next batch and wait until it is written; raises what its write raised."""
        waiting = _Waiting(item, asyncio.get_running_loop().create_future())
        self._pending.append(waiting)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name=self._name)
        await waiting.done

    async def close(self) -> None:
        """Wait until every item queued so far is written (or has failed)."""
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        while self._pending:
            batch = self._take_batch()
            self.flushes += 1
            started = time.perf_counter()
            try:
                outcomes = await self._flush([waiting.item for waiting in batch])
            except Exception as exc:  # every caller of this batch learns that its item was not written
                self._log.warning("writing %d %s failed: %s", len(batch), self._what, exc)
                outcomes = [exc] * len(batch)
            else:
                if self._on_flush is not None:
                    self._on_flush(len(batch), time.perf_counter() - started)
            for waiting, outcome in zip(batch, outcomes, strict=True):
                if waiting.done.done():
                    continue  # the caller was cancelled; the item is written regardless
                if outcome is None:
                    waiting.done.set_result(None)
                else:
                    waiting.done.set_exception(outcome)

    def _take_batch(self) -> list[_Waiting[T]]:
        if self._max_items is None and self._max_bytes is None:
            batch, self._pending = self._pending, []
            return batch
        size, count = 0, 0
        for waiting in self._pending:
            if count and self._max_items is not None and count >= self._max_items:
                break
            item_size = self._size(waiting.item)
            if count and self._max_bytes is not None and size + item_size > self._max_bytes:
                break
            size += item_size
            count += 1
        batch, self._pending = self._pending[:count], self._pending[count:]
        return batch
