"""The controller's view of the invokers: health from pings and outcomes, memory permits.

Follows OpenWhisk's InvokerSupervision and ShardingContainerPoolBalancer (reference/openwhisk.md
§5.3-5.4): an invoker is offline after 10 s without a ping, unhealthy after more than 3 system
errors among its last 10 activations, and usable only when neither. Each controller owns
``user_memory / controllers`` MB of every invoker (at least 128) and takes an action's memory from
it while the activation is in flight.

Health is about the invoker, not the workload. Only whisk errors count (the invoker records a
missing image, a deleted action, a bad ``exec`` or a crash as the action's fault: invoker/proxy.py),
but some whisk errors can still be one tenant's doing (a bug its input reaches, its activations lost
past the forced timeout), and OpenWhisk's rule would then let four of them a window cut every
namespace off the invoker. So each system error is attributed to the namespace whose activation it
ended, and:

- **A namespace is quarantined**, alone, from an invoker on which more than 3 of its own last 10
  outcomes were system errors: for the cool-down its work goes to the next invoker of its probe
  order, or is refused with 503 when there is none, until then or its own next good outcome. Its
  errors cost it, and no one else.
- **The invoker is unhealthy for everyone** only when more than 3 of its last 10 outcomes are system
  errors, those come from at least 2 namespaces, and no activation of any namespace has ended on it
  without one for ``PROOF_OF_LIFE_S``. An activation that ended well is proof that the invoker works
  (OpenWhisk keeps a healthy invoker healthy on a success and probes an unhealthy one with a test
  action; here any namespace's good outcome is the probe), and it ends an unhealthy spell at once.

Worked example, one invoker: namespace A spams an action that ends in whisk errors while B invokes
hello. After A's 4th error A is quarantined (A gets 503 for 10 s); B's hellos keep succeeding, so
the invoker never turns unhealthy. If instead the invoker's store goes away, A's and B's activations
both fail, nothing succeeds, and after 4 errors from the two of them the invoker is unhealthy for all,
as in OpenWhisk.

Caveats. An attacker holding two namespaces can make an invoker unhealthy only while no one else's
activation ends well on it, that is while no one else uses it; an idle namespace's first invokes in
the following cool-down are then answered 503 (or go to another invoker). OpenWhisk's dedicated test
action would close that gap; it needs a system action every invoker can run, which pywhisk does not
have yet. An invoker that is half broken (dockerd gone, Wasmtime fine) stays up while its WASM
activations succeed; each namespace whose Docker actions fail there is quarantined on its own.
"""

from __future__ import annotations

import functools
import math
import random
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from pywhisk.errors import ServiceUnavailable
from pywhisk.messages import PingMessage

OUTCOME_WINDOW = 10
MAX_SYSTEM_ERRORS = 3
# OpenWhisk probes an unhealthy invoker with a test action; here it gets work again after this
# cool-down (or at its first good outcome), with a clean record. A quarantined namespace likewise.
UNHEALTHY_COOL_DOWN_S = 10.0
# System errors from fewer namespaces than this never make an invoker unhealthy for everyone.
MIN_NAMESPACES_AT_FAULT = 2
# ... nor while an activation has ended on it without one in this long.
PROOF_OF_LIFE_S = 10.0
# Namespaces whose recent system errors each invoker remembers (the least recent forgotten first),
# which bounds what a flood of namespaces costs the controller.
TRACKED_NAMESPACES = 1024


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


# Remembered per action: two Java string hashes char by char and the coprime steps cost ~10 µs per invoke,
# ~1 % of a controller's CPU for it (issue 15). Bounded; a flood of names only evicts.
@functools.lru_cache(maxsize=4096)
def probe_order(namespace: str, fq_action_name: str, invokers: int) -> tuple[int, ...]:
    """Invoker indices in the order the balancer tries them for this action."""
    hashed = abs(java_string_hash(namespace) ^ java_string_hash(fq_action_name))
    home = hashed % invokers
    steps = coprime_steps(invokers)
    step = steps[hashed % len(steps)]
    return tuple((home + i * step) % invokers for i in range(invokers))


