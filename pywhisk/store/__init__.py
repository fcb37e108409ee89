"""The ``Store`` seam: subjects, namespace limits, entities (actions) and activation records.

Backends: SQLite (standalone) and CouchDB (distributed). Subjects hold only the salted hash of each
key (``pywhisk.identity``); a namespace's limits are a separate record, as OpenWhisk's ``{ns}/limits``
document in the subjects database. Revisions give optimistic
concurrency: ``put_action`` with ``expected_rev=None`` creates (``Conflict`` if the name is taken),
otherwise it replaces the revision given (``ConcurrentModification`` if the stored one moved on).
``put_activation`` is idempotent on the activation id: a redelivered activation never makes a
second record.

Listing reads summaries, never whole documents: ``list_actions`` and ``list_activation_summaries`` answer
with ``ActionSummary``/``ActivationSummary`` (the rows of ``GET .../actions`` and ``GET .../activations``),
which a backend keeps beside each document (SQLite: a ``summary`` column before ``doc``; CouchDB: the value
its list views emit, as OpenWhisk's own views do), so that a 2 KB list never loads 48 MB of code or
7 MB records.

What the backends share lives beside them: ``writer`` (group commit of activation records) and
``retention`` (deleting old records).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from pydantic import BaseModel

from pywhisk.activation import Activation, ActivationSummary
from pywhisk.entities import (
    Action,
    ActionSummary,
    Package,
    PackageSummary,
    Rule,
    RuleSummary,
    Trigger,
    TriggerSummary,
)
from pywhisk.identity import NamespaceLimits, Subject
from pywhisk.schedules import Schedule

__all__ = [
    "ActionSummary",
    "ActivationQuery",
    "ActivationStore",
    "ActivationSummary",
    "EntityStore",
    "PackageSummary",
    "RuleSummary",
    "ScheduleStore",
    "SequenceJournalStore",
    "Store",
    "SubjectStore",
    "TriggerSummary",
]


class ActivationQuery(BaseModel):
    """Filters of ``GET /activations`` (reference §1.5); times are epoch milliseconds."""

    namespace: str
    name: str | None = None
    since: int | None = None
    upto: int | None = None
    limit: int = 30
    skip: int = 0


@runtime_checkable
class SubjectStore(Protocol):
    """Subjects (keys) and namespace limits: what authentication and ``pywhisk admin`` need."""

    async def get_subject(self, subject: str) -> Subject | None:
        """The subject document by its name, or None."""

    async def get_subject_by_uuid(self, uuid: str) -> Subject | None:
        """The subject holding the key with this uuid (the lookup behind every request), or None."""

    async def put_subject(self, subject: Subject) -> None:
        """Create or replace a subject document. ``Conflict`` if one of its key uuids belongs to
        another subject."""

    async def delete_subject(self, subject: str) -> Subject | None:
        """Remove and return the subject document, or None if there was none."""

    async def list_subjects(self, namespace: str | None = None) -> list[Subject]:
        """Every subject (with a key for ``namespace``, if given), by name."""

    async def get_limits(self, namespace: str) -> NamespaceLimits | None:
        """The namespace's own limits, or None when the system defaults apply."""

    async def put_limits(self, namespace: str, limits: NamespaceLimits) -> None:
        """Create or replace the namespace's own limits."""

    async def delete_limits(self, namespace: str) -> bool:
        """Drop the namespace's own limits (the defaults apply again); False if it had none."""


