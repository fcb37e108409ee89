"""CouchDB store for distributed mode, over CouchDB's HTTP API (CouchDB 3, or pouchdb-server in tests).

Three databases as in OpenWhisk: ``{prefix}subjects`` (subjects by name, ``{ns}/limits``), ``{prefix}whisks`` (entities,
id ``{namespace}/{name}``) and ``{prefix}activations`` (id ``{namespace}/{activationId}``). Listing and
counting use JavaScript map views with the built-in ``_count`` reduce rather than Mango ``_find``: views
give newest-first order (``descending=true``), ``skip``/``limit`` and exact counts in one indexed query on
both CouchDB 3 and pouchdb-server, while Mango has no count, needs a matching index for every sort, and
pouchdb-server's ``_find`` sorts in memory. OpenWhisk itself lists through views for the same reasons.

Activation records are written by a group-commit writer like the SQLite store's: every record waiting
when the previous ``_bulk_docs`` request returns goes into the next one (no linger timer), so an idle
system writes each record at once and a busy one amortises the round trip over hundreds of records.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from pywhisk.activation import Activation
from pywhisk.entities import Action
from pywhisk.errors import ConcurrentModification, Conflict, StoreUnavailable
from pywhisk.identity import NamespaceLimits, Subject
from pywhisk.lifecycle import every
from pywhisk.store import ActivationQuery, purge_expired_activations

log = logging.getLogger(__name__)

__all__ = ["CouchDBError", "CouchDBUnavailable", "CouchStore"]

_ACTION = "action"
_ACTIVATION = "activation"
# One request must not carry an unbounded body: records hold up to 1 MB of result and 10 MB of logs, and
# CouchDB 3 caps one document at 8 MB (max_document_size) but a request only at 4 GiB.
_MAX_BATCH_BYTES = 16 * 1024 * 1024
# CouchDB's database-name rule; the prefix is the only part of our names a user chooses.
_DB_PREFIX = re.compile(r"\A[a-z][a-z0-9_$()+/-]*\Z")
# Optimistic-concurrency retries for writes without a caller-supplied revision (identities, deletes).
_RETRIES = 5

# Design documents. Views are built per design document in CouchDB, so retention's view lives apart:
# a deployment without retention never pays for its index.
_DESIGN: dict[str, dict[str, dict[str, dict[str, str]]]] = {
    "subjects": {
        # Subject documents are OpenWhisk's shape, {_id: subject, subject, namespaces: [{name, uuid, ...}]},
        # with the key replaced by its hash; `{namespace}/limits` documents have no `namespaces`.
        "subjects": {
            "by_uuid": {
                "map": "function (doc) { if (Array.isArray(doc.namespaces)) { for (var i = 0; i < "
                "doc.namespaces.length; i++) { emit(doc.namespaces[i].uuid, null); } } }",
            },
        },
    },
    "whisks": {
        "whisks": {
            # OpenWhisk's entity documents carry ``entityType`` too; listing is by namespace, type, updated.
            "by_type_updated": {
                "map": "function (doc) { if (doc.entityType && doc.namespace !== undefined) "
                "{ emit([doc.namespace, doc.entityType, doc.updated], null); } }",
                "reduce": "_count",
            },
        },
    },
    "activations": {
        "activations": {
            "by_namespace_start": {
                "map": "function (doc) { if (doc.entityType === 'activation') "
                "{ emit([doc.namespace, doc.start], null); } }",
                "reduce": "_count",
            },
            "by_name_start": {
                "map": "function (doc) { if (doc.entityType === 'activation') "
                "{ emit([doc.namespace, doc.name, doc.start], null); } }",
                "reduce": "_count",
            },
        },
        "retention": {
            # The value is the revision, so a purge can delete without fetching the (large) records.
            "by_start": {
                "map": "function (doc) { if (doc.entityType === 'activation') { emit(doc.start, doc._rev); } }",
            },
        },
    },
}


class CouchDBError(Exception):
    """CouchDB answered with an error: the HTTP status and CouchDB's ``error``/``reason``."""

    def __init__(self, message: str, status: int | None = None, error: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error = error


class CouchDBUnavailable(CouchDBError, StoreUnavailable):
    """CouchDB could not be reached (refused, unresolvable, or timed out) or answered 5xx."""


@dataclass
class _PendingActivation:
    doc_id: str
    body: bytes
    done: asyncio.Future[None]


class CouchStore:
    """A ``Store`` in three CouchDB databases, over one keep-alive HTTP client.

    ``username``/``password`` (or user info in ``url``) are sent as HTTP Basic auth: CouchDB 3 needs a
    server admin to create databases and design documents. ``retention_days`` starts a background task
    that deletes older activation records every ``retention_interval_s``.
    """

    def __init__(
        self,
        url: str,
        username: str | None = None,
        password: str | None = None,
        db_prefix: str = "pywhisk_",
        activation_batch_size: int = 500,
        retention_days: float | None = None,
        *,
        timeout_s: float = 60.0,
        connect_timeout_s: float = 5.0,
        retention_interval_s: float = 3600.0,
    ) -> None:
        if not _DB_PREFIX.match(db_prefix):
            raise ValueError(f"db_prefix {db_prefix!r} is not a CouchDB database name (lowercase, a-z first)")
        if activation_batch_size < 1:
            raise ValueError("activation_batch_size must be at least 1")
        parsed = httpx.URL(url)
        if username is None and parsed.username:
            username, password = parsed.username, parsed.password
        # Never keep the password in the URL: it would show in every error message.
        self._url = str(parsed.copy_with(username=None, password=None)).rstrip("/")
        self._subjects = f"{db_prefix}subjects"
        self._whisks = f"{db_prefix}whisks"
        self._activations = f"{db_prefix}activations"
        self._batch_size = activation_batch_size
        self._retention_ms = None if retention_days is None else int(retention_days * 86_400_000)
        self._retention_interval_s = retention_interval_s
        self._client = httpx.AsyncClient(
            base_url=self._url,
            auth=httpx.BasicAuth(username, password or "") if username else None,
            # The read timeout is generous because the first query after many writes builds the view index.
            timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
            headers={"Accept": "application/json"},
        )
        self._pending: list[_PendingActivation] = []
        self._writer: asyncio.Task[None] | None = None
        self._retention: asyncio.Task[None] | None = None
        self.activation_batches = 0
        """How many ``_bulk_docs`` requests have carried activation records (batching is observable)."""

    @property
    def databases(self) -> tuple[str, str, str]:
        """The names of the subjects, whisks and activations databases."""
        return self._subjects, self._whisks, self._activations

    # lifecycle ------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Create the databases and design documents if missing; start retention if configured."""
        for db in self.databases:
            status, body = await self._request("PUT", f"/{db}")
            # 412 (CouchDB, pouchdb-server) or 409: it exists already, which is what a restart sees.
            if status not in (201, 202, 409, 412):
                raise self._error(status, body, f"could not create database {db}")
        for db_kind, designs in _DESIGN.items():
            db = {"subjects": self._subjects, "whisks": self._whisks}.get(db_kind, self._activations)
            for name, views in designs.items():
                await self._ensure_design(db, name, views)
        if (retention_ms := self._retention_ms) is not None and self._retention is None:
            self._retention = asyncio.get_running_loop().create_task(
                every(
                    self._retention_interval_s,
                    lambda: purge_expired_activations(self, retention_ms, log),
                    "retention: purging old activation records",
                    log,
                    at_once=True,
                    expected=(CouchDBError,),
                ),
                name="couchdb-activation-retention",
            )

    async def close(self) -> None:
        """Write the activation records still pending, stop retention and close the HTTP client."""
        if self._writer is not None:
            await self._writer
        if self._retention is not None:
            self._retention.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retention
            self._retention = None
        await self._client.aclose()

    async def _ensure_design(self, db: str, name: str, views: dict[str, dict[str, str]]) -> None:
        path = f"/{db}/_design/{name}"
        for _ in range(_RETRIES):
            status, current = await self._request("GET", path)
            if status == 200 and current.get("views") == views and current.get("language") == "javascript":
                return
            if status not in (200, 404):
                raise self._error(status, current, f"could not read design document {db}/_design/{name}")
            doc: dict[str, Any] = {"_id": f"_design/{name}", "language": "javascript", "views": views}
            if status == 200:
                doc["_rev"] = current["_rev"]  # an older pywhisk's views: replace them
            status, body = await self._request("PUT", path, json=doc)
            if status in (201, 202):
                return
            if status != 409:  # 409: another process wrote it at the same moment; look again
                raise self._error(status, body, f"could not write design document {db}/_design/{name}")
        raise CouchDBError(f"design document {db}/_design/{name} keeps changing under us", 409, "conflict")

    # subjects -------------------------------------------------------------------------------------

    async def get_subject(self, subject: str) -> Subject | None:
        """The subject document by its name (its ``_id``), or None."""
        doc = await self._get_doc(self._subjects, subject)
        return Subject.model_validate(doc) if doc is not None and "namespaces" in doc else None

    async def get_subject_by_uuid(self, uuid: str) -> Subject | None:
        """The subject holding the key with this uuid, through the ``by_uuid`` view."""
        params = {"key": _json(uuid), "include_docs": "true", "limit": "1"}
        status, body = await self._request("GET", f"/{self._subjects}/_design/subjects/_view/by_uuid", params=params)
        if status != 200:
            raise self._error(status, body, "could not look up a key")
        rows = [row for row in body["rows"] if row.get("doc")]
        return Subject.model_validate(rows[0]["doc"]) if rows else None

    async def put_subject(self, subject: Subject) -> None:
        """Create or replace the subject document (whatever revision is current)."""
        for ns in subject.namespaces:
            owner = await self.get_subject_by_uuid(ns.uuid)
            if owner is not None and owner.subject != subject.subject:
                raise Conflict()
        doc: dict[str, Any] = {**subject.model_dump(mode="json"), "_id": subject.subject}
        await self._put_replacing(self._subjects, subject.subject, doc)

    async def delete_subject(self, subject: str) -> Subject | None:
        """Remove and return the subject document, or None."""
        doc = await self._delete_current(self._subjects, subject, lambda d: "namespaces" in d)
        return Subject.model_validate(doc) if doc is not None else None

    async def list_subjects(self, namespace: str | None = None) -> list[Subject]:
        """Every subject document (the subjects database is small: one document per user)."""
        status, body = await self._request("GET", f"/{self._subjects}/_all_docs", params={"include_docs": "true"})
        if status != 200:
            raise self._error(status, body, "could not list subjects")
        subjects = [
            Subject.model_validate(row["doc"])
            for row in body["rows"]
            if isinstance(row.get("doc"), dict) and isinstance(row["doc"].get("namespaces"), list)
        ]
        if namespace is not None:
            subjects = [s for s in subjects if s.namespace_named(namespace) is not None]
        return sorted(subjects, key=lambda s: s.subject)

    async def get_limits(self, namespace: str) -> NamespaceLimits | None:
        """OpenWhisk's ``{namespace}/limits`` document in the subjects database, or None."""
        doc = await self._get_doc(self._subjects, f"{namespace}/limits")
        return NamespaceLimits.model_validate(doc) if doc is not None else None

    async def put_limits(self, namespace: str, limits: NamespaceLimits) -> None:
        """Create or replace the namespace's limits document."""
        doc_id = f"{namespace}/limits"
        await self._put_replacing(self._subjects, doc_id, {**limits.model_dump(exclude_none=True), "_id": doc_id})

    async def delete_limits(self, namespace: str) -> bool:
        """Drop the namespace's limits document; False if there was none."""
        return await self._delete_current(self._subjects, f"{namespace}/limits", lambda d: True) is not None

    async def _put_replacing(self, db: str, doc_id: str, doc: dict[str, Any]) -> None:
        for _ in range(_RETRIES):
            status, body = await self._request("PUT", self._doc_path(db, doc_id), json=doc)
            if status in (201, 202):
                return
            if status != 409:
                raise self._error(status, body, f"could not store {db}/{doc_id}")
            current = await self._get_doc(db, doc_id)  # replace whatever revision is there now
            if current is None:
                doc.pop("_rev", None)
            else:
                doc["_rev"] = current["_rev"]
        raise ConcurrentModification()

    async def _delete_current(
        self, db: str, doc_id: str, wanted: Callable[[dict[str, Any]], bool]
    ) -> dict[str, Any] | None:
        for _ in range(_RETRIES):
            doc = await self._get_doc(db, doc_id)
            if doc is None or not wanted(doc):
                return None
            status, body = await self._request("DELETE", self._doc_path(db, doc_id), params={"rev": doc["_rev"]})
            if status in (200, 202):
                return doc
            if status not in (404, 409):  # changed or deleted under us: look again
                raise self._error(status, body, f"could not delete {db}/{doc_id}")
        raise ConcurrentModification()

    # actions --------------------------------------------------------------------------------------

    async def get_action(self, namespace: str, name: str) -> Action | None:
        """The action, with its ``rev`` (CouchDB's ``_rev``), or None."""
        doc = await self._get_doc(self._whisks, f"{namespace}/{name}")
        return _action(doc) if doc is not None and doc.get("entityType") == _ACTION else None

    async def put_action(self, action: Action, expected_rev: str | None) -> Action:
        """Create (``expected_rev=None``) or replace that revision; CouchDB's 409 becomes our 409s."""
        doc_id = f"{action.namespace}/{action.name}"
        doc: dict[str, Any] = {**action.model_dump(mode="json"), "_id": doc_id, "entityType": _ACTION}
        if expected_rev is not None:
            doc["_rev"] = expected_rev
        status, body = await self._request("PUT", self._doc_path(self._whisks, doc_id), json=doc)
        if status in (201, 202):
            return action.model_copy(update={"rev": body["rev"]})
        if status == 409 and expected_rev is None:
            raise Conflict()
        # 409 with a revision: it moved on or was deleted. pouchdb-server may say 404 for a revision it
        # never had where CouchDB says 409; both mean the caller's copy is stale.
        if expected_rev is not None and status in (404, 409):
            raise ConcurrentModification()
        raise self._error(status, body, f"could not store action {doc_id}")

    async def delete_action(self, namespace: str, name: str) -> Action | None:
        """Remove and return the action, or None; deletes whatever revision is current."""
        doc_id = f"{namespace}/{name}"
        for _ in range(_RETRIES):
            doc = await self._get_doc(self._whisks, doc_id)
            if doc is None or doc.get("entityType") != _ACTION:
                return None
            path = self._doc_path(self._whisks, doc_id)
            status, body = await self._request("DELETE", path, params={"rev": doc["_rev"]})
            if status in (200, 202):
                return _action(doc)
            # Changed or deleted between our read and the delete (CouchDB 409, pouchdb-server 404): re-read.
            if status not in (404, 409):
                raise self._error(status, body, f"could not delete action {doc_id}")
        raise ConcurrentModification()

    async def list_actions(self, namespace: str, limit: int, skip: int) -> list[Action]:
        """Actions of a namespace, most recently updated first."""
        if limit <= 0:
            return []
        rows = await self._view_rows(
            self._whisks,
            "whisks",
            "by_type_updated",
            low=[namespace, _ACTION],
            high=[namespace, _ACTION, {}],
            limit=limit,
            skip=skip,
        )
        return [_action(row["doc"]) for row in rows if row.get("doc")]

    async def count_actions(self, namespace: str) -> int:
        """How many actions the namespace holds."""
        return await self._view_count(
            self._whisks, "whisks", "by_type_updated", low=[namespace, _ACTION], high=[namespace, _ACTION, {}]
        )

    # activations ----------------------------------------------------------------------------------

    async def put_activation(self, activation: Activation) -> None:
        """Store a record; a second put of the same id is ignored. Concurrent puts share one request."""
        doc_id = f"{activation.namespace}/{activation.activationId}"
        doc = {**activation.model_dump(mode="json"), "_id": doc_id, "entityType": _ACTIVATION}
        # Serialised here, by each caller, so the writer only joins bytes.
        pending = _PendingActivation(doc_id, orjson.dumps(doc), asyncio.get_running_loop().create_future())
        self._pending.append(pending)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(
                self._write_activations(), name="couchdb-activation-writer"
            )
        await pending.done

    async def get_activation(self, namespace: str, activation_id: str) -> Activation | None:
        """One record of the namespace."""
        doc = await self._get_doc(self._activations, f"{namespace}/{activation_id}")
        return Activation.model_validate(doc) if doc is not None and doc.get("entityType") == _ACTIVATION else None

    async def list_activations(self, query: ActivationQuery) -> list[Activation]:
        """Records matching the query, newest ``start`` first."""
        view, low, high = _activation_range(query)
        if query.limit <= 0 or low is None or high is None:
            return []
        rows = await self._view_rows(
            self._activations, "activations", view, low=low, high=high, limit=query.limit, skip=query.skip
        )
        return [Activation.model_validate(row["doc"]) for row in rows if row.get("doc")]

    async def count_activations(self, query: ActivationQuery) -> int:
        """How many records match (ignoring limit and skip)."""
        view, low, high = _activation_range(query)
        if low is None or high is None:
            return 0
        return await self._view_count(self._activations, "activations", view, low=low, high=high)

    async def purge_activations_older_than(self, cutoff_ms: int) -> int:
        """Delete every activation record whose ``start`` is before ``cutoff_ms``; returns how many."""
        purged = 0
        while True:
            status, body = await self._request(
                "GET",
                f"/{self._activations}/_design/retention/_view/by_start",
                params={"endkey": str(int(cutoff_ms)), "inclusive_end": "false", "limit": str(self._batch_size)},
            )
            if status != 200:
                raise self._error(status, body, "could not list old activation records")
            rows = body["rows"]
            if not rows:
                return purged
            tombstones = [{"_id": row["id"], "_rev": row["value"], "_deleted": True} for row in rows]
            results = await self._bulk_docs(self._activations, orjson.dumps({"docs": tombstones}))
            deleted = sum(1 for result in results if result.get("ok"))
            purged += deleted
            # Nothing deleted (every row conflicted) means the same rows would come back: stop, retry later.
            if deleted == 0 or len(rows) < self._batch_size:
                return purged

    async def _write_activations(self) -> None:
        while self._pending:
            batch = self._take_batch()
            # One document per id: a redelivery racing its original resolves both callers from one result.
            by_id: dict[str, list[_PendingActivation]] = {}
            for pending in batch:
                by_id.setdefault(pending.doc_id, []).append(pending)
            bodies = [waiters[0].body for waiters in by_id.values()]
            try:
                self.activation_batches += 1
                results = await self._bulk_docs(self._activations, b'{"docs":[' + b",".join(bodies) + b"]}")
            except Exception as exc:  # every caller of this batch learns that its record was not stored
                log.warning("writing %d activation records failed: %s", len(by_id), exc)
                for pending in batch:
                    if not pending.done.done():
                        pending.done.set_exception(exc)
                continue
            outcome: dict[str, BaseException | None] = {}
            # Matched by id, not position: pouchdb-server answers rejected documents first.
            for result in results:
                doc_id, error = str(result.get("id")), result.get("error")
                # ok, or 409: a record with this id is stored already (a redelivered activation).
                if error is None or error == "conflict":
                    outcome[doc_id] = None
                else:
                    reason = result.get("reason")
                    outcome[doc_id] = CouchDBError(
                        f"could not store activation {doc_id}: {error}: {reason}", None, error
                    )
            for doc_id, waiters in by_id.items():
                failure = outcome.get(doc_id, CouchDBError(f"CouchDB did not report on activation {doc_id}"))
                for pending in waiters:
                    if pending.done.done():
                        continue  # the caller was cancelled; the record is stored regardless
                    if failure is None:
                        pending.done.set_result(None)
                    else:
                        pending.done.set_exception(failure)

    def _take_batch(self) -> list[_PendingActivation]:
        size, count = 0, 0
        for pending in self._pending:
            if count and (count >= self._batch_size or size + len(pending.body) > _MAX_BATCH_BYTES):
                break
            size += len(pending.body)
            count += 1
        batch, self._pending = self._pending[:count], self._pending[count:]
        return batch

    # HTTP -----------------------------------------------------------------------------------------

    async def _request(
        self, method: str, path: str, *, params: dict[str, str] | None = None, json: Any = None
    ) -> tuple[int, Any]:
        content = orjson.dumps(json) if json is not None else None
        return await self._send(method, path, params=params, content=content)

    async def _send(
        self, method: str, path: str, *, params: dict[str, str] | None = None, content: bytes | None = None
    ) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"} if content is not None else None
        try:
            response = await self._client.request(method, path, params=params, content=content, headers=headers)
        except httpx.TransportError as exc:  # refused, DNS, TLS, timeouts: say where we tried to go
            raise CouchDBUnavailable(
                f"CouchDB at {self._url} is unreachable ({method} {path}): {type(exc).__name__}: {exc}"
            ) from exc
        try:
            body = orjson.loads(response.content) if response.content else None
        except orjson.JSONDecodeError:
            body = {"error": "not_json", "reason": response.text[:200]}
        return response.status_code, body

    async def _bulk_docs(self, db: str, payload: bytes) -> list[dict[str, Any]]:
        status, body = await self._send("POST", f"/{db}/_bulk_docs", content=payload)
        if status not in (201, 202) or not isinstance(body, list):
            raise self._error(status, body, f"_bulk_docs on {db} failed")
        return body

    async def _get_doc(self, db: str, doc_id: str) -> dict[str, Any] | None:
        status, body = await self._request("GET", self._doc_path(db, doc_id))
        if status == 404:
            return None
        if status != 200:
            raise self._error(status, body, f"could not read {db}/{doc_id}")
        return dict(body)

    async def _view_rows(
        self, db: str, design: str, view: str, *, low: list[Any], high: list[Any], limit: int, skip: int
    ) -> list[dict[str, Any]]:
        # Newest first: walk the index backwards from the high key to the low key.
        params = {
            "startkey": _json(high),
            "endkey": _json(low),
            "descending": "true",
            "reduce": "false",
            "include_docs": "true",
            "limit": str(limit),
            "skip": str(skip),
        }
        status, body = await self._request("GET", f"/{db}/_design/{design}/_view/{view}", params=params)
        if status != 200:
            raise self._error(status, body, f"could not query view {db}/_design/{design}/_view/{view}")
        return list(body["rows"])

    async def _view_count(self, db: str, design: str, view: str, *, low: list[Any], high: list[Any]) -> int:
        params = {"startkey": _json(low), "endkey": _json(high), "reduce": "true"}
        status, body = await self._request("GET", f"/{db}/_design/{design}/_view/{view}", params=params)
        if status != 200:
            raise self._error(status, body, f"could not count view {db}/_design/{design}/_view/{view}")
        rows = body["rows"]
        return int(rows[0]["value"]) if rows else 0  # an empty range reduces to no row at all

    @staticmethod
    def _doc_path(db: str, doc_id: str) -> str:
        # Our ids hold '/', which must reach CouchDB as %2F to stay one path segment.
        return f"/{db}/{quote(doc_id, safe='')}"

    def _error(self, status: int, body: Any, what: str) -> CouchDBError:
        error = body.get("error") if isinstance(body, dict) else None
        reason = body.get("reason") if isinstance(body, dict) else None
        hint = " (check the CouchDB username and password)" if status in (401, 403) else ""
        message = f"{what}: CouchDB at {self._url} answered {status} {error}: {reason}{hint}"
        # A server error is CouchDB's trouble, not the request's: callers retry or answer 503.
        kind = CouchDBUnavailable if status >= 500 else CouchDBError
        return kind(message, status, error)


def _action(doc: dict[str, Any]) -> Action:
    action = Action.model_validate(doc)
    action.rev = doc["_rev"]
    return action


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _activation_range(query: ActivationQuery) -> tuple[str, list[Any] | None, list[Any] | None]:
    """The view and its inclusive key range for a query; (view, None, None) when nothing can match."""
    if query.since is not None and query.upto is not None and query.since > query.upto:
        # CouchDB 3 rejects a reversed range with 400; SQLite just finds nothing, and so do we.
        return "by_namespace_start", None, None
    prefix: list[Any] = [query.namespace, query.name] if query.name else [query.namespace]
    view = "by_name_start" if query.name else "by_namespace_start"
    # A shorter array sorts before every longer one with its prefix, and {} after every number.
    low = [*prefix, query.since] if query.since is not None else prefix
    high = [*prefix, query.upto if query.upto is not None else {}]
    return view, low, high
