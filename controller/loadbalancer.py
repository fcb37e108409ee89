"""Routing activations to invokers and collecting their completions.

An activation goes to its action's home invoker, or the next one with free memory (invokers.py).
Completions arrive on this controller's ``completed{C}`` topic, give the memory back and resolve
the futures blocking callers wait on (a blocking activation's result, ahead of its store write, already
answers its caller and gives its memory back; its completion then ends it). Nothing accepted is ever
lost: when an invoker goes offline, or an activation outlives OpenWhisk's forced timeout, the controller
records the activation itself as a whisk internal error (the store keeps the first record of an id, so a
late one changes nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import orjson
from pydantic import ValidationError

from controller.invokers import Invokers
from controller.recent_results import RecentResults, record_size
from pywhisk import logs
from pywhisk.activation import Activation, ActivationResponse, StatusCode
from pywhisk.bus import Bus, Consumer, Delivery
from pywhisk.entities import Action
from pywhisk.lifecycle import every
from pywhisk.messages import (
    HEALTH_TOPIC,
    ActivationMessage,
    CompletionMessage,
    PingMessage,
    ResultMessage,
    Serialized,
    completed_topic,
    invoker_topic,
)
from pywhisk.records import build_activation
from pywhisk.settings import Settings
from pywhisk.store import ActivationStore

log = logging.getLogger("pywhisk.controller.loadbalancer")

SUPERVISION_PERIOD_S = 1.0
LOST_MESSAGE = "The activation did not complete: the invoker running it stopped responding."


def forced_timeout_s(action_timeout_ms: int) -> float:
    """When the balancer stops waiting for a completion: ``max(timeout, 60 s) * 2 + 1 min``
    ([OW] CommonLoadBalancer, timeout-factor 2 and timeout-addon 1m)."""
    return max(action_timeout_ms / 1000, 60.0) * 2 + 60.0


@dataclass
class InFlight:
    """An activation published and not yet completed."""

    message: ActivationMessage
    invoker: int
    memory_mb: int
    kind: str
    deadline: float
    # Set once the bus has the message: until then a failed send may still refuse the activation
    # (503), and supervision must not record it as lost.
    published: bool = False
    # Set once its memory went back to the invoker's books: at the result, when the run has ended and the
    # invoker's pool has the memory again, ahead of the completion that waits for the record's store write.
    memory_released: bool = False

    def take_memory(self) -> int:
        """The memory still to give back (once): ``memory_mb``, then 0."""
        if self.memory_released:
            return 0
        self.memory_released = True
        return self.memory_mb


class LoadBalancer:
    """Publishes activations to invokers, tracks them until completion, resolves blocking waiters."""

    def __init__(self, bus: Bus, store: ActivationStore, settings: Settings) -> None:
        self._bus = bus
        self._store = store
        self.controller_id = settings.controller_id
        self.invokers = Invokers(settings.controllers, settings.invoker_offline_after_s)
        self.in_flight: dict[str, InFlight] = {}
        # Activations in flight per namespace: the books the concurrent-invocations throttle reads.
        self._active: dict[str, int] = {}
        self._waiters: dict[str, asyncio.Future[Activation | None]] = {}
        # Records answered ahead of their store write, until their completion: the activation routes read them
        # when the store has nothing yet (read-your-writes, controller/recent_results.py).
        self.recent_results = RecentResults()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        completions = await self._bus.subscribe(completed_topic(self.controller_id), "controller")
        health = await self._bus.subscribe(HEALTH_TOPIC, f"controller{self.controller_id}")
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._consume(completions, self._on_completion), name="lb-completions"),
            loop.create_task(self._consume(health, self._on_ping), name="lb-health"),
            loop.create_task(
                every(SUPERVISION_PERIOD_S, self._fail_lost_activations, "supervising in-flight activations", log),
                name="lb-supervision",
            ),
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for waiter in self._waiters.values():
            if not waiter.done():
                waiter.cancel()

    async def wait_for_invoker(self, timeout_s: float) -> bool:
        """True once at least one invoker is usable (used at start-up and by tests)."""
        end = time.monotonic() + timeout_s
        while not self.invokers.usable():
            if time.monotonic() > end:
                return False
            await asyncio.sleep(0.01)
        return True

    async def publish(self, message: ActivationMessage, action: Action) -> None:
        """Send the activation to an invoker; registers the waiter first if the caller blocks."""
        memory = action.limits.memory
        target = self.invokers.choose(message.user.namespace.name, action.fully_qualified_name, memory)
        deadline = time.monotonic() + forced_timeout_s(action.limits.timeout)
        entry = InFlight(message, target, memory, action.exec.kind, deadline)
        self.in_flight[message.activationId] = entry
        namespace = message.user.namespace.name
        self._active[namespace] = self._active.get(namespace, 0) + 1
        if message.blocking:
            self._waiters[message.activationId] = asyncio.get_running_loop().create_future()
        # The rest of the caller's lines are about this activation (the API request's, a sequence's step).
        logs.bind(tid=str(message.transid[0]), activation_id=message.activationId)
        log.debug("posting activation of %s to invoker%d", action.fully_qualified_name, target)
        try:
            await self._bus.send(invoker_topic(target), message.serialize())
            entry.published = True
        except BaseException:
            self._waiters.pop(message.activationId, None)
            self._forget(message.activationId)
            self.invokers.release(target, memory, system_error=None, namespace=namespace)
            raise

    async def wait(self, activation_id: str, timeout_s: float) -> Activation | None:
        """The record of a blocking activation, or None if it did not complete in time.

        A None from the future itself means the completion came without the record (the caller
        then reads the store).
        """
        waiter = self._waiters.get(activation_id)
        if waiter is None:
            return None
        try:
            return await asyncio.wait_for(asyncio.shield(waiter), timeout_s)
        except TimeoutError:
            return None
        finally:
            self._waiters.pop(activation_id, None)

    def completed(self, activation_id: str) -> bool:
        return activation_id not in self.in_flight

    def active_activations(self, namespace: str) -> int:
        """The namespace's activations published by this controller and not yet completed (or lost)."""
        return self._active.get(namespace, 0)

    def _forget(self, activation_id: str) -> InFlight | None:
        """Take an activation off the books: its completion came, it was lost, or it was never sent."""
        entry = self.in_flight.pop(activation_id, None)
        if entry is not None:
            namespace = entry.message.user.namespace.name
            left = self._active.get(namespace, 0) - 1
            if left > 0:
                self._active[namespace] = left
            else:
                self._active.pop(namespace, None)
        return entry

    # consuming -----------------------------------------------------------------------------------

    async def _consume(self, consumer: Consumer, handle: Callable[[bytes], None]) -> None:
        try:
            while True:
                for delivery in await consumer.receive(max_messages=500, timeout_s=1.0):
                    self._handle(handle, delivery)
                    await consumer.ack(delivery)
        finally:
            await consumer.close()

    @staticmethod
    def _handle(handle: Callable[[bytes], None], delivery: Delivery) -> None:
        try:
            handle(delivery.value)
        except (ValidationError, orjson.JSONDecodeError):
            log.exception("dropping a malformed bus message")
        except Exception:  # one bad message must not end the loop (and with it, health)
            log.exception("handling a bus message failed")

    def _on_completion(self, value: bytes) -> None:
        ack = _acknowledgement(value)
        if isinstance(ack, ResultMessage):
            # The record ahead of its store write (result_before_record): answer the blocking caller. The run
            # and its logs are done, so its memory is the invoker's again. [OW] CommonLoadBalancer frees the slot
            # at the CompletionMessage, which ContainerProxy sends once the logs are collected, never waiting for
            # the store; ours follows the store (nothing accepted goes unrecorded), so the result is the point
            # OpenWhisk frees it at. Held until the store write (~40 ms with the records' linger), it made a home
            # invoker look full and spilled its actions to others. The activation stays supervised until the
            # completion.
            with logs.bound(tid=str(ack.transid[0]), activation_id=ack.response.activationId):
                log.debug("received the result from its invoker")
                entry = self.in_flight.get(ack.response.activationId)
                if entry is not None:  # else its completion came already: stored
                    self.recent_results.keep(ack.response, record_size(ack.response, len(value)))
                    self.invokers.give_back(entry.invoker, entry.take_memory())
                self._resolve(ack.response.activationId, ack.response)
            return
        with logs.bound(tid=str(ack.transid[0]), activation_id=ack.activationId):
            log.debug("received the completion from invoker%d", ack.instance.instance)
            entry = self._forget(ack.activationId)
            self.recent_results.discard(ack.activationId)  # the record is in the store now
            if entry is not None:
                namespace = entry.message.user.namespace.name
                self.invokers.release(entry.invoker, entry.take_memory(), ack.isSystemError, namespace=namespace)
            self._resolve(ack.activationId, ack.response)

    def _on_ping(self, value: bytes) -> None:
        self.invokers.on_ping(PingMessage.model_validate_json(value))

    def _resolve(self, activation_id: str, record: Activation | None) -> None:
        waiter = self._waiters.get(activation_id)
        if waiter is not None and not waiter.done():
            waiter.set_result(record)

    # nothing lost --------------------------------------------------------------------------------

    async def _fail_lost_activations(self) -> None:
        now = time.monotonic()
        statuses = self.invokers.statuses()
        lost = [
            entry
            for entry in self.in_flight.values()
            if entry.published and (statuses.get(entry.invoker) == "offline" or now > entry.deadline)
        ]
        for entry in lost:
            log.warning(
                "activation %s on invoker%d is lost (%s); recording it as a whisk internal error",
                entry.message.activationId,
                entry.invoker,
                statuses.get(entry.invoker),
                extra={"activationId": entry.message.activationId, "tid": str(entry.message.transid[0])},
            )
            await self._store.put_activation(_lost_record(entry))
            # The invoker may have stored a real record first: whatever the store holds is the answer.
            stored = await self._store.get_activation(entry.message.user.namespace.name, entry.message.activationId)
            self.recent_results.discard(entry.message.activationId)
            if self._forget(entry.message.activationId) is None:
                continue  # its completion arrived while the record was written: already released
            namespace = entry.message.user.namespace.name
            self.invokers.release(entry.invoker, entry.take_memory(), system_error=True, namespace=namespace)
            self._resolve(entry.message.activationId, stored)


def _acknowledgement(value: bytes) -> CompletionMessage | ResultMessage:
    """The completion or the result in ``value``: a result has no ``isSystemError`` ([OW] AcknowledgementMessage)."""
    if type(value) is Serialized and isinstance(value.message, CompletionMessage | ResultMessage):
        return value.message  # never left this process (pywhisk/messages.py)
    data = orjson.loads(value)  # then validated from the dict: ~1 µs dearer than from JSON, measured
    if isinstance(data, dict) and "isSystemError" not in data:
        return ResultMessage.model_validate(data)
    return CompletionMessage.model_validate(data)  # a malformed message fails here, as before


def _lost_record(entry: InFlight) -> Activation:
    message = entry.message
    now_ms = time.time() * 1000
    response = ActivationResponse.error(StatusCode.WHISK_ERROR, LOST_MESSAGE)
    wait_time_ms = now_ms - message.transaction.start_ms
    return build_activation(
        message, response, start_ms=now_ms, end_ms=now_ms, wait_time_ms=wait_time_ms, kind=entry.kind
    )
