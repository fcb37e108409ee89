"""Namespace throttles: invocations and trigger fires per minute, concurrent invocations (reference/openwhisk.md §5.6).

As OpenWhisk's ``RateThrottler`` and ``ActivationThrottler`` ([OW] entitlement/*.scala), each controller
keeps its own books and enforces its share of a namespace's limit: the limit, dilated by 20 % when there
is more than one controller (OpenWhisk's overcommit for uneven request spreading), divided by the number of
controllers (``PYWHISK_CONTROLLERS``, OpenWhisk's ``controller.clusterSize``), and at least 1 unless the limit
is 0. Workers of ``--workers N`` count as controllers: in distributed mode the launcher folds them into
``controllers``; a standalone worker is a controller (with an invoker of its own) of ``workers`` of them.
A namespace without limits of its own gets the system defaults (``PYWHISK_INVOCATIONS_PER_MINUTE``,
``PYWHISK_CONCURRENT_INVOCATIONS``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Protocol

from pywhisk.errors import TooManyRequests
from pywhisk.identity import Identity
from pywhisk.settings import Settings

# [OW] common/scala/.../http/ErrorResponse.scala Messages.tooManyRequests / tooManyConcurrentRequests.
TOO_MANY_REQUESTS = "Too many requests in the last minute (count: {count}, allowed: {allowed})."
TOO_MANY_CONCURRENT_REQUESTS = "Too many concurrent requests in flight (count: {count}, allowed: {allowed})."
_MAX_TRACKED_NAMESPACES = 10_000


class ActiveActivations(Protocol):
    """The load balancer's books: activations accepted and not yet completed, per namespace."""

    def active_activations(self, namespace: str) -> int: ...


def controller_share(limit: int, controllers: int) -> int:
    """The part of a namespace's limit one controller enforces ([OW] Entitlement ``calculateIndividualLimit``)."""
    if controllers <= 1:
        return limit
    dilated = math.ceil(limit * 1.2)
    return 0 if dilated == 0 else max(dilated // controllers, 1)


class Throttles:
    """Checks an invoke against its namespace's throttles; raises ``TooManyRequests`` (429) when over."""

    def __init__(
        self,
        settings: Settings,
        books: ActiveActivations,
        clock: Callable[[], float] = time.time,
        *,
        on_throttle: Callable[[str, str], None] = lambda reason, namespace: None,
    ) -> None:
        self._on_throttle = on_throttle  # (limit, namespace) of every 429: the metrics (pywhisk/metrics.py)
        self._default_per_minute = settings.invocations_per_minute
        self._default_concurrent = settings.concurrent_invocations
        self._controllers = settings.controllers * settings.workers
        self._books = books
        self._clock = clock
        self._default_fires_per_minute = settings.fires_per_minute
        self._minutes: dict[str, tuple[int, int]] = {}  # namespace → (calendar minute, invokes in it)
        self._fire_minutes: dict[str, tuple[int, int]] = {}  # the same books for trigger fires

    def check_rate(self, identity: Identity) -> None:
        """Count this invoke in the namespace's current calendar minute; over the limit → 429.

        Like OpenWhisk, a refused invoke still counts, and windows are fixed minutes (epoch ms / 60000).
        """
        namespace, allowed = identity.namespace.name, self.invocations_per_minute(identity)
        self._count_in_minute(self._minutes, namespace, allowed, "invocationsPerMinute")

    def check_fires(self, identity: Identity) -> None:
        """Count this trigger fire in the namespace's current calendar minute; over ``firesPerMinute`` → 429.

        OpenWhisk's ``triggerRateThrottler``: a ``RateThrottler`` like the invokes' (the same message), with
        books of its own, so fires and invokes never eat each other's allowance.
        """
        namespace, allowed = identity.namespace.name, self.fires_per_minute(identity)
        self._count_in_minute(self._fire_minutes, namespace, allowed, "firesPerMinute")

    def _count_in_minute(self, books: dict[str, tuple[int, int]], namespace: str, allowed: int, limit: str) -> None:
        minute = int(self._clock() * 1000) // 60_000
        seen_minute, count = books.get(namespace, (minute, 0))
        count = count + 1 if seen_minute == minute else 1
        if len(books) >= _MAX_TRACKED_NAMESPACES and namespace not in books:
            stale = [ns for ns, entry in books.items() if entry[0] != minute]
            for ns in stale:
                del books[ns]
        books[namespace] = (minute, count)
        if count > allowed:
            self._on_throttle(limit, namespace)
            raise TooManyRequests(TOO_MANY_REQUESTS.format(count=count, allowed=allowed))

    def check_concurrent(self, identity: Identity) -> None:
        """Room for one more activation of the namespace in this controller's books, or 429.

        Call it right before publishing, with no ``await`` in between, so the check and the booking
        are one step on the event loop and a burst cannot overshoot the limit.
        """
        count = self._books.active_activations(identity.namespace.name)
        allowed = self.concurrent_invocations(identity)
        if count >= allowed:
            self._on_throttle("concurrentInvocations", identity.namespace.name)
            raise TooManyRequests(TOO_MANY_CONCURRENT_REQUESTS.format(count=count, allowed=allowed))

    def invocations_per_minute(self, identity: Identity) -> int:
        """This controller's share of the namespace's invocations per minute."""
        limit = identity.limits.invocationsPerMinute
        return controller_share(self._default_per_minute if limit is None else limit, self._controllers)

    def fires_per_minute(self, identity: Identity) -> int:
        """This controller's share of the namespace's trigger fires per minute."""
        limit = identity.limits.firesPerMinute
        return controller_share(self._default_fires_per_minute if limit is None else limit, self._controllers)

    def concurrent_invocations(self, identity: Identity) -> int:
        """This controller's share of the namespace's concurrent invocations."""
        limit = identity.limits.concurrentInvocations
        return controller_share(self._default_concurrent if limit is None else limit, self._controllers)
