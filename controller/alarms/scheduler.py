"""The alarms scheduler: a service of every controller that fires the triggers of due schedules, each tick once.

OpenWhisk's alarms provider is a separate Node.js service holding every alarm in a timer of its own memory, with
an active/standby pair kept by Redis; a tick is lost when it changes hands and fired twice when both think they
are active. Here every controller runs this loop over the shared ``ScheduleStore`` and no leader is elected:

1. Read the schedules due within the next poll period (``due_schedules``, earliest first) and sleep until the
   earliest of them is due, at most one poll period (``poll_s``, 5 s by default). The sleep also ends when this
   controller's feeds write a schedule (``watching``) and when a fire started here is done (its claim moved the
   next tick), so a poll is needed only to see what other controllers wrote. Each poll is a view query of the
   store (with CouchDB, of the pouchdb-server or CouchDB that takes every activation record too): a 0.5 s period
   was 6.5 % of a distributed controller's CPU under invoke load, and read nothing.
2. For each due schedule read with revision R whose tick T has come: **claim** T by writing the schedule with
   ``next_fire_ms`` moved to the first tick after ``max(now, T)`` (and ``fired`` + 1) under revision R. The
   store's optimistic concurrency lets one writer win; the others get ``ConcurrentModification`` and skip T.
3. The winner fires the trigger as its namespace's owner, through the same ``fire`` as ``POST .../triggers``
   (throttled by ``firesPerMinute``, recorded with one log line per rule).

Exactly once, as far as a crash allows: a tick is fired only by the controller that claimed it, so never twice;
a controller killed between its claim and its fire loses that one tick (at most once, never duplicated), and
the next ticks are claimed by whichever controller is polling: every controller wakes at the ticks it has read,
so the handover of a schedule it knows costs nothing; one written by another controller since its last poll (and
whose writer then died before firing it) is seen within one poll period. Nothing to expire. A tick that came
while no controller ran fires once when one starts (the claim computes the next tick from now, not from T: missed
ticks collapse into one).

After a fire, as the provider's ``handleFiredTrigger`` (provider/lib/utils.js): a ``once`` alarm with
``deleteAfterFire`` ``true`` deletes its trigger (``rules``: and the trigger's rules) and the schedule; a schedule
with no tick left is disabled with the provider's reason. A fire refused with a 4xx other than 408/409/429
(the trigger deleted, its owner gone) disables the schedule as the provider does
(``Trigger automatically disabled: ...``); a throttled or failed fire loses that tick and the schedule goes on.
A paused schedule (feed ``PAUSE``) or a disabled one is not in the due query at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from controller.alarms.schedule import finished_reason, next_fire_ms
from pywhisk.errors import ConcurrentModification, StoreUnavailable, WhiskError
from pywhisk.identity import Identity
from pywhisk.messages import TransactionId
from pywhisk.schedules import ONCE, Schedule, ScheduleStatus
from pywhisk.store import EntityStore, ScheduleStore

log = logging.getLogger("pywhisk.controller.alarms")

POLL_S = 5.0
# With a batch full of due schedules, some may be beyond it: look again this soon rather than one poll period.
FULL_BATCH_POLL_S = 0.5
BATCH = 100
# [OW] utils.js shouldDisableTrigger: a 4xx other than these means the trigger cannot be fired again.
RETRYABLE_STATUSES = (408, 409, 429)


class Triggers(Protocol):
    """What the scheduler fires through: ``controller.triggers.TriggerFirer``."""

    async def fire(
        self, identity: Identity, namespace: str, name: str, params: dict[str, Any], *, transid: TransactionId
    ) -> str | None: ...


OwnerOf = Callable[[str], Awaitable[Identity | None]]


@dataclass(frozen=True)
class Fired:
    """One tick this scheduler claimed: the trigger, the tick, and the trigger activation id (None when no rule
    was active, or the fire was refused: ``error`` says why)."""

    namespace: str
    name: str
    tick_ms: int
    activation_id: str | None
    error: str | None = None


class AlarmScheduler:
    """Claims and fires due schedules (the module docstring has the algorithm). A service of the controller's
    lifespan: ``start`` starts the loop, ``close`` stops it and waits for the fires under way.

    ``triggers`` is read at each fire (the app builds its trigger firer after this). ``clock`` (seconds since
    the epoch) and ``sleep`` are injectable so tests drive time; ``poll_s`` bounds how long a schedule written by
    another controller waits to be seen here (this controller's feeds write through ``watching``, which wakes
    the loop at once)."""

    def __init__(
        self,
        schedules: ScheduleStore,
        entities: EntityStore,
        owner_of: OwnerOf,
        triggers: Callable[[], Triggers | None],
        *,
        clock: Callable[[], float] = time.time,
        poll_s: float = POLL_S,
        batch: int = BATCH,
    ) -> None:
        self._schedules = schedules
        self._entities = entities
        self._owner_of = owner_of
        self._triggers = triggers
        self._clock = clock
        self._poll_ms = int(poll_s * 1000)
        self._full_batch_poll_ms = min(self._poll_ms, int(FULL_BATCH_POLL_S * 1000))
        self._batch = batch
        self._changed = asyncio.Event()
        self._loop: asyncio.Task[None] | None = None
        self._firing: dict[tuple[str, str], asyncio.Task[Fired | None]] = {}

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop().create_task(self._run(), name="alarms scheduler")

    async def close(self) -> None:
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
        firing = list(self._firing.values())
        if firing:
            await asyncio.gather(*firing, return_exceptions=True)

    def changed(self) -> None:
        """A schedule was written here: look again now rather than at the next poll."""
        self._changed.set()

    def watching(self, schedules: ScheduleStore) -> ScheduleStore:
        """``schedules`` for this controller's feeds: every write through it wakes this scheduler."""
        return _Watched(schedules, self.changed)

    async def run_due(self, now_ms: int | None = None) -> list[Fired]:
        """Claim and fire every schedule due at ``now_ms`` (default: the clock); what this scheduler fired.
        One pass of the loop, for tests and tools."""
        now_ms = self._now_ms() if now_ms is None else now_ms
        due = await self._schedules.due_schedules(now_ms, self._batch)
        results = await asyncio.gather(*(self._claim_and_fire(s, now_ms) for s in due))
        return [r for r in results if r is not None]

    # the loop ----------------------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            wake_ms = self._now_ms() + self._poll_ms
            # Cleared before the query: a write while it runs may be missing from its answer, so it wakes the next
            # sleep at once.
            self._changed.clear()
            try:
                wake_ms = await self._pass()
            except asyncio.CancelledError:
                raise
            except StoreUnavailable as exc:
                log.warning("alarms scheduler: the store is unavailable (%s); trying again", exc)
            except Exception:
                log.exception("alarms scheduler pass failed; trying again")
            # asyncio.timeout, not wait_for: 3.11's wait_for can swallow ``close``'s cancel when the wait ends
            # at the same moment, and the loop would run on.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0, wake_ms - self._now_ms()) / 1000):
                    await self._changed.wait()

    async def _pass(self) -> int:
        """Start the fires that are due; the time to look again (the next due tick, within one poll period)."""
        now = self._now_ms()
        upcoming = await self._schedules.due_schedules(now + self._poll_ms, self._batch)
        wake = now + (self._full_batch_poll_ms if len(upcoming) >= self._batch else self._poll_ms)
        for schedule in upcoming:
            tick = schedule.next_fire_ms
            assert tick is not None, "due_schedules answers only schedules with a next fire"
            key = (schedule.namespace, schedule.name)
            if tick > now:
                wake = min(wake, tick)
            elif key not in self._firing:  # a fire of it under way here has claimed already, or will
                task = asyncio.get_running_loop().create_task(
                    self._claim_and_fire(schedule, now), name=f"alarm {schedule.trigger_name}"
                )
                self._firing[key] = task
                task.add_done_callback(functools.partial(self._forget, key))
        return wake

    def _forget(self, key: tuple[str, str], _: asyncio.Task[Fired | None]) -> None:
        self._firing.pop(key, None)
        # The claim moved the schedule's next tick (or another controller's did): read it now, not at the next poll.
        self._changed.set()

    # one tick ----------------------------------------------------------------------------------------

    async def _claim_and_fire(self, schedule: Schedule, now_ms: int) -> Fired | None:
        tick = schedule.next_fire_ms
        if tick is None or tick > now_ms or not schedule.status.active:
            return None
        claimed = await self._claim(schedule, tick, now_ms)
        if claimed is None:
            return None
        fired = await self._fire(claimed, tick)
        await self._after_fire(claimed, fired)
        return fired

    async def _claim(self, schedule: Schedule, tick: int, now_ms: int) -> Schedule | None:
        counted = schedule.model_copy(update={"fired": schedule.fired + 1})
        after = next_fire_ms(counted, max(now_ms, tick) + 1)
        status = schedule.status
        if after is None:
            reason = {"kind": "AUTO", "statusCode": None, "message": finished_reason(schedule)}
            status = ScheduleStatus(active=False, dateChanged=now_ms, reason=reason)
        try:
            return await self._schedules.put_schedule(
                counted.model_copy(update={"next_fire_ms": after, "status": status}), schedule.rev
            )
        except ConcurrentModification:  # another controller claimed this tick, or the feed changed the schedule
            log.debug("tick %d of %s was claimed elsewhere", tick, schedule.trigger_name)
            return None

    async def _fire(self, schedule: Schedule, tick: int) -> Fired:
        transid = TransactionId(id=uuid.uuid4().hex, start_ms=self._clock() * 1000)
        triggers = self._triggers()
        identity = await self._owner_of(schedule.namespace)
        try:
            if triggers is None:
                raise RuntimeError("this controller has no trigger firer")
            if identity is None:
                error = WhiskError("The supplied authentication is invalid.")
                error.status_code = 401
                raise error
            activation_id = await triggers.fire(
                identity, schedule.namespace, schedule.name, schedule.payload, transid=transid
            )
        except WhiskError as exc:
            log.warning("alarm %s: firing tick %d was refused: %s", schedule.trigger_name, tick, exc.message)
            if 400 <= exc.status_code < 500 and exc.status_code not in RETRYABLE_STATUSES:
                message = f"Received a {exc.status_code} status code when firing the trigger"
                await self._disable(schedule, exc.status_code, f"Trigger automatically disabled: {message}")
            return Fired(schedule.namespace, schedule.name, tick, None, exc.message)
        except Exception as exc:
            log.exception("alarm %s: firing tick %d failed", schedule.trigger_name, tick)
            return Fired(schedule.namespace, schedule.name, tick, None, str(exc))
        log.info("alarm %s fired tick %d: trigger activation %s", schedule.trigger_name, tick, activation_id)
        return Fired(schedule.namespace, schedule.name, tick, activation_id)

    async def _after_fire(self, schedule: Schedule, fired: Fired) -> None:
        if schedule.kind != ONCE or schedule.deleteAfterFire not in ("true", "rules"):
            return
        # [OW] sanitizer.deleteTriggerAndRules / deleteTrigger, then the feed's own document.
        trigger = await self._entities.get_trigger(schedule.namespace, schedule.name)
        if trigger is not None and schedule.deleteAfterFire == "rules":
            for rule_name in trigger.rules or {}:
                namespace, _, name = rule_name.partition("/")
                await self._entities.delete_rule(namespace, name)
        if trigger is not None:
            await self._entities.delete_trigger(schedule.namespace, schedule.name)
        await self._schedules.delete_schedule(schedule.namespace, schedule.name)

    async def _disable(self, schedule: Schedule, status_code: int, message: str) -> None:
        reason = {"kind": "AUTO", "statusCode": status_code, "message": message}
        current: Schedule | None = schedule
        for _ in range(3):
            if current is None:
                return
            disabled = current.model_copy(
                update={"status": ScheduleStatus(active=False, dateChanged=self._now_ms(), reason=reason)}
            )
            try:
                await self._schedules.put_schedule(disabled, current.rev)
                return
            except ConcurrentModification:
                current = await self._schedules.get_schedule(schedule.namespace, schedule.name)

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)


class _Watched:
    """A ``ScheduleStore`` that calls ``changed`` after every write (``AlarmScheduler.watching``)."""

    def __init__(self, schedules: ScheduleStore, changed: Callable[[], None]) -> None:
        self._schedules = schedules
        self._changed = changed

    async def get_schedule(self, namespace: str, name: str) -> Schedule | None:
        return await self._schedules.get_schedule(namespace, name)

    async def put_schedule(self, schedule: Schedule, expected_rev: str | None) -> Schedule:
        try:
            return await self._schedules.put_schedule(schedule, expected_rev)
        finally:  # a failed write may still have been applied (a lost answer)
            self._changed()

    async def delete_schedule(self, namespace: str, name: str) -> Schedule | None:
        return await self._schedules.delete_schedule(namespace, name)

    async def due_schedules(self, until_ms: int, limit: int) -> list[Schedule]:
        return await self._schedules.due_schedules(until_ms, limit)
