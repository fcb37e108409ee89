"""The controller's view of the invokers: health from pings and outcomes, memory permits.

Follows OpenWhisk's InvokerSupervision and ShardingContainerPoolBalancer (reference/openwhisk.md
§5.3-5.4): an invoker is offline after 10 s without a ping, unhealthy after more than 3 system
errors among its last 10 activations, and usable only when neither. Each controller owns
``user_memory / controllers`` MB of every invoker (at least 128) and takes an action's memory from
it while the activation is in flight.
"""

from __future__ import annotations

import math
import random
import time
from collections import deque
from dataclasses import dataclass, field

from pywhisk.errors import ServiceUnavailable
from pywhisk.messages import PingMessage

OUTCOME_WINDOW = 10
MAX_SYSTEM_ERRORS = 3
# OpenWhisk probes an unhealthy invoker with a test action; here it simply gets work again after
# this cool-down, with a clean record.
UNHEALTHY_COOL_DOWN_S = 10.0


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


@dataclass
class InvokerState:
    """What one controller knows about one invoker."""

    id: int
    capacity_mb: int
    free_mb: int
    last_ping: float
    outcomes: deque[bool] = field(default_factory=lambda: deque(maxlen=OUTCOME_WINDOW))
    unhealthy_since: float | None = None

    def status(self, now: float, offline_after_s: float) -> str:
        if now - self.last_ping > offline_after_s:
            return "offline"
        if self.unhealthy_since is not None:
            if now - self.unhealthy_since < UNHEALTHY_COOL_DOWN_S:
                return "unhealthy"
            self.unhealthy_since = None
            self.outcomes.clear()
        return "up"


class Invokers:
    """Health and memory permits of every invoker that has pinged this controller."""

    def __init__(self, controllers: int, offline_after_s: float) -> None:
        self.controllers = controllers
        self.offline_after_s = offline_after_s
        self._states: dict[int, InvokerState] = {}

    def on_ping(self, ping: PingMessage) -> None:
        """A ping; a disabled invoker (draining, or switched off by an operator) counts as offline."""
        age_s = time.time() - ping.timestamp / 1000 if ping.timestamp is not None else 0.0
        if age_s > self.offline_after_s:
            return
        now = time.monotonic() - max(age_s, 0.0) if ping.isEnabled else float("-inf")
        capacity = max(_megabytes(ping.name.userMemory) // self.controllers, 128)
        state = self._states.get(ping.name.instance)
        if state is None:
            if ping.isEnabled:
                self._states[ping.name.instance] = InvokerState(ping.name.instance, capacity, capacity, now)
            return
        state.last_ping = now
        if state.capacity_mb != capacity:  # restarted with another budget
            state.free_mb += capacity - state.capacity_mb
            state.capacity_mb = capacity

    def statuses(self) -> dict[int, str]:
        now = time.monotonic()
        return {i: s.status(now, self.offline_after_s) for i, s in sorted(self._states.items())}

    def usable(self) -> list[int]:
        return [i for i, status in self.statuses().items() if status == "up"]

    def choose(self, namespace: str, fq_action_name: str, memory_mb: int) -> int:
        """The home invoker, or the next with free memory; if none has, a random usable one (its
        queue absorbs the overload). Takes the memory; 503 when no invoker is usable."""
        usable = set(self.usable())
        if not usable:
            raise ServiceUnavailable()
        cluster = max(self._states) + 1
        for index in probe_order(namespace, fq_action_name, cluster):
            if index in usable and self._states[index].free_mb >= memory_mb:
                self._states[index].free_mb -= memory_mb
                return index
        index = random.choice(sorted(usable))
        self._states[index].free_mb -= memory_mb  # forced: may go below zero
        return index

    def release(self, index: int, memory_mb: int, system_error: bool | None) -> None:
        """An activation left ``index``: give its memory back and count its outcome (None: unknown)."""
        state = self._states.get(index)
        if state is None:
            return
        state.free_mb = min(state.capacity_mb, state.free_mb + memory_mb)
        if system_error is None:
            return
        state.outcomes.append(system_error)
        if sum(state.outcomes) > MAX_SYSTEM_ERRORS and state.unhealthy_since is None:
            state.unhealthy_since = time.monotonic()


def _megabytes(text: str) -> int:
    """``"2048 MB"`` → 2048 (the form OpenWhisk's pings carry)."""
    number, _, unit = text.strip().partition(" ")
    value = float(number or 0)
    return int(value * 1024 if unit.upper().startswith("G") else value)
