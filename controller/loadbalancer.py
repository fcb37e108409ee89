"""Routing activations to invokers and collecting their completions.

Invokers announce themselves with pings on ``health``; an activation goes to the action's home
invoker, probing with a coprime step when the home is not usable, as OpenWhisk's
ShardingContainerPoolBalancer does (reference/openwhisk.md §5.3). Completions arrive on this
controller's ``completed{C}`` topic and resolve the futures blocking callers wait on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable

import orjson
from pydantic import ValidationError

from pywhisk.activation import Activation
from pywhisk.bus import Bus, Consumer
from pywhisk.errors import ServiceUnavailable
from pywhisk.messages import (
    HEALTH_TOPIC,
    ActivationMessage,
    CompletionMessage,
    PingMessage,
    completed_topic,
    invoker_topic,
)

log = logging.getLogger("pywhisk.controller.loadbalancer")

# An invoker that has not pinged for this long is offline ([OW] InvokerSupervision: 10 s).
OFFLINE_AFTER_S = 10.0


def java_string_hash(text: str) -> int:
    """Java's ``String.hashCode``, so home invokers match OpenWhisk's for the same names."""
    h = 0
    # Java hashes UTF-16 code units, so characters outside the BMP count as two.
    units = text.encode("utf-16-be")
    for i in range(0, len(units), 2):
        h = (31 * h + int.from_bytes(units[i : i + 2], "big")) & 0xFFFFFFFF
    return h - (1 << 32) if h & 0x80000000 else h


def coprime_steps(n: int) -> list[int]:
    """Step sizes in 1..n coprime to n ([OW] ShardingContainerPoolBalancer.pairwiseCoprimeNumbersUntil)."""
    steps: list[int] = []
    for candidate in range(1, n + 1):
        if math.gcd(candidate, n) == 1 and all(math.gcd(candidate, s) == 1 for s in steps):
            steps.append(candidate)
    return steps or [1]


def probe_order(namespace: str, fq_action_name: str, invokers: int) -> list[int]:
    """Invoker indices in the order the balancer tries them for this action."""
    hashed = abs(java_string_hash(namespace) ^ java_string_hash(fq_action_name))
    home = hashed % invokers
    steps = coprime_steps(invokers)
    step = steps[hashed % len(steps)]
    return [(home + i * step) % invokers for i in range(invokers)]


class LoadBalancer:
    """Publishes activations to invokers and resolves waiters from completion acks."""

    def __init__(self, bus: Bus, controller_id: int) -> None:
        self._bus = bus
        self.controller_id = controller_id
        self._last_ping: dict[int, float] = {}
        self._waiters: dict[str, asyncio.Future[Activation | None]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.in_flight: dict[str, int] = {}  # activation id -> invoker, until its completion

    async def start(self) -> None:
        completions = await self._bus.subscribe(completed_topic(self.controller_id), "controller")
        health = await self._bus.subscribe(HEALTH_TOPIC, f"controller{self.controller_id}")
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._consume(completions, self._on_completion), name="lb-completions"),
            loop.create_task(self._consume(health, self._on_ping), name="lb-health"),
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

    def healthy_invokers(self) -> list[int]:
        deadline = time.monotonic() - OFFLINE_AFTER_S
        return sorted(i for i, seen in self._last_ping.items() if seen >= deadline)

    async def wait_for_invoker(self, timeout_s: float) -> bool:
        """True once at least one invoker has pinged (used at start-up)."""
        end = time.monotonic() + timeout_s
        while not self.healthy_invokers():
            if time.monotonic() > end:
                return False
            await asyncio.sleep(0.01)
        return True

    async def publish(self, message: ActivationMessage, fq_action_name: str) -> None:
        """Send the activation to an invoker; register a waiter first if the caller blocks."""
        healthy = self.healthy_invokers()
        if not healthy:
            raise ServiceUnavailable()
        cluster = max(self._last_ping) + 1
        namespace = message.user.namespace.name
        target = next(i for i in probe_order(namespace, fq_action_name, cluster) if i in healthy)
        if message.blocking:
            self._waiters[message.activationId] = asyncio.get_running_loop().create_future()
        self.in_flight[message.activationId] = target
        try:
            await self._bus.send(invoker_topic(target), message.serialize())
        except BaseException:
            self._waiters.pop(message.activationId, None)
            self.in_flight.pop(message.activationId, None)
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

    async def _consume(self, consumer: Consumer, handle: Callable[[bytes], None]) -> None:
        try:
            while True:
                for value in await consumer.receive(max_messages=500, timeout_s=1.0):
                    try:
                        handle(value)
                    except (ValidationError, orjson.JSONDecodeError):
                        log.exception("dropping a malformed bus message")
                    except Exception:  # one bad message must not end the loop (and with it, health)
                        log.exception("handling a bus message failed")
                await consumer.commit()
        finally:
            await consumer.close()

    def _on_completion(self, value: bytes) -> None:
        ack = CompletionMessage.model_validate_json(value)
        self.in_flight.pop(ack.activationId, None)
        waiter = self._waiters.get(ack.activationId)
        if waiter is not None and not waiter.done():
            waiter.set_result(ack.response)

    def _on_ping(self, value: bytes) -> None:
        ping = PingMessage.model_validate_json(value)
        if ping.isEnabled:
            self._last_ping[ping.name.instance] = time.monotonic()
        else:
            self._last_ping.pop(ping.name.instance, None)