@dataclass
class InvokerState:
    """What one controller knows about one invoker."""

    id: int
    capacity_mb: int
    free_mb: int
    last_ping: float
    # The last outcomes: None for one without a system error, else the namespace it is attributed to.
    outcomes: deque[str | None] = field(default_factory=lambda: deque(maxlen=OUTCOME_WINDOW))
    unhealthy_since: float | None = None
    last_good: float = float("-inf")
    # Per namespace that had a system error here: its last outcomes (True: a system error).
    by_namespace: OrderedDict[str, deque[bool]] = field(default_factory=OrderedDict)
    quarantined: dict[str, float] = field(default_factory=dict)

    def status(self, now: float, offline_after_s: float) -> str:
        if now - self.last_ping > offline_after_s:
            return "offline"
        if self.unhealthy_since is not None:
            if now - self.unhealthy_since < UNHEALTHY_COOL_DOWN_S:
                return "unhealthy"
            self.unhealthy_since = None
            self.outcomes.clear()
        return "up"

    def serves(self, namespace: str, now: float) -> bool:
        """False while ``namespace`` is quarantined from this invoker by its own system errors."""
        since = self.quarantined.get(namespace)
        if since is None:
            return True
        if now - since < UNHEALTHY_COOL_DOWN_S:
            return False
        del self.quarantined[namespace]
        self.by_namespace.pop(namespace, None)
        return True

    def record(self, namespace: str, system_error: bool, now: float) -> None:
        """Count an activation's outcome; see the module docstring for what it decides."""
        if not system_error:
            self.outcomes.append(None)
            self.last_good = now
            if self.unhealthy_since is not None:  # it works after all: back at once, with a clean record
                self.unhealthy_since = None
                self.outcomes.clear()
            window = self.by_namespace.get(namespace)
            if window is not None:
                window.append(False)
            self.quarantined.pop(namespace, None)  # the namespace's own proof of life, likewise
            return
        self.outcomes.append(namespace)
        window = self.by_namespace.setdefault(namespace, deque(maxlen=OUTCOME_WINDOW))
        self.by_namespace.move_to_end(namespace)
        window.append(True)
        while len(self.by_namespace) > TRACKED_NAMESPACES:
            forgotten, _ = self.by_namespace.popitem(last=False)
            self.quarantined.pop(forgotten, None)
        if sum(window) > MAX_SYSTEM_ERRORS:  # (again): the cool-down counts from its last error
            self.quarantined[namespace] = now
        errors = [ns for ns in self.outcomes if ns is not None]
        if (
            self.unhealthy_since is None
            and len(errors) > MAX_SYSTEM_ERRORS
            and len(set(errors)) >= MIN_NAMESPACES_AT_FAULT
            and now - self.last_good > PROOF_OF_LIFE_S
        ):
            self.unhealthy_since = now


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
        queue absorbs the overload). Takes the memory; 503 when no invoker is usable by ``namespace``."""
        now = time.monotonic()
        usable = {i for i in self.usable() if self._states[i].serves(namespace, now)}
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

    def give_back(self, index: int, memory_mb: int) -> None:
        """An activation's run on ``index`` ended: its memory is free there again."""
        state = self._states.get(index)
        if state is not None:
            state.free_mb = min(state.capacity_mb, state.free_mb + memory_mb)

    def release(self, index: int, memory_mb: int, system_error: bool | None, *, namespace: str) -> None:
        """An activation of ``namespace`` left ``index``: give back what is left of its memory and count its
        outcome (None: unknown, e.g. it was never sent)."""
        self.give_back(index, memory_mb)
        state = self._states.get(index)
        if state is None:
            return
        if system_error is not None:
            state.record(namespace, system_error, time.monotonic())


def _megabytes(text: str) -> int:
    """``"2048 MB"`` → 2048 (the form OpenWhisk's pings carry)."""
    number, _, unit = text.strip().partition(" ")
    value = float(number or 0)
    return int(value * 1024 if unit.upper().startswith("G") else value)
