"""Group commit for activation records, shared by the store backends.

Every item waiting when the previous flush returns goes into the next one: by default there is no linger timer,
so an idle system writes each record at once while a busy one amortises a transaction (SQLite) or a
``_bulk_docs`` round trip (CouchDB) over hundreds of records. A ``linger_s`` makes a batch wait that long after
its first item for more (as a Kafka producer's ``linger.ms``): for a server whose cost is mostly per request
rather than per item (pouchdb-server: ~4 ms of CPU per ``_bulk_docs`` request, ~0.4 ms per record;
docs/benchmarks.md, issue 15), bigger batches are cheaper than prompt ones. The backend gives the flush
function; the writer owns the queue, the one background task, batch bounds and resolving each caller's future.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

# Puts closer together than this are taken for load: they queue for a group commit rather than go inline.
INLINE_GAP_S = 0.001

Flush = Callable[[list[T]], Awaitable[Sequence[BaseException | None]]]
"""Writes one batch. Returns one outcome per item, in order (None: stored), or raises if none was stored."""

InlineFlush = Callable[[list[T]], Sequence[BaseException | None] | None]
"""Writes one batch at once, on the event loop, if it can: outcomes as ``Flush``'s, or None when it cannot (nothing
written; the item then queues for ``Flush``)."""


@dataclass
class _Waiting(Generic[T]):
    item: T
    done: asyncio.Future[None]
    arrived: float  # the loop's time when it was put (a batch lingers from its first item's)


class GroupCommitWriter(Generic[T]):
    """Queues items and writes them in batches through ``flush``; ``put`` returns once its item is written.

    ``name`` names the background task, ``what`` the items in log lines (e.g. "activation records").

    A batch holds at most ``max_items`` items and, past its first item, at most ``max_bytes`` by ``size``
    (both unbounded when None). ``on_flush`` is told the size and seconds of every flush that returns (the
    store metrics). A flush that raises fails every caller of its batch, with a warning in the log; an outcome
    that is an exception fails only its own caller. A caller cancelled while waiting does not take its item
    back: it is written regardless.

    ``inline``, when given, writes an item put while the writer is idle (nothing queued, no batch being written)
    right away, in the caller's own step, instead of waking the background task and then the caller again: two
    rounds of the event loop, each behind every other ready task (SQLite's small commits; docs/benchmarks.md,
    issue 12). Only while puts are sparse (none in the last ``inline_gap_s``): under load, when they come closer,
    each one written alone would give up the group commit, and that cost a third of standalone's throughput.
    Items put while a batch is being written always queue and share the next one.
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
        linger_s: float = 0.0,
        inline: InlineFlush[T] | None = None,
        inline_gap_s: float = INLINE_GAP_S,
    ) -> None:
        if max_items is not None and max_items < 1:
            raise ValueError("max_items must be at least 1")
        if linger_s < 0:
            raise ValueError("linger_s must not be negative")
        self._linger_s = linger_s
        self._flush = flush
        self._inline = inline if not linger_s else None  # a lingering writer waits for company by design
        self.inline_gap_s = inline_gap_s
        self._last_put = float("-inf")  # the loop's time of the last put (closer ones than inline_gap_s queue)
        self._name = name
        self._what = what
        self._log = log
        self._max_items = max_items
        self._max_bytes = max_bytes
        self._size = size
        self._on_flush = on_flush  # (batch size, seconds) of every flush: pywhisk/metrics.py
        self._pending: list[_Waiting[T]] = []
        self._pending_bytes = 0  # the size of every item in _pending
        self._batch_full: asyncio.Future[None] | None = None  # while a batch lingers: set once it is full
        self._task: asyncio.Task[None] | None = None
        self.flushes = 0
        """How many batches have been handed to ``flush`` (so batching is observable)."""

    async def put(self, item: T) -> None:
        """Queue ``item`` for the next batch and wait until it is written; raises what its write raised."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        sparse, self._last_put = now - self._last_put >= self.inline_gap_s, now
        if self._inline is not None and sparse and not self._pending and (self._task is None or self._task.done()):
            started = time.perf_counter()
            try:
                outcomes = self._inline([item])
            except Exception as exc:
                self._log.warning("writing 1 of %s failed: %s", self._what, exc)
                raise
            if outcomes is not None:
                self.flushes += 1
                if self._on_flush is not None:
                    self._on_flush(1, time.perf_counter() - started)
                (outcome,) = outcomes
                if outcome is not None:
                    raise outcome
                return
        waiting = _Waiting(item, loop.create_future(), now)
        self._pending.append(waiting)
        self._pending_bytes += self._size(item)
        if self._batch_full is not None and not self._batch_full.done() and self._full():
            self._batch_full.set_result(None)  # lingering: a full batch need not wait any longer
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run(), name=self._name)
        await waiting.done

    async def close(self) -> None:
        """Wait until every item queued so far is written (or has failed)."""
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        while self._pending:
            # Lingering: a batch waits until ``linger_s`` after its first item arrived, or until it is full; the
            # items that arrive meanwhile join it.
            loop = asyncio.get_running_loop()
            linger = self._pending[0].arrived + self._linger_s - loop.time() if self._linger_s else 0.0
            if linger > 0 and not self._full():
                self._batch_full = loop.create_future()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._batch_full, linger)
                self._batch_full = None
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

    def _full(self) -> bool:
        """Whether the items waiting fill a batch, by count or by bytes."""
        if self._max_items is not None and len(self._pending) >= self._max_items:
            return True
        return self._max_bytes is not None and self._pending_bytes >= self._max_bytes

    def _take_batch(self) -> list[_Waiting[T]]:
        if self._max_items is None and self._max_bytes is None:
            batch, self._pending = self._pending, []
            self._pending_bytes = 0
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
        self._pending_bytes -= size
        return batch
