"""Nothing lost: every sequence ends with a record, even when the controller running it dies.

OpenWhisk keeps a running sequence only in the memory of the controller running it; if that controller dies,
the sequence never gets a record. Here, before its first component starts, a sequence is journalled in the
activation store, and every controller (a peer, or the one restarted) records as a whisk internal error each
journalled sequence that has no record once its deadline has passed.

The journal needs nothing but what the activation store already does, because ``put_activation`` keeps the
first record of an id:

- an entry is an activation record in ``JOURNAL_NAMESPACE``, a namespace no subject holds, under an id of its
  own (SQLite keys records by id alone), whose ``start`` is the sequence's deadline and whose ``record``
  annotation is the record the sequence gets if it is lost. Entries go to the store's ``sequence_journal``
  where it has one (CouchDB: a database apart, ``pywhisk.store.SequenceJournalStore``), else among the records;
- every ``PERIOD_S`` each controller lists the entries whose deadline passed since its last look
  (``since``/``upto`` on ``start``) and, for each sequence that has no record, puts the lost record. A
  sequence that ended has its record already, and a lost record put twice (by two controllers) is kept once,
  so nothing is ever deleted or coordinated.

The deadline bounds the run: every component ends within its time limit and the runner's wait beyond it
(``timeout_addon_ms``, a minute by default), an inner sequence within ``ACTION_SEQUENCE_LIMIT`` of the longest
ones, plus that add-on again as a margin. A controller that comes back scans from ``LOOKBACK_MS`` before its
start: a sequence whose deadline passed while every controller was down for longer is not recovered (the cost:
one entry read per sequence per controller, within that window). Entries stay until the store's retention drops them.

Example: a sequence of two components with 1 s and 60 s limits starting at t is journalled with deadline
t + (1 + 60) + (60 + 60) + 60 s = t + 241 s; its controller is killed at t + 5 s; the first scan after
t + 241 s by any controller finds no record of it and writes one: whisk internal error, ``LOST_MESSAGE``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine
from typing import Any

from controller.activator import Activated
from pywhisk.activation import Activation, ActivationResponse, StatusCode, new_activation_id
from pywhisk.entities import KeyValue
from pywhisk.lifecycle import every
from pywhisk.store import ActivationQuery, ActivationStore

log = logging.getLogger("pywhisk.controller.sequences")

# A namespace no subject holds (reserved like whisk.system; no leading "_": CouchDB reserves such ids).
JOURNAL_NAMESPACE = "whisk.sequences"
PERIOD_S = 5.0
LOOKBACK_MS = 60 * 60 * 1000
TIMEOUT_ADDON_MS = 60_000
_PAGE = 200
LOST_MESSAGE = "The sequence did not complete: the controller running it stopped responding."


class SequenceJournal:
    """Journals running sequences and records the lost ones (see the module's docstring)."""

    def __init__(
        self,
        records: ActivationStore,
        *,
        entries: ActivationStore | None = None,
        period_s: float = PERIOD_S,
        timeout_addon_ms: int = TIMEOUT_ADDON_MS,
    ) -> None:
        self._records = records
        self._entries = entries if entries is not None else records  # the journal's own entries
        self._period_s = period_s
        self.timeout_addon_ms = timeout_addon_ms
        """How long past a step's time limit its composition waits for it, and the margin of every deadline
        ([OW] the controller's ``timeout-addon``; ``PYWHISK_COMPOSITION_TIMEOUT_ADDON_MS``)."""
        self._scanned_upto = 0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._scanned_upto = int(time.time() * 1000) - LOOKBACK_MS
        self._task = asyncio.get_running_loop().create_task(
            every(self._period_s, self.record_lost, "recording lost sequences", log, at_once=True),
            name="sequence-journal",
        )

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def begin(self, lost: Activation, deadline_ms: int) -> None:
        """Journal a sequence about to run; ``lost`` is the record it gets if its controller dies (its ``end``
        is set when it is recorded). Raises if the store did not take the entry: the sequence must not run."""
        entry = Activation(
            activationId=new_activation_id(),
            namespace=JOURNAL_NAMESPACE,
            name=lost.name,
            subject=lost.subject,
            start=deadline_ms,
            end=deadline_ms,
            duration=0,
            response=ActivationResponse.of(StatusCode.SUCCESS, None),
            annotations=[KeyValue(key="record", value=lost.model_dump(mode="json"))],
        )
        await self._entries.put_activation(entry)

    async def record_lost(self) -> None:
        """Record every journalled sequence whose deadline passed since the last look and that has no record."""
        upto = int(time.time() * 1000)
        since = self._scanned_upto + 1
        skip = 0
        while True:
            query = ActivationQuery(namespace=JOURNAL_NAMESPACE, since=since, upto=upto, limit=_PAGE, skip=skip)
            entries = await self._entries.list_activations(query)
            for entry in entries:
                await self._record_if_lost(entry)
            if len(entries) < _PAGE:
                break
            skip += _PAGE
        self._scanned_upto = upto

    async def _record_if_lost(self, entry: Activation) -> None:
        lost = Activation.model_validate(entry.annotation("record"))
        if await self._records.get_activation(lost.namespace, lost.activationId) is not None:
            return
        log.warning("sequence %s of %s never recorded itself; recording it as lost", lost.activationId, lost.namespace)
        lost.end = max(lost.start, int(time.time() * 1000))
        await self._records.put_activation(lost)


def lost_response() -> ActivationResponse:
    return ActivationResponse.error(StatusCode.WHISK_ERROR, LOST_MESSAGE)


class RunningCompositions:
    """The compositions (sequences, conductors) one controller runs: each journalled before it is accepted, then a
    task owned here, waited for by a blocking caller up to its wait, and cancelled at close (the run records
    itself as failed when cancelled)."""

    def __init__(self, journal: SequenceJournal) -> None:
        self._journal = journal
        self._running: set[asyncio.Task[Activation]] = set()

    async def start(
        self,
        activation_id: str,
        lost: Activation,
        deadline_ms: int,
        run: Coroutine[Any, Any, Activation],
        *,
        name: str,
        blocking: bool,
        wait_ms: int,
    ) -> Activated:
        """Journal ``lost`` (the record if this controller dies), then run; the record if the caller blocks and
        it ends within ``wait_ms``. Raises, and ``run`` never starts, if the journal did not take the entry."""
        try:
            await self._journal.begin(lost, deadline_ms=deadline_ms)
        except BaseException:
            run.close()
            raise
        task = asyncio.get_running_loop().create_task(run, name=name)
        self._running.add(task)
        task.add_done_callback(self._ended)
        if not blocking:
            return Activated(activation_id)
        done, _ = await asyncio.wait({task}, timeout=wait_ms / 1000)
        return Activated(activation_id, task.result() if done else None)

    async def cancel_all(self) -> None:
        running = list(self._running)
        for task in running:
            task.cancel()
        for task in running:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _ended(self, task: asyncio.Task[Activation]) -> None:
        self._running.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s failed", task.get_name(), exc_info=task.exception())
