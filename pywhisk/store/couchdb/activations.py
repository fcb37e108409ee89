"""Activation records in the ``{prefix}activations`` database: the CouchDB ``ActivationStore`` and retention.

Documents have id ``{namespace}/{activationId}``, so a redelivered activation meets CouchDB's 409 and is not
stored twice. Records are written through the shared group-commit writer (``pywhisk.store.writer``), one
``_bulk_docs`` request per batch; ``purge_activations_older_than`` deletes through the ``retention`` design
document, which is apart from the listing views because CouchDB builds indexes per design document.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from pywhisk.activation import Activation
from pywhisk.store import ActivationQuery, ActivationSummary
from pywhisk.store.couchdb.client import CouchClient, CouchDBError, Designs
from pywhisk.store.retention import Retention
from pywhisk.store.writer import GroupCommitWriter

log = logging.getLogger("pywhisk.store.couchdb")

ACTIVATION = "activation"
# One request must not carry an unbounded body: records hold up to 1 MB of result and 10 MB of logs, and
# CouchDB 3 caps one document at 8 MB (max_document_size) but a request only at 4 GiB.
MAX_BATCH_BYTES = 16 * 1024 * 1024

# The listing views' value is the list row (``ActivationSummary``'s fields), so listing without ``docs`` reads no
# record (results and logs stay on disk): OpenWhisk's ``activations`` view does the same
# (ansible/files/whisks_design_document_for_activations_db_v2.1.0.json).
_SUMMARY = (
    "{activationId: doc.activationId, namespace: doc.namespace, name: doc.name, version: doc.version, "
    "publish: doc.publish, annotations: doc.annotations, start: doc.start, end: doc.end, duration: doc.duration, "
    "cause: doc.cause, statusCode: doc.response ? doc.response.statusCode : undefined}"
)

DESIGNS: Designs = {
    "activations": {
        "by_namespace_start": {
            "map": "function (doc) { if (doc.entityType === 'activation') "
            f"{{ emit([doc.namespace, doc.start], {_SUMMARY}); }} }}",
            "reduce": "_count",
        },
        "by_name_start": {
            "map": "function (doc) { if (doc.entityType === 'activation') "
            f"{{ emit([doc.namespace, doc.name, doc.start], {_SUMMARY}); }} }}",
            "reduce": "_count",
        },
    },
    "retention": {
        # The value is the revision, so a purge can delete without fetching the (large) records.
        "by_start": {
            "map": "function (doc) { if (doc.entityType === 'activation') { emit(doc.start, doc._rev); } }",
        },
    },
}


@dataclass(frozen=True)
class _Record:
    doc_id: str
    body: bytes  # the serialised document


class CouchActivations:
    """An ``ActivationStore`` in one CouchDB database, with its writer and (if configured) retention.

    ``batch_size`` bounds both a write batch and a purge round's page.
    """

    def __init__(
        self,
        client: CouchClient,
        db: str,
        *,
        batch_size: int,
        retention_days: float | None,
        retention_interval_s: float,
        on_flush: Callable[[int, float], None] | None = None,
        linger_s: float = 0.0,
    ) -> None:
        self._client = client
        self.db = db
        """The database's name."""
        self._batch_size = batch_size
        self._writer = GroupCommitWriter[_Record](
            self._write,
            name="couchdb-activation-writer",
            what="activation records",
            log=log,
            max_items=batch_size,
            max_bytes=MAX_BATCH_BYTES,
            size=lambda record: len(record.body),
            on_flush=on_flush,  # the store metrics (pywhisk/metrics.py)
            linger_s=linger_s,
        )
        self._retention = Retention(
            self,
            retention_days,
            retention_interval_s,
            log,
            name="couchdb-activation-retention",
            expected=(CouchDBError,),
        )

    @property
    def batches(self) -> int:
        """How many ``_bulk_docs`` requests have carried activation records."""
        return self._writer.flushes

    async def prepare(self) -> None:
        """Create the database and its design documents if missing; start retention if configured."""
        await self._client.prepare(self.db, DESIGNS)
        self._retention.start()

    async def close(self) -> None:
        """Write the records still pending and stop retention."""
        await self._writer.close()
        await self._retention.close()

    async def put_activation(self, activation: Activation) -> None:
        """Store a record; a second put of the same id is ignored. Concurrent puts share one request."""
        doc_id = f"{activation.namespace}/{activation.activationId}"
        doc = {**activation.document(mode="json"), "_id": doc_id, "entityType": ACTIVATION}
        # Serialised here, by each caller, so the writer only joins bytes.
        await self._writer.put(_Record(doc_id, orjson.dumps(doc)))

    async def get_activation(self, namespace: str, activation_id: str) -> Activation | None:
        """One record of the namespace."""
        doc = await self._client.get_doc(self.db, f"{namespace}/{activation_id}")
        return Activation.model_validate(doc) if doc is not None and doc.get("entityType") == ACTIVATION else None

    async def list_activations(self, query: ActivationQuery) -> list[Activation]:
        """Whole records matching the query, newest ``start`` first."""
        rows = await self._rows(query, include_docs=True)
        return [Activation.model_validate(row["doc"]) for row in rows if row.get("doc")]

    async def list_activation_summaries(self, query: ActivationQuery) -> list[ActivationSummary]:
        """Summaries of the records matching the query, newest ``start`` first, from the view alone."""
        return [ActivationSummary.model_validate(row["value"]) for row in await self._rows(query, include_docs=False)]

    async def _rows(self, query: ActivationQuery, *, include_docs: bool) -> list[dict[str, Any]]:
        view, low, high = _activation_range(query)
        if query.limit <= 0 or low is None or high is None:
            return []
        return await self._client.view_rows(
            self.db,
            "activations",
            view,
            low=low,
            high=high,
            limit=query.limit,
            skip=query.skip,
            include_docs=include_docs,
        )

    async def count_activations(self, query: ActivationQuery) -> int:
        """How many records match (ignoring limit and skip)."""
        view, low, high = _activation_range(query)
        if low is None or high is None:
            return 0
        return await self._client.view_count(self.db, "activations", view, low=low, high=high)

    async def purge_activations_older_than(self, cutoff_ms: int) -> int:
        """Delete every activation record whose ``start`` is before ``cutoff_ms``; returns how many."""
        purged = 0
        while True:
            status, body = await self._client.request(
                "GET",
                f"/{self.db}/_design/retention/_view/by_start",
                params={"endkey": str(int(cutoff_ms)), "inclusive_end": "false", "limit": str(self._batch_size)},
            )
            if status != 200:
                raise self._client.error(status, body, "could not list old activation records")
            rows = body["rows"]
            if not rows:
                return purged
            tombstones = [{"_id": row["id"], "_rev": row["value"], "_deleted": True} for row in rows]
            results = await self._client.bulk_docs(self.db, orjson.dumps({"docs": tombstones}))
            deleted = sum(1 for result in results if result.get("ok"))
            purged += deleted
            # Nothing deleted (every row conflicted) means the same rows would come back: stop, retry later.
            if deleted == 0 or len(rows) < self._batch_size:
                return purged

    async def _write(self, batch: list[_Record]) -> list[BaseException | None]:
        # One document per id: a redelivery racing its original resolves both callers from one result.
        first: dict[str, bytes] = {}
        for record in batch:
            first.setdefault(record.doc_id, record.body)
        results = await self._client.bulk_docs(self.db, b'{"docs":[' + b",".join(first.values()) + b"]}")
        outcome: dict[str, BaseException | None] = {}
        # Matched by id, not position: pouchdb-server answers rejected documents first.
        for result in results:
            doc_id, error = str(result.get("id")), result.get("error")
            # ok, or 409: a record with this id is stored already (a redelivered activation).
            if error is None or error == "conflict":
                outcome[doc_id] = None
            else:
                reason = result.get("reason")
                outcome[doc_id] = CouchDBError(f"could not store activation {doc_id}: {error}: {reason}", None, error)
        return [outcome.get(r.doc_id, CouchDBError(f"CouchDB did not report on activation {r.doc_id}")) for r in batch]


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
