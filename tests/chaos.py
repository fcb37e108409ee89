"""Chaos tooling for the distributed tests: steady non-blocking load, and the exactly-once audit.

``Load`` keeps ``connections`` clients posting non-blocking invokes from a thread of its own (its own
event loop), so the test thread is free to break things meanwhile. Every answer is classified:

- *accepted*: the controller gave an activation id (202, or 200 with a record), so a record is owed;
- *refused*: an HTTP error status (503 while the broker or the store is away), nothing was accepted;
- *unanswered*: the request failed without an answer (timeout, reset), so its fate is unknown
  (counted by exception name).

``audit`` then lists the activation records straight from CouchDB and compares them with the ids
accepted: every accepted id must be there exactly once.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx

from launcher.testing import GUEST_AUTH
from loadgen.client import KEEPALIVE_EXPIRY_S
from loadgen.transport import LendingTransport
from pywhisk.activation import StatusCode


@dataclass
class Load:
    """Non-blocking invokes of ``actions`` (round robin) until ``target`` are accepted or ``stop()``."""

    apihost: str
    actions: list[str]
    connections: int = 16
    target: int | None = None
    accepted: list[str] = field(default_factory=list)
    refused: Counter[int] = field(default_factory=Counter)
    unanswered: Counter[str] = field(default_factory=Counter)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _error: BaseException | None = None
    _started: float = 0.0
    _ended: float = 0.0

    def start(self) -> Load:
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="chaos-load", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.join()

    def join(self, timeout_s: float | None = None) -> None:
        assert self._thread is not None
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            raise AssertionError(f"the load did not finish within {timeout_s} s ({len(self.accepted)} accepted)")
        if self._error is not None:
            raise self._error

    def wait_accepted(self, count: int, timeout_s: float) -> None:
        """Block until ``count`` activations have been accepted in all."""
        deadline = time.monotonic() + timeout_s
        while len(self.accepted) < count:
            if self._error is not None:
                raise self._error
            if time.monotonic() > deadline:
                raise AssertionError(f"only {len(self.accepted)} of {count} accepted after {timeout_s} s")
            time.sleep(0.05)

    @property
    def done(self) -> bool:
        return self._stop.is_set()

    @property
    def elapsed_s(self) -> float:
        return (self._ended or time.monotonic()) - self._started

    # the load thread ------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            asyncio.run(self._load())
        except BaseException as exc:  # surfaced by join()
            self._error = exc
        finally:
            self._ended = time.monotonic()
            self._stop.set()

    async def _load(self) -> None:
        uuid, key = GUEST_AUTH.split(":")
        # One connection lent per request in O(1): httpx's own pool of 24 cost the load ~4 ms of CPU per request
        # and held the soak to ~125 accepted/s. Idle connections are given up before the server's keep-alive
        # timeout closes them (loadgen/client.py).
        transport = LendingTransport(self.connections, keepalive_expiry=KEEPALIVE_EXPIRY_S)
        async with httpx.AsyncClient(
            base_url=f"{self.apihost}/api/v1", auth=(uuid, key), timeout=30, transport=transport
        ) as client:
            await asyncio.gather(*(self._worker(client, n) for n in range(self.connections)))

    async def _worker(self, client: httpx.AsyncClient, n: int) -> None:
        sent = n
        while not self._stop.is_set():
            if self.target is not None and len(self.accepted) >= self.target:
                self._stop.set()
                return
            name = self.actions[sent % len(self.actions)]
            sent += self.connections
            try:
                response = await client.post(f"/namespaces/_/actions/{name}", json={"name": str(sent)})
            except httpx.HTTPError as exc:
                self.unanswered[type(exc).__name__] += 1
                await asyncio.sleep(0.1)
                continue
            if response.status_code in (200, 202):
                self.accepted.append(response.json()["activationId"])
            else:
                self.refused[response.status_code] += 1
                await asyncio.sleep(0.05)  # refused: the platform is recovering; do not spin


@dataclass
class Audit:
    """How the records in the activations database compare with the accepted ids."""

    accepted: int
    recorded: int
    missing: list[str]
    duplicates: list[str]
    extra: list[str]
    statuses: Counter[str]

    @property
    def exactly_once(self) -> bool:
        return not self.missing and not self.duplicates


@dataclass
class Record:
    doc_id: str
    activation_id: str
    status: str


def recorded_activations(couchdb_url: str, db_prefix: str, namespace: str = "guest") -> list[Record]:
    """Every activation record of ``namespace``, read page by page from CouchDB itself."""
    records: list[Record] = []
    page = 5000
    start: str | None = f"{namespace}/"
    with httpx.Client(base_url=couchdb_url, timeout=120) as couch:
        while start is not None:
            params = {
                "include_docs": "true",
                "limit": str(page + 1),
                "startkey": f'"{start}"',
                "endkey": f'"{namespace}/\ufff0"',
            }
            rows = couch.get(f"/{db_prefix}activations/_all_docs", params=params).raise_for_status().json()["rows"]
            start = rows[page]["id"] if len(rows) > page else None
            for row in rows[:page]:
                doc = row["doc"]
                status = StatusCode(doc["response"]["statusCode"]).text
                records.append(Record(row["id"], doc["activationId"], status))
    return records


def audit(couchdb_url: str, db_prefix: str, accepted: list[str]) -> Audit:
    """Compare the records stored for the guest namespace with the ids the controller accepted."""
    records = recorded_activations(couchdb_url, db_prefix)
    by_activation = Counter(record.activation_id for record in records)
    accepted_set = set(accepted)
    assert len(accepted_set) == len(accepted), "the controller handed out an activation id twice"
    return Audit(
        accepted=len(accepted),
        recorded=sum(1 for activation_id in by_activation if activation_id in accepted_set),
        missing=sorted(accepted_set - set(by_activation)),
        duplicates=sorted(a for a, n in by_activation.items() if n > 1),
        extra=sorted(set(by_activation) - accepted_set),
        statuses=Counter(record.status for record in records),
    )


def wait_until_recorded(couchdb_url: str, db_prefix: str, accepted: list[str], timeout_s: float) -> Audit:
    """Audit until nothing accepted is missing any more, or the time is up (then the last audit)."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = audit(couchdb_url, db_prefix, accepted)
        if not result.missing or time.monotonic() > deadline:
            return result
        time.sleep(2)
