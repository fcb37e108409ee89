"""Entities in the ``{prefix}whisks`` database: the CouchDB ``EntityStore``.

Documents have id ``{namespace}/{name}`` and carry ``entityType`` as OpenWhisk's do; an action's ``rev`` is
CouchDB's ``_rev``, so CouchDB's own conflict check is the optimistic concurrency of ``put_action``.
"""

from __future__ import annotations

from typing import Any

from pywhisk.entities import Action
from pywhisk.errors import ConcurrentModification, Conflict
from pywhisk.store import ActionSummary
from pywhisk.store.couchdb.client import CouchClient, Designs, doc_path

ACTION = "action"

DESIGNS: Designs = {
    "whisks": {
        # Listing is by namespace, type, updated: newest first within one namespace and type. The value is the
        # list row (``ActionSummary``'s fields), so a listing reads no document, hence no code: OpenWhisk's
        # ``actions`` view does the same (ansible/files/whisks_design_document_for_entities_db_v2.1.0.json).
        "by_type_updated": {
            "map": "function (doc) { if (doc.entityType && doc.namespace !== undefined) { "
            "emit([doc.namespace, doc.entityType, doc.updated], {namespace: doc.namespace, name: doc.name, "
            "version: doc.version, publish: doc.publish, annotations: doc.annotations, limits: doc.limits, "
            "binary: !!(doc.exec && doc.exec.binary), updated: doc.updated}); } }",
            "reduce": "_count",
        },
    },
}


class CouchEntities:
    """An ``EntityStore`` in one CouchDB database."""

    def __init__(self, client: CouchClient, db: str) -> None:
        self._client = client
        self.db = db
        """The database's name."""

    async def prepare(self) -> None:
        """Create the database and its design documents if missing."""
        await self._client.prepare(self.db, DESIGNS)

    async def get_action(self, namespace: str, name: str) -> Action | None:
        """The action, with its ``rev`` (CouchDB's ``_rev``), or None."""
        doc = await self._client.get_doc(self.db, f"{namespace}/{name}")
        return _action(doc) if doc is not None and doc.get("entityType") == ACTION else None

    async def put_action(self, action: Action, expected_rev: str | None) -> Action:
        """Create (``expected_rev=None``) or replace that revision; CouchDB's 409 becomes our 409s."""
        doc_id = f"{action.namespace}/{action.name}"
        doc: dict[str, Any] = {**action.model_dump(mode="json"), "_id": doc_id, "entityType": ACTION}
        if expected_rev is not None:
            doc["_rev"] = expected_rev
        status, body = await self._client.request("PUT", doc_path(self.db, doc_id), json=doc)
        if status in (201, 202):
            return action.model_copy(update={"rev": body["rev"]})
        if status == 409 and expected_rev is None:
            raise Conflict()
        # 409 with a revision: it moved on or was deleted. pouchdb-server may say 404 for a revision it
        # never had where CouchDB says 409; both mean the caller's copy is stale.
        if expected_rev is not None and status in (404, 409):
            raise ConcurrentModification()
        raise self._client.error(status, body, f"could not store action {doc_id}")

    async def delete_action(self, namespace: str, name: str) -> Action | None:
        """Remove and return the action, or None; deletes whatever revision is current."""
        doc = await self._client.delete_current(self.db, f"{namespace}/{name}", lambda d: d.get("entityType") == ACTION)
        return _action(doc) if doc is not None else None

    async def list_actions(self, namespace: str, limit: int, skip: int) -> list[ActionSummary]:
        """Summaries of a namespace's actions, most recently updated first, from the view alone."""
        if limit <= 0:
            return []
        rows = await self._client.view_rows(
            self.db,
            "whisks",
            "by_type_updated",
            low=[namespace, ACTION],
            high=[namespace, ACTION, {}],
            limit=limit,
            skip=skip,
            include_docs=False,
        )
        return [ActionSummary.model_validate(row["value"]) for row in rows]

    async def count_actions(self, namespace: str) -> int:
        """How many actions the namespace holds."""
        return await self._client.view_count(
            self.db, "whisks", "by_type_updated", low=[namespace, ACTION], high=[namespace, ACTION, {}]
        )


def _action(doc: dict[str, Any]) -> Action:
    action = Action.model_validate(doc)
    action.rev = doc["_rev"]
    return action
