"""Read-your-writes for a blocking activation answered before its record is stored.

With ``result_before_record`` (distributed, by default) an invoker sends a blocking activation's record to its
controller in a ``ResultMessage`` ahead of storing it, and the ``CompletionMessage`` once the record is stored
(pywhisk/messages.py). The caller has its answer a few ms (plus ``couchdb_record_linger_ms``) before the store has
the record, so ``wsk action invoke --blocking`` followed at once by ``wsk activation get/logs/result`` would get a
404. ``RecentResults`` keeps each such record, in the controller that answered, until its completion says it is
stored; the activation routes fall back to it when the store has nothing (controller/routes/activations.py).

Only this controller's own answers are kept: a GET that reaches another controller (``--workers N``, several
controllers) still reads only the store (docs/deployment.md).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from pywhisk.activation import Activation

# A completion that never comes is the lost-activation path (controller/loadbalancer.py): by then the store holds
# the invoker's record or the controller's "lost" one. Far longer than any store write, far shorter than a record's
# useful life in memory.
DEFAULT_TTL_S = 30.0
# Normally an entry lives from the result to the completion (a few ms, plus the invokers' record linger): even at
# thousands of blocking invokes a second that is tens of entries. The bounds are for a store that stalls.
DEFAULT_MAX_ENTRIES = 10_000
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
# What a record costs in memory beyond its JSON: the model and its fields, and per log line a ``str`` object and
# its list slot (~57 bytes on CPython for an ASCII line, against the 3 of its JSON quotes and comma).
ENTRY_OVERHEAD_BYTES = 1024
LOG_LINE_OVERHEAD_BYTES = 64


def record_size(record: Activation, wire_bytes: int) -> int:
    """An estimate of the memory ``record`` holds, from the size of the message it came in."""
    return wire_bytes + ENTRY_OVERHEAD_BYTES + LOG_LINE_OVERHEAD_BYTES * len(record.logs)


class RecentResults:
    """Records answered to blocking callers and not yet known to be stored, by activation id, oldest first.

    ``keep`` on the ``ResultMessage``, ``discard`` on the ``CompletionMessage`` (or when the balancer gives the
    activation up as lost); ``get`` serves only the record's own namespace, as the store's read does. An entry
    expires ``ttl_s`` after it was kept; past ``max_entries`` or ``max_bytes`` the oldest go first, and a record
    over half of ``max_bytes`` is not kept at all. The records are shared with the blocking caller's answer and
    with every reader: read-only. ``clock`` is injectable for tests.
    """

    def __init__(
        self,
        ttl_s: float = DEFAULT_TTL_S,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        max_bytes: int = DEFAULT_MAX_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.bytes = 0
        self._clock = clock
        # id -> (record, size estimate, expiry): all kept with the same ttl, so insertion order is expiry order.
        self._entries: OrderedDict[str, tuple[Activation, int, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def keep(self, record: Activation, size_bytes: int) -> bool:
        """Keep ``record`` until its completion (or ``ttl_s``); False when it is too big to keep."""
        self.discard(record.activationId)
        now = self._clock()
        self._expire(now)
        if size_bytes > self.max_bytes // 2 or self.max_entries < 1:
            return False
        while self._entries and (len(self._entries) >= self.max_entries or self.bytes + size_bytes > self.max_bytes):
            _, (_, evicted, _) = self._entries.popitem(last=False)
            self.bytes -= evicted
        self._entries[record.activationId] = (record, size_bytes, now + self.ttl_s)
        self.bytes += size_bytes
        return True

    def get(self, namespace: str, activation_id: str) -> Activation | None:
        """The kept record ``activation_id`` if it is of ``namespace`` and not expired; else None (a record of
        another namespace is as absent as in the store)."""
        entry = self._entries.get(activation_id)
        if entry is None:
            return None
        if entry[2] <= self._clock():
            self.discard(activation_id)
            return None
        return entry[0] if entry[0].namespace == namespace else None

    def discard(self, activation_id: str) -> None:
        """Forget ``activation_id``: its record is in the store now (or it never will be from here)."""
        entry = self._entries.pop(activation_id, None)
        if entry is not None:
            self.bytes -= entry[1]

    def _expire(self, now: float) -> None:
        while self._entries:
            activation_id, (_, size, expiry) = next(iter(self._entries.items()))
            if expiry > now:
                return
            del self._entries[activation_id]
            self.bytes -= size
