"""CouchDB store for distributed mode, over CouchDB's HTTP API (CouchDB 3, or pouchdb-server in tests).

Databases as in OpenWhisk: ``{prefix}subjects`` (subjects by name, ``{ns}/limits``), ``{prefix}whisks`` (entities,
id ``{namespace}/{name}``) and ``{prefix}activations`` (id ``{namespace}/{activationId}``), a fourth,
``{prefix}schedules`` (alarm schedules, id ``{namespace}/{trigger}``), as OpenWhisk's alarms provider keeps its
own, and a fifth, ``{prefix}sequences``, the sequence journal's entries (``pywhisk.store.SequenceJournalStore``:
its periodic scan must not index every activation record). Listing and
counting use JavaScript map views with the built-in ``_count`` reduce rather than Mango ``_find``: views
give newest-first order (``descending=true``), ``skip``/``limit`` and exact counts in one indexed query on
both CouchDB 3 and pouchdb-server, while Mango has no count, needs a matching index for every sort, and
pouchdb-server's ``_find`` sorts in memory. OpenWhisk itself lists through views for the same reasons.

One module per document family (``subjects``, ``entities``, ``activations``, ``schedules``), each implementing its
narrow protocol of ``pywhisk.store`` over the shared HTTP/view ``client``; ``CouchStore`` composes them into
the whole ``Store`` with one lifespan.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from pywhisk.activation import Activation
from pywhisk.entities import Action, Package, PackageSummary, Rule, RuleSummary, Trigger, TriggerSummary
from pywhisk.identity import NamespaceLimits, Subject
from pywhisk.schedules import Schedule
from pywhisk.store import ActionSummary, ActivationQuery, ActivationSummary
from pywhisk.store.couchdb.activations import CouchActivations
from pywhisk.store.couchdb.client import CouchClient, CouchDBError, CouchDBUnavailable
from pywhisk.store.couchdb.entities import CouchEntities
from pywhisk.store.couchdb.schedules import CouchSchedules
from pywhisk.store.couchdb.subjects import CouchSubjects

__all__ = ["CouchDBError", "CouchDBUnavailable", "CouchStore"]

# CouchDB's database-name rule; the prefix is the only part of our names a user chooses.
_DB_PREFIX = re.compile(r"\A[a-z][a-z0-9_$()+/-]*\Z")


class CouchStore:
    """A ``Store`` in five CouchDB databases, over one keep-alive HTTP client.

    ``username``/``password`` (or user info in ``url``) are sent as HTTP Basic auth: CouchDB 3 needs a
    server admin to create databases and design documents. ``retention_days`` starts a background task
    that deletes older activation records every ``retention_interval_s``. ``record_linger_s`` makes a batch of
    records wait that long for more before it is written (``pywhisk.store.writer``). The families are reachable as
    ``subjects``, ``entities`` and ``activations``; the methods here delegate to them.
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
        on_flush: Callable[[int, float], None] | None = None,
        record_linger_s: float = 0.0,
    ) -> None:
        if not _DB_PREFIX.match(db_prefix):
            raise ValueError(f"db_prefix {db_prefix!r} is not a CouchDB database name (lowercase, a-z first)")
        if activation_batch_size < 1:
            raise ValueError("activation_batch_size must be at least 1")
        self._client = CouchClient(url, username, password, timeout_s=timeout_s, connect_timeout_s=connect_timeout_s)
        self.subjects = CouchSubjects(self._client, f"{db_prefix}subjects")
        self.entities = CouchEntities(self._client, f"{db_prefix}whisks")
        self.activations = CouchActivations(
            self._client,
            f"{db_prefix}activations",
            batch_size=activation_batch_size,
            retention_days=retention_days,
            retention_interval_s=retention_interval_s,
            on_flush=on_flush,
            linger_s=record_linger_s,
        )
        # Alarm schedules have a database of their own, as openwhisk-package-alarms' provider has.
        self.schedules = CouchSchedules(self._client, f"{db_prefix}schedules")
        # The sequence journal's entries too (pywhisk.store.SequenceJournalStore), kept as long as the records.
        self.sequence_journal = CouchActivations(
            self._client,
            f"{db_prefix}sequences",
            batch_size=activation_batch_size,
            retention_days=retention_days,
            retention_interval_s=retention_interval_s,
        )

    @property
    def url(self) -> str:
        """The server's URL, without credentials."""
        return self._client.url

    @property
    def databases(self) -> tuple[str, str, str, str, str]:
        """The names of the subjects, whisks, activations, schedules and sequence journal databases."""
        return self.subjects.db, self.entities.db, self.activations.db, self.schedules.db, self.sequence_journal.db

    @property
    def activation_batches(self) -> int:
        """How many ``_bulk_docs`` requests have carried activation records (batching is observable)."""
        return self.activations.batches

    # lifecycle ------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Create the databases and design documents if missing; start retention if configured."""
        for family in (self.subjects, self.entities, self.activations, self.schedules, self.sequence_journal):
            await family.prepare()

    async def close(self) -> None:
        """Write the activation records still pending, stop retention and close the HTTP client."""
        await self.activations.close()
        await self.sequence_journal.close()
        await self._client.close()

    # SubjectStore ---------------------------------------------------------------------------------

    async def get_subject(self, subject: str) -> Subject | None:
        """The subject document by its name (its ``_id``), or None."""
        return await self.subjects.get_subject(subject)

    async def get_subject_by_uuid(self, uuid: str) -> Subject | None:
        """The subject holding the key with this uuid, or None."""
        return await self.subjects.get_subject_by_uuid(uuid)

    async def put_subject(self, subject: Subject) -> None:
        """Create or replace the subject document; ``Conflict`` if a key uuid is another subject's."""
        await self.subjects.put_subject(subject)

    async def delete_subject(self, subject: str) -> Subject | None:
        """Remove and return the subject document, or None."""
        return await self.subjects.delete_subject(subject)

    async def list_subjects(self, namespace: str | None = None) -> list[Subject]:
        """Every subject (with a key for ``namespace``, if given), by name."""
        return await self.subjects.list_subjects(namespace)

    async def get_limits(self, namespace: str) -> NamespaceLimits | None:
        """The namespace's ``{namespace}/limits`` document, or None."""
        return await self.subjects.get_limits(namespace)

    async def put_limits(self, namespace: str, limits: NamespaceLimits) -> None:
        """Create or replace the namespace's limits document."""
        await self.subjects.put_limits(namespace, limits)

    async def delete_limits(self, namespace: str) -> bool:
        """Drop the namespace's limits document; False if there was none."""
        return await self.subjects.delete_limits(namespace)

    # EntityStore ----------------------------------------------------------------------------------

    async def get_action(self, namespace: str, name: str) -> Action | None:
        """The action, with its ``rev`` (CouchDB's ``_rev``), or None."""
        return await self.entities.get_action(namespace, name)

    async def put_action(self, action: Action, expected_rev: str | None) -> Action:
        """Create (``expected_rev=None``) or replace that revision; returns it with its new ``rev``."""
        return await self.entities.put_action(action, expected_rev)

    async def delete_action(self, namespace: str, name: str) -> Action | None:
        """Remove and return the action, or None."""
        return await self.entities.delete_action(namespace, name)

    async def list_actions(self, namespace: str, limit: int, skip: int) -> list[ActionSummary]:
        """Summaries of a namespace's actions, most recently updated first; no code is read."""
        return await self.entities.list_actions(namespace, limit, skip)

    async def count_actions(self, namespace: str) -> int:
        """How many actions the namespace holds."""
        return await self.entities.count_actions(namespace)

    async def get_package(self, namespace: str, name: str) -> Package | None:
        """The package, with its ``rev``, or None."""
        return await self.entities.get_package(namespace, name)

    async def put_package(self, package: Package, expected_rev: str | None) -> Package:
        """Create (``expected_rev=None``) or replace that revision; returns it with its new ``rev``."""
        return await self.entities.put_package(package, expected_rev)

    async def delete_package(self, namespace: str, name: str) -> Package | None:
        """Remove and return the package, or None."""
        return await self.entities.delete_package(namespace, name)

    async def list_packages(
        self, namespace: str, limit: int, skip: int, *, published_only: bool = False
    ) -> list[PackageSummary]:
        """Summaries of a namespace's packages, most recently updated first."""
        return await self.entities.list_packages(namespace, limit, skip, published_only=published_only)

    async def count_packages(self, namespace: str, *, published_only: bool = False) -> int:
        """How many packages (published ones, if asked) the namespace holds."""
        return await self.entities.count_packages(namespace, published_only=published_only)

    async def get_trigger(self, namespace: str, name: str) -> Trigger | None:
        """The trigger, with its ``rev``, or None."""
        return await self.entities.get_trigger(namespace, name)

    async def put_trigger(self, trigger: Trigger, expected_rev: str | None) -> Trigger:
        """Create (``expected_rev=None``) or replace that revision; returns it with its new ``rev``."""
        return await self.entities.put_trigger(trigger, expected_rev)

    async def delete_trigger(self, namespace: str, name: str) -> Trigger | None:
        """Remove and return the trigger, or None."""
        return await self.entities.delete_trigger(namespace, name)

    async def list_triggers(self, namespace: str, limit: int, skip: int) -> list[TriggerSummary]:
        """Summaries of a namespace's triggers, most recently updated first."""
        return await self.entities.list_triggers(namespace, limit, skip)

    async def count_triggers(self, namespace: str) -> int:
        """How many triggers the namespace holds."""
        return await self.entities.count_triggers(namespace)

    async def get_rule(self, namespace: str, name: str) -> Rule | None:
        """The rule, with its ``rev``, or None."""
        return await self.entities.get_rule(namespace, name)

    async def put_rule(self, rule: Rule, expected_rev: str | None) -> Rule:
        """Create (``expected_rev=None``) or replace that revision; returns it with its new ``rev``."""
        return await self.entities.put_rule(rule, expected_rev)

    async def delete_rule(self, namespace: str, name: str) -> Rule | None:
        """Remove and return the rule, or None."""
        return await self.entities.delete_rule(namespace, name)

    async def list_rules(self, namespace: str, limit: int, skip: int) -> list[RuleSummary]:
        """Summaries of a namespace's rules, most recently updated first."""
        return await self.entities.list_rules(namespace, limit, skip)

    async def count_rules(self, namespace: str) -> int:
        """How many rules the namespace holds."""
        return await self.entities.count_rules(namespace)

    # ScheduleStore --------------------------------------------------------------------------------

    async def get_schedule(self, namespace: str, name: str) -> Schedule | None:
        """The schedule of a trigger, with its ``rev``, or None."""
        return await self.schedules.get_schedule(namespace, name)

    async def put_schedule(self, schedule: Schedule, expected_rev: str | None) -> Schedule:
        """Create (``expected_rev=None``) or replace that revision; returns it with its new ``rev``."""
        return await self.schedules.put_schedule(schedule, expected_rev)

    async def delete_schedule(self, namespace: str, name: str) -> Schedule | None:
        """Remove and return the schedule, or None."""
        return await self.schedules.delete_schedule(namespace, name)

    async def due_schedules(self, until_ms: int, limit: int) -> list[Schedule]:
        """Active schedules due by ``until_ms``, earliest first."""
        return await self.schedules.due_schedules(until_ms, limit)

    # ActivationStore ------------------------------------------------------------------------------

    async def put_activation(self, activation: Activation) -> None:
        """Store a record; a second put of the same id is ignored. Concurrent puts share one request."""
        await self.activations.put_activation(activation)

    async def get_activation(self, namespace: str, activation_id: str) -> Activation | None:
        """One record of the namespace."""
        return await self.activations.get_activation(namespace, activation_id)

    async def list_activations(self, query: ActivationQuery) -> list[Activation]:
        """Whole records matching the query, newest ``start`` first."""
        return await self.activations.list_activations(query)

    async def list_activation_summaries(self, query: ActivationQuery) -> list[ActivationSummary]:
        """Summaries of the records matching the query, newest ``start`` first; no record is read."""
        return await self.activations.list_activation_summaries(query)

    async def count_activations(self, query: ActivationQuery) -> int:
        """How many records match (ignoring limit and skip)."""
        return await self.activations.count_activations(query)

    async def purge_activations_older_than(self, cutoff_ms: int) -> int:
        """Delete every activation record whose ``start`` is before ``cutoff_ms``; returns how many."""
        return await self.activations.purge_activations_older_than(cutoff_ms)
