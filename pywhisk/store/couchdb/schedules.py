"""Alarm schedules in the ``{prefix}schedules`` database: the CouchDB ``ScheduleStore``.

Documents have id ``{namespace}/{name}`` (the trigger's, as openwhisk-package-alarms keys its trigger documents)
and the schedule's fields; ``rev`` is CouchDB's ``_rev``, so CouchDB's conflict check is what lets exactly one
controller claim a tick. The ``by_next_fire`` view emits only due schedules (active, with a next fire), keyed
by ``next_fire_ms``: the scheduler's poll is one indexed range read from the start of time to now.
"""

from __future__ import annotations

from typing import Any

from pywhisk.errors import ConcurrentModification, Conflict
from pywhisk.schedules import Schedule
from pywhisk.store.couchdb.client import CouchClient, Designs, doc_path, json_param

DESIGNS: Designs = {
    "schedules": {
        "by_next_fire": {
            "map": "function (doc) { if (doc.status && doc.status.active === true && "
            "typeof doc.next_fire_ms === 'number') { emit(doc.next_fire_ms, null); } }",
        },
    },
}


class CouchSchedules:
    """A ``ScheduleStore`` in one CouchDB database."""

    def __init__(self, client: CouchClient, db: str) -> None:
        self._client = client
        self.db = db
        """The database's name."""

    async def prepare(self) -> None:
        """Create the database and its design document if missing."""
        await self._client.prepare(self.db, DESIGNS)

    async def get_schedule(self, namespace: str, name: str) -> Schedule | None:
        """The schedule, with its ``rev``, or None."""
        doc = await self._client.get_doc(self.db, f"{namespace}/{name}")
        return _schedule(doc) if doc is not None else None

    async def put_schedule(self, schedule: Schedule, expected_rev: str | None) -> Schedule:
        """Create (``expected_rev=None``) or replace that revision; CouchDB's 409 becomes our 409s."""
        doc_id = f"{schedule.namespace}/{schedule.name}"
        doc: dict[str, Any] = {**schedule.model_dump(mode="json"), "_id": doc_id}
        if expected_rev is not None:
            doc["_rev"] = expected_rev
        status, body = await self._client.request("PUT", doc_path(self.db, doc_id), json=doc)
        if status in (201, 202):
            return schedule.model_copy(update={"rev": body["rev"]})
        if status == 409 and expected_rev is None:
            raise Conflict()
        # As for entities: pouchdb-server may answer 404 for a revision it never had where CouchDB says 409.
        if expected_rev is not None and status in (404, 409):
            raise ConcurrentModification()
        raise self._client.error(status, body, f"could not store schedule {doc_id}")

    async def delete_schedule(self, namespace: str, name: str) -> Schedule | None:
        """Remove and return the schedule, or None; deletes whatever revision is current."""
        doc = await self._client.delete_current(self.db, f"{namespace}/{name}", lambda d: "kind" in d)
        return _schedule(doc) if doc is not None else None

    async def due_schedules(self, until_ms: int, limit: int) -> list[Schedule]:
        """Due schedules with ``next_fire_ms <= until_ms``, earliest first, through ``by_next_fire``."""
        params = {
            "endkey": json_param(until_ms),
            "include_docs": "true",
            "limit": str(limit),
        }
        path = f"/{self.db}/_design/schedules/_view/by_next_fire"
        status, body = await self._client.request("GET", path, params=params)
        if status != 200:
            raise self._client.error(status, body, "could not read due schedules")
        return [_schedule(row["doc"]) for row in body["rows"] if isinstance(row.get("doc"), dict)]


def _schedule(doc: dict[str, Any]) -> Schedule:
    schedule = Schedule.model_validate(doc)
    schedule.rev = doc["_rev"]
    return schedule
