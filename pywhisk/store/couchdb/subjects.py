"""Subjects and namespace limits in the ``{prefix}subjects`` database: the CouchDB ``SubjectStore``.

Subject documents are OpenWhisk's shape, ``{_id: subject, subject, namespaces: [{name, uuid, ...}]}``, with
the key replaced by its salted hash; a namespace's limits are OpenWhisk's ``{namespace}/limits`` document in
the same database (it has no ``namespaces``, which is how the two are told apart).
"""

from __future__ import annotations

from typing import Any

from pywhisk.errors import Conflict
from pywhisk.identity import NamespaceLimits, Subject
from pywhisk.store.couchdb.client import CouchClient, Designs, json_param

DESIGNS: Designs = {
    "subjects": {
        "by_uuid": {
            "map": "function (doc) { if (Array.isArray(doc.namespaces)) { for (var i = 0; i < "
            "doc.namespaces.length; i++) { emit(doc.namespaces[i].uuid, null); } } }",
        },
    },
}


class CouchSubjects:
    """A ``SubjectStore`` in one CouchDB database."""

    def __init__(self, client: CouchClient, db: str) -> None:
        self._client = client
        self.db = db
        """The database's name."""

    async def prepare(self) -> None:
        """Create the database and its design documents if missing."""
        await self._client.prepare(self.db, DESIGNS)

    async def get_subject(self, subject: str) -> Subject | None:
        """The subject document by its name (its ``_id``), or None."""
        doc = await self._client.get_doc(self.db, subject)
        return Subject.model_validate(doc) if doc is not None and "namespaces" in doc else None

    async def get_subject_by_uuid(self, uuid: str) -> Subject | None:
        """The subject holding the key with this uuid, through the ``by_uuid`` view."""
        params = {"key": json_param(uuid), "include_docs": "true", "limit": "1"}
        status, body = await self._client.request("GET", f"/{self.db}/_design/subjects/_view/by_uuid", params=params)
        if status != 200:
            raise self._client.error(status, body, "could not look up a key")
        rows = [row for row in body["rows"] if row.get("doc")]
        return Subject.model_validate(rows[0]["doc"]) if rows else None

    async def put_subject(self, subject: Subject) -> None:
        """Create or replace the subject document (whatever revision is current)."""
        for ns in subject.namespaces:
            owner = await self.get_subject_by_uuid(ns.uuid)
            if owner is not None and owner.subject != subject.subject:
                raise Conflict()
        doc: dict[str, Any] = {**subject.model_dump(mode="json"), "_id": subject.subject}
        await self._client.put_replacing(self.db, subject.subject, doc)

    async def delete_subject(self, subject: str) -> Subject | None:
        """Remove and return the subject document, or None."""
        doc = await self._client.delete_current(self.db, subject, lambda d: "namespaces" in d)
        return Subject.model_validate(doc) if doc is not None else None

    async def list_subjects(self, namespace: str | None = None) -> list[Subject]:
        """Every subject document (the subjects database is small: one document per user)."""
        status, body = await self._client.request("GET", f"/{self.db}/_all_docs", params={"include_docs": "true"})
        if status != 200:
            raise self._client.error(status, body, "could not list subjects")
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
        doc = await self._client.get_doc(self.db, f"{namespace}/limits")
        return NamespaceLimits.model_validate(doc) if doc is not None else None

    async def put_limits(self, namespace: str, limits: NamespaceLimits) -> None:
        """Create or replace the namespace's limits document."""
        doc_id = f"{namespace}/limits"
        await self._client.put_replacing(self.db, doc_id, {**limits.model_dump(exclude_none=True), "_id": doc_id})

    async def delete_limits(self, namespace: str) -> bool:
        """Drop the namespace's limits document; False if there was none."""
        return await self._client.delete_current(self.db, f"{namespace}/limits", lambda d: True) is not None