@runtime_checkable
class EntityStore(Protocol):
    """Entities of namespaces (actions, packages, triggers, rules): what the API's CRUD routes and the invoker read.

    One name space per namespace (or package) for every entity type, as OpenWhisk's document ids
    ``{namespace}/{name}``: creating a package where an action of that name is stored is a ``Conflict``;
    a ``get_*`` of the other type answers None. An action in a package has ``namespace`` ``ns/pkg``."""

    async def get_action(self, namespace: str, name: str) -> Action | None:
        """The action, with its ``rev``, or None."""

    async def put_action(self, action: Action, expected_rev: str | None) -> Action:
        """Create (``expected_rev=None``) or replace an action; returns it with its new ``rev``."""

    async def delete_action(self, namespace: str, name: str) -> Action | None:
        """Remove and return the action, or None if there was none."""

    async def list_actions(self, namespace: str, limit: int, skip: int) -> list[ActionSummary]:
        """Summaries of a namespace's actions, most recently updated first; no code is read."""

    async def count_actions(self, namespace: str) -> int:
        """How many actions the namespace (or ``ns/pkg``: package) holds."""

    async def get_package(self, namespace: str, name: str) -> Package | None:
        """The package (or binding), with its ``rev``, or None."""

    async def put_package(self, package: Package, expected_rev: str | None) -> Package:
        """Create (``expected_rev=None``) or replace a package; returns it with its new ``rev``."""

    async def delete_package(self, namespace: str, name: str) -> Package | None:
        """Remove and return the package, or None if there was none. Its actions are the caller's business."""

    async def list_packages(
        self, namespace: str, limit: int, skip: int, *, published_only: bool = False
    ) -> list[PackageSummary]:
        """Summaries of a namespace's packages (only ``publish``ed ones if asked), most recently updated first."""

    async def count_packages(self, namespace: str, *, published_only: bool = False) -> int:
        """How many packages (published ones, if asked) the namespace holds."""

    async def get_trigger(self, namespace: str, name: str) -> Trigger | None:
        """The trigger, with its ``rev``, or None."""

    async def put_trigger(self, trigger: Trigger, expected_rev: str | None) -> Trigger:
        """Create (``expected_rev=None``) or replace a trigger; returns it with its new ``rev``."""

    async def delete_trigger(self, namespace: str, name: str) -> Trigger | None:
        """Remove and return the trigger, or None if there was none."""

    async def list_triggers(self, namespace: str, limit: int, skip: int) -> list[TriggerSummary]:
        """Summaries of a namespace's triggers, most recently updated first."""

    async def count_triggers(self, namespace: str) -> int:
        """How many triggers the namespace holds."""

    async def get_rule(self, namespace: str, name: str) -> Rule | None:
        """The rule, with its ``rev``, or None."""

    async def put_rule(self, rule: Rule, expected_rev: str | None) -> Rule:
        """Create (``expected_rev=None``) or replace a rule; returns it with its new ``rev``."""

    async def delete_rule(self, namespace: str, name: str) -> Rule | None:
        """Remove and return the rule, or None if there was none."""

    async def list_rules(self, namespace: str, limit: int, skip: int) -> list[RuleSummary]:
        """Summaries of a namespace's rules, most recently updated first."""

    async def count_rules(self, namespace: str) -> int:
        """How many rules the namespace holds."""


@runtime_checkable
class ActivationStore(Protocol):
    """Activation records: written by invokers (and the balancer for lost ones), read by the API."""

    async def put_activation(self, activation: Activation) -> None:
        """Store a record; a second put of the same id is ignored."""

    async def get_activation(self, namespace: str, activation_id: str) -> Activation | None:
        """One record of the namespace."""

    async def list_activations(self, query: ActivationQuery) -> list[Activation]:
        """Whole records matching the query, newest ``start`` first (``GET .../activations?docs=true``)."""

    async def list_activation_summaries(self, query: ActivationQuery) -> list[ActivationSummary]:
        """Summaries of the records matching the query, newest ``start`` first; results and logs are not
        read."""

    async def count_activations(self, query: ActivationQuery) -> int:
        """How many records match (ignoring limit and skip)."""


@runtime_checkable
class SequenceJournalStore(Protocol):
    """A backend that keeps the sequence journal (controller/sequence_journal.py) apart from the records.

    Every controller scans the journal's entries by deadline every few seconds. In CouchDB that scan is a view
    query, and a view query first indexes every document written since the last one: with the entries among the
    activation records, the scan had pouchdb-server run the activations views' map functions over every record
    (600-1,000 µs of its CPU per warm invoke, docs/benchmarks.md, issue 15). A backend without this (SQLite, whose
    indexes are kept on write) journals among its records.
    """

    @property
    def sequence_journal(self) -> ActivationStore:
        """Where the journal's entries go: an ``ActivationStore`` of their own."""


@runtime_checkable
class ScheduleStore(Protocol):
    """Alarm schedules (``pywhisk.schedules``), one per trigger: written by the alarms feeds, claimed and
    fired by every controller's scheduler. ``put_schedule`` has the entities' optimistic concurrency: with
    ``expected_rev=None`` it creates (``Conflict`` if the trigger has one), otherwise it replaces that revision
    (``ConcurrentModification`` if the stored one moved on or is gone), which is how a tick is claimed once."""

    async def get_schedule(self, namespace: str, name: str) -> Schedule | None:
        """The schedule of trigger ``namespace/name``, with its ``rev``, or None."""

    async def put_schedule(self, schedule: Schedule, expected_rev: str | None) -> Schedule:
        """Create (``expected_rev=None``) or replace a schedule; returns it with its new ``rev``."""

    async def delete_schedule(self, namespace: str, name: str) -> Schedule | None:
        """Remove and return the schedule, or None if there was none."""

    async def due_schedules(self, until_ms: int, limit: int) -> list[Schedule]:
        """Active schedules whose ``next_fire_ms`` is at or before ``until_ms``, earliest first."""


@runtime_checkable
class Store(SubjectStore, EntityStore, ActivationStore, ScheduleStore, Protocol):
    """A whole backend: one object implementing every family, with a lifespan. Callers depend on the
    narrow protocol they use; only the composition root holds a ``Store``."""

    async def start(self) -> None:
        """Open connections and create the schema if needed."""

    async def close(self) -> None:
        """Flush pending writes and close."""
