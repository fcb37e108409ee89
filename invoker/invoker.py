"""The invoker: consumes activations, hands each to the runner, stores its record, acks.

Shaped like arq's worker: a bounded number of activations in progress (taken before reading more
work), one task per activation, a record for every activation whatever happens, and a clean drain
on close. What happens to one activation, from its action to its record, is the runner's
(``invoker/proxy.py``, which states the contract between the two).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Protocol

import orjson
from pydantic import ValidationError

from invoker.pool import Pool, StemCells
from invoker.proxy import ActivationRunner, backoff_s, many_logs
from pywhisk import logs
from pywhisk.activation import Activation, StatusCode
from pywhisk.bus import Bus, Consumer, Delivery
from pywhisk.errors import StoreUnavailable
from pywhisk.executor import Executor
from pywhisk.lifecycle import every
from pywhisk.messages import (
    HEALTH_TOPIC,
    ActivationMessage,
    CompletionMessage,
    InvokerInstance,
    PingMessage,
    ResultMessage,
    completed_topic,
    invoker_topic,
    parse,
)
from pywhisk.metrics import Metrics
from pywhisk.runtimes import RuntimeManifest
from pywhisk.settings import Settings
from pywhisk.store import ActivationStore, EntityStore

log = logging.getLogger("pywhisk.invoker")

PING_INTERVAL_S = 1.0
# While every slot is taken the consumer is told to stay in its group this often (Kafka's
# max.poll.interval is 10 min here: an invoker full for longer would be dropped and its work redelivered).
KEEP_ALIVE_S = 60.0


class InvokerStore(EntityStore, ActivationStore, Protocol):
    """What an invoker needs of the store: actions to read (the runner) and records to write (the loop)."""


class Invoker:
    """One invoker (``invoker{N}``) with its pool and executors."""

    def __init__(
        self,
        settings: Settings,
        bus: Bus,
        store: InvokerStore,
        executors: dict[str, Executor],
        manifest: RuntimeManifest,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.instance = InvokerInstance(
            instance=settings.invoker_id,
            uniqueName=f"invoker{settings.invoker_id}",
            userMemory=f"{settings.user_memory_mb} MB",
        )
        self._bus = bus
        self._store: ActivationStore = store
        self._executors = executors
        self._manifest = manifest
        self.pool = Pool(
            settings.user_memory_mb,
            settings.idle_timeout_s,
            settings.pause_grace_s,
            settings.user_memory_reserve_mb,
            on_start=metrics.record_start if metrics is not None else None,
        )
        self._runner = ActivationRunner(
            actions=store,
            pool=self.pool,
            executors=executors,
            manifest=manifest,
            max_record_bytes=settings.activation_max_bytes,
            closing=lambda: self._closing,
            action_cache_bytes=settings.invoker_action_cache_mb * 1024 * 1024,
        )
        self._slots = asyncio.Semaphore(settings.invoker_max_in_progress)
        self._running: set[asyncio.Task[None]] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._consumer: Consumer | None = None
        self._closing = False
        self._metrics = metrics
        if metrics is not None:
            name = f"invoker{settings.invoker_id}"
            kinds = [executor.name for executor in executors.values()]
            metrics.watch_invoker(name, kinds, lambda: len(self._running), lambda: self.pool.queued, self.pool.states)

    async def start(self) -> None:
        for executor in self._executors.values():
            await executor.start()
        await self.pool.start()
        for runtime in self._manifest.all_runtimes():
            serving = self._executors.get(runtime.executor)
            if serving is None:
                continue
            for cells in runtime.stemCells:
                self.pool.prewarm(StemCells(serving, runtime.kind, cells.memory, cells.count))
        # A group per invoker, as OpenWhisk: one invoker's restart must not rebalance the others.
        topic = invoker_topic(self.settings.invoker_id)
        self._consumer = await self._bus.subscribe(topic, group=topic)
        await self._ping()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._consume(self._consumer), name="invoker-consume"),
            loop.create_task(every(PING_INTERVAL_S, self._ping, "health ping", log), name="invoker-ping"),
        ]

    async def close(self) -> None:
        """Stop reading, let the activations in progress finish and be recorded, then let go."""
        self._closing = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._running:
            await asyncio.wait(self._running, timeout=self.settings.drain_timeout_s)
        if self._consumer is not None:
            # Whatever did not finish is not acknowledged: the bus delivers it again.
            await self._consumer.close()
        await self.pool.close()
        for executor in self._executors.values():
            await executor.close()

    # the loop ------------------------------------------------------------------------------------

    async def _consume(self, consumer: Consumer) -> None:
        logs.bind(component=f"invoker{self.settings.invoker_id}")  # this task's lines, and its activations'
        loop = asyncio.get_running_loop()
        while True:
            await self._take_slot(consumer)  # bounded work in progress, taken before reading more
            self._slots.release()
            for delivery in await consumer.receive(max_messages=100, timeout_s=1.0):
                await self._take_slot(consumer)
                task = loop.create_task(self._handle(consumer, delivery))
                self._running.add(task)
                task.add_done_callback(self._done)

    async def _take_slot(self, consumer: Consumer) -> None:
        while True:
            try:
                async with asyncio.timeout(KEEP_ALIVE_S):
                    await self._slots.acquire()
                return
            except TimeoutError:
                log.info("every slot busy for %.0f s; staying in the consumer group", KEEP_ALIVE_S)
                try:
                    await consumer.keep_alive()
                except Exception as exc:  # the bus is away: the next round tries again
                    log.warning("keeping the consumer group membership failed: %s", exc)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._slots.release()

    async def _ping(self) -> None:
        ping = PingMessage(name=self.instance, timestamp=time.time() * 1000)
        await self._bus.send(HEALTH_TOPIC, ping.serialize())

    # one activation ------------------------------------------------------------------------------

    async def _handle(self, consumer: Consumer, delivery: Delivery) -> None:
        try:
            message = parse(ActivationMessage, delivery.value)
        except (ValidationError, orjson.JSONDecodeError):
            log.exception("dropping a malformed activation message")
            await consumer.ack(delivery)
            return
        # The controller's tid crossed the bus in the message: this task's lines (runner, pool, executor, bus,
        # store) carry it and the activation id (pywhisk/logs.py).
        logs.bind(tid=str(message.transid[0]), activation_id=message.activationId)
        log.debug("activation of %s/%s taken", message.action.path, message.action.name)
        try:
            record = await self._runner.run(message)
        except StoreUnavailable as exc:  # only when closing: left unacknowledged, delivered again
            log.warning("activation %s left for redelivery: %s", message.activationId, exc)
            return
        log.debug("activation ended: status %d, duration %d ms", record.response.statusCode, record.duration)
        if await self._finish(message, record):
            if self._metrics is not None:  # once per activation: a record not stored is delivered again
                self._metrics.record_activation(record, initiator=message.user.namespace.name)
            await consumer.ack(delivery)

    async def _finish(self, message: ActivationMessage, record: Activation) -> bool:
        """Store the record, then tell the controller. False if the record could not be stored
        before shutdown: the message is then left unacknowledged, to be delivered again.

        With ``result_before_record`` (by default over Kafka) a blocking activation's record goes to the controller
        first ([OW] ContainerProxy's ResultMessage): in distributed mode the store write was about half of a warm
        blocking invoke's latency (docs/benchmarks.md, issue 15). The completion that ends the activation (the
        result gave its memory back already), and the acknowledgement of the bus message, still wait for the store,
        so nothing accepted goes unrecorded.
        """
        topic = completed_topic(message.rootControllerIndex.asString)
        carries_record = message.blocking and not many_logs(record.logs)
        if carries_record and self.settings.result_before_record:
            try:
                await self._bus.send(topic, ResultMessage(transid=message.transid, response=record).serialize())
                carries_record = False  # the completion need not carry it again
            except Exception as exc:  # the completion after the store carries it instead
                log.warning("sending the result of %s failed: %s", message.activationId, exc)
        if not await self._store_record(record):
            return False

        def ack(response: Activation | None) -> bytes:
            return CompletionMessage(
                transid=message.transid,
                activationId=message.activationId,
                isSystemError=record.status_code == StatusCode.WHISK_ERROR,
                instance=self.instance,
                response=response,
            ).serialize()

        # [OW] MessagingActiveAck: the record travels with the completion of a blocking invoke only, and a
        # completion too large for the bus is sent again shrunk (without it); the controller then reads the
        # store. A record with many logs (a 10 MB log limit makes a ~7 MB record) is not sent at all: it
        # would be serialised for the bus and parsed again by the controller, for a record it can read.
        try:
            if carries_record:
                try:
                    await self._bus.send(topic, ack(record))
                    return True
                except Exception as exc:
                    log.warning("sending the completion of %s with its record failed: %s", message.activationId, exc)
            await self._bus.send(topic, ack(None))
        except Exception:  # the record is stored; the controller falls back to the store
            log.exception("sending the completion of %s failed", message.activationId)
        return True

    async def _store_record(self, record: Activation) -> bool:
        # A store outage (e.g. CouchDB restarting) must not lose the record: retry until it is back,
        # backing off to a few seconds, for as long as the invoker runs.
        attempt = 0
        while True:
            try:
                await self._store.put_activation(record)
                return True
            except Exception as exc:
                attempt += 1
                if self._closing and attempt > 3:
                    log.error("giving up storing %s at shutdown: %s", record.activationId, exc)
                    return False
                log.warning("storing activation %s failed (attempt %d): %s", record.activationId, attempt, exc)
                await asyncio.sleep(backoff_s(attempt))
