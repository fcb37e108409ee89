"""Entities in the ``{prefix}whisks`` database: the CouchDB ``EntityStore``.

Documents have id ``{namespace}/{name}`` and carry ``entityType`` as OpenWhisk's do; an action's ``rev`` is
CouchDB's ``_rev``, so CouchDB's own conflict check is the optimistic concurrency of ``put_action``.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pywhisk.entities import Action, Package, PackageSummary, Rule, RuleSummary, Trigger, TriggerSummary
from pywhisk.errors import ConcurrentModification, Conflict
from pywhisk.store import ActionSummary
from pywhisk.store.couchdb.client import CouchClient, Designs, doc_path

ACTION = "action"
PACKAGE = "package"
TRIGGER = "trigger"
RULE = "rule"
E = TypeVar("E", Action, Package, Trigger, Rule)

# The list row of each type, the value the views emit: what ``ActionSummary``/``PackageSummary`` hold.
_SUMMARY = (
    "function summary(doc) { var row = {namespace: doc.namespace, name: doc.name, version: doc.version, "
    "publish: doc.publish, annotations: doc.annotations, updated: doc.updated}; "
    "if (doc.entityType === 'action') { row.limits = doc.limits; row.binary = !!(doc.exec && doc.exec.binary); } "
    "if (doc.entityType === 'package') { row.binding = doc.binding || null; } return row; } "
)

DESIGNS: Designs = {
    "whisks": {
        # Listing is by namespace, type, updated: newest first within one namespace and type. The value is the
        # list row, so a listing reads no document, hence no code: OpenWhisk's ``actions`` and ``packages``
        # views do the same (ansible/files/whisks_design_document_for_entities_db_v2.1.0.json), and its
        # ``packages-public`` view is ``by_type_updated_public`` here.
        "by_type_updated": {
            "map": "function (doc) { " + _SUMMARY + "if (doc.entityType && doc.namespace !== undefined) { "
            "emit([doc.namespace, doc.entityType, doc.updated], summary(doc)); } }",
            "reduce": "_count",
        },
        # Bindings are never listed as another namespace's packages ([OW] the ``packages-public`` view).
        "by_type_updated_public": {
            "map": "function (doc) { " + _SUMMARY + "if (doc.entityType && doc.namespace !== undefined "
            "&& doc.publish === true && !(doc.binding && doc.binding.name)) { "
            "emit([doc.namespace, doc.entityType, doc.updated], summary(doc)); } }",
            "reduce": "_count",
        },
        # Actions in packages are listed under their root namespace too, as OpenWhisk's ``actions`` view emits
        # them: ``GET /namespaces/ns/actions`` shows ``/ns/pkg/a`` beside ``/ns/a``.
        "actions_by_root_updated": {
            "map": "function (doc) { " + _SUMMARY + "if (doc.entityType === 'action' && doc.namespace !== undefined) { "
            "emit([doc.namespace.split('/')[0], doc.updated], summary(doc)); } }",
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
        return await self._get(Action, ACTION, namespace, name)

    async def put_action(self, action: Action, expected_rev: str | None) -> Action:
        """Create (``expected_rev=None``) or replace that revision; CouchDB's 409 becomes our 409s."""
        return await self._put(action, ACTION, expected_rev)

    async def delete_action(self, namespace: str, name: str) -> Action | None:
        """Remove and return the action, or None; deletes whatever revision is current."""
        return await self._delete(Action, ACTION, namespace, name)

    async def list_actions(self, namespace: str, limit: int, skip: int) -> list[ActionSummary]:
        """Summaries of a namespace's actions, most recently updated first, from the view alone."""
        rows = await self._list(ACTION, namespace, limit, skip, published_only=False)
        return [ActionSummary.model_validate(row) for row in rows]

    async def count_actions(self, namespace: str) -> int:
        """How many actions the namespace holds."""
        return await self._count(ACTION, namespace, published_only=False)

    async def get_package(self, namespace: str, name: str) -> Package | None:
        """The package, with its ``rev``, or None."""
        return await self._get(Package, PACKAGE, namespace, name)

    async def put_package(self, package: Package, expected_rev: str | None) -> Package:
        """Create (``expected_rev=None``) or replace that revision."""
        return await self._put(package, PACKAGE, expected_rev)

    async def delete_package(self, namespace: str, name: str) -> Package | None:
        """Remove and return the package, or None."""
        return await self._delete(Package, PACKAGE, namespace, name)

    async def list_packages(
        self, namespace: str, limit: int, skip: int, *, published_only: bool = False
    ) -> list[PackageSummary]:
        """Summaries of a namespace's packages, most recently updated first, from a view alone."""
        rows = await self._list(PACKAGE, namespace, limit, skip, published_only=published_only)
        return [PackageSummary.model_validate(row) for row in rows]

    async def count_packages(self, namespace: str, *, published_only: bool = False) -> int:
        """How many packages (published ones, if asked) the namespace holds."""
        return await self._count(PACKAGE, namespace, published_only=published_only)

    async def get_trigger(self, namespace: str, name: str) -> Trigger | None:
        """The trigger, with its ``rev``, or None."""
        return await self._get(Trigger, TRIGGER, namespace, name)

    async def put_trigger(self, trigger: Trigger, expected_rev: str | None) -> Trigger:
        """Create (``expected_rev=None``) or replace that revision."""
        return await self._put(trigger, TRIGGER, expected_rev)

    async def delete_trigger(self, namespace: str, name: str) -> Trigger | None:
        """Remove and return the trigger, or None."""
        return await self._delete(Trigger, TRIGGER, namespace, name)

    async def list_triggers(self, namespace: str, limit: int, skip: int) -> list[TriggerSummary]:
        """Summaries of a namespace's triggers, most recently updated first, from the view alone."""
        rows = await self._list(TRIGGER, namespace, limit, skip, published_only=False)
        return [TriggerSummary.model_validate(row) for row in rows]

    async def count_triggers(self, namespace: str) -> int:
        """How many triggers the namespace holds."""
        return await self._count(TRIGGER, namespace, published_only=False)

    async def get_rule(self, namespace: str, name: str) -> Rule | None:
        """The rule, with its ``rev``, or None."""
        return await self._get(Rule, RULE, namespace, name)

    async def put_rule(self, rule: Rule, expected_rev: str | None) -> Rule:
        """Create (``expected_rev=None``) or replace that revision."""
        return await self._put(rule, RULE, expected_rev)

    async def delete_rule(self, namespace: str, name: str) -> Rule | None:
        """Remove and return the rule, or None."""
        return await self._delete(Rule, RULE, namespace, name)

    async def list_rules(self, namespace: str, limit: int, skip: int) -> list[RuleSummary]:
        """Summaries of a namespace's rules, most recently updated first, from the view alone."""
        rows = await self._list(RULE, namespace, limit, skip, published_only=False)
        return [RuleSummary.model_validate(row) for row in rows]

    async def count_rules(self, namespace: str) -> int:
        """How many rules the namespace holds."""
        return await self._count(RULE, namespace, published_only=False)

    async def _get(self, model: type[E], entity_type: str, namespace: str, name: str) -> E | None:
        doc = await self._client.get_doc(self.db, f"{namespace}/{name}")
        if doc is None or doc.get("entityType") != entity_type:
            return None
        return _entity(model, doc)

    async def _put(self, entity: E, entity_type: str, expected_rev: str | None) -> E:
        doc_id = f"{entity.namespace}/{entity.name}"
        doc: dict[str, Any] = {**entity.model_dump(mode="json"), "_id": doc_id, "entityType": entity_type}
        if expected_rev is not None:
            doc["_rev"] = expected_rev
        status, body = await self._client.request("PUT", doc_path(self.db, doc_id), json=doc)
        if status in (201, 202):
            return entity.model_copy(update={"rev": body["rev"]})
        if status == 409 and expected_rev is None:
            raise Conflict()
        # 409 with a revision: it moved on or was deleted. pouchdb-server may say 404 for a revision it
        # never had where CouchDB says 409; both mean the caller's copy is stale.
        if expected_rev is not None and status in (404, 409):
            raise ConcurrentModification()
        raise self._client.error(status, body, f"could not store {entity_type} {doc_id}")

    async def _delete(self, model: type[E], entity_type: str, namespace: str, name: str) -> E | None:
        doc = await self._client.delete_current(
            self.db, f"{namespace}/{name}", lambda d: d.get("entityType") == entity_type
        )
        return _entity(model, doc) if doc is not None else None

    async def _list(
        self, entity_type: str, namespace: str, limit: int, skip: int, *, published_only: bool
    ) -> list[dict[str, Any]]:
        if limit <= 0:
            return []
        view, low, high = _view_range(entity_type, namespace, published_only)
        rows = await self._client.view_rows(
            self.db, "whisks", view, low=low, high=high, limit=limit, skip=skip, include_docs=False
        )
        return [row["value"] for row in rows]

    async def _count(self, entity_type: str, namespace: str, *, published_only: bool) -> int:
        view, low, high = _view_range(entity_type, namespace, published_only)
        return await self._client.view_count(self.db, "whisks", view, low=low, high=high)


def _view_range(entity_type: str, namespace: str, published_only: bool) -> tuple[str, list[Any], list[Any]]:
    """The view and key range listing ``namespace``'s entities of a type (see ``DESIGNS``)."""
    if entity_type == ACTION and "/" not in namespace and not published_only:
        return "actions_by_root_updated", [namespace], [namespace, {}]
    view = "by_type_updated_public" if published_only else "by_type_updated"
    return view, [namespace, entity_type], [namespace, entity_type, {}]


def _entity(model: type[E], doc: dict[str, Any]) -> E:
    entity = model.model_validate(doc)
    entity.rev = doc["_rev"]
    return entity
