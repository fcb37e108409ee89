"""Sequences: checked when they are created, run by the controller component after component
([OW] controller/Actions.scala ``checkSequenceActionLimits``, controller/actions/SequenceActions.scala).

A sequence is an action of kind ``sequence`` whose ``exec.components`` are fully qualified action names, stored
as given with ``_`` replaced by the caller's namespace (not resolved through bindings: a binding changed later
changes what the sequence runs). Creating or updating one checks, in OpenWhisk's order and words: at most 50
components, at least one, every component (resolved through bindings, and inlined when it is a sequence itself)
exists, none is the sequence itself, and the inlined count of atomic actions is at most 50.

Running one is the controller's work, never an invoker's. Each component is an ordinary blocking activation
(``Activator.activate`` with ``component_of``: its record has ``cause`` and ``causedBy: sequence``) and the
result of one is the parameters of the next; a component that is a sequence runs inline, as a sequence whose
record has ``cause`` too. The first result with an ``error`` field stops the sequence and is its response. The
sequence's own record is written by the controller once the last component ended:

    logs      the component activation ids, in order
    duration  the sum of the components' durations (not the wall time: the time the user pays for)
    annotations  topmost, path, kind "sequence", [causedBy], waitTime, [limits: the sequence's with the
                 largest memory of its components]

Throttles count the sequence once, as OpenWhisk's entitlement check (the rate by the route, the concurrency
here, before the first component); the components are not checked again but are in flight like any other.
A blocking caller whose wait runs out gets the sequence's id (202) and the sequence goes on; non-blocking
invokes answer at once. Runs are tasks owned by the ``SequenceRunner``; closing it cancels them, and each
cancelled sequence still records itself as a whisk internal error.

What is not covered: a controller that dies mid-sequence leaves no sequence record (as in OpenWhisk); its
components that ran have theirs, with ``cause`` naming it (see docs/sequences.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from controller.activator import Activated, Activator, merged_params
from controller.resolve import resolve_action
from controller.sequence_journal import RunningCompositions, SequenceJournal, lost_response
from pywhisk.activation import Activation, ActivationResponse, StatusCode, new_activation_id
from pywhisk.entities import TIMEOUT_MS, Action, ActionPut, Exec, FullyQualifiedName, KeyValue, Limits
from pywhisk.errors import BadRequest, Conflict, NotFound, StoreUnavailable
from pywhisk.identity import Identity
from pywhisk.messages import TransactionId
from pywhisk.store import ActivationStore, EntityStore

log = logging.getLogger("pywhisk.controller.sequences")

SEQUENCE_KIND = "sequence"
# [OW] whisk.properties / application.conf ``actionSequenceLimit``: atomic actions in an inlined sequence.
ACTION_SEQUENCE_LIMIT = 50
# A component's blocking wait: its own time limit and a minute more ([OW] SequenceActions.invokeNextAction).

# [OW] common/scala/.../http/ErrorResponse.scala, Messages.
SEQUENCE_IS_TOO_LONG = "Too many actions in the sequence."
SEQUENCE_NO_COMPONENT = "No component specified for the sequence."
SEQUENCE_IS_CYCLIC = "Sequence may not refer to itself."
SEQUENCE_COMPONENT_NOT_FOUND = "Sequence component does not exist."
SEQUENCE_ACTIVATION_FAILURE = "Sequence failed."


def sequence_retrieve_activation_timeout(activation_id: str) -> str:
    return f"Timeout reached when retrieving activation {activation_id} for sequence component."


# creating ----------------------------------------------------------------------------------------------------


async def checked_sequence_action(
    entities: EntityStore, identity: Identity, action: Action, content: ActionPut, existing: Action | None
) -> Action:
    """``action`` as ``PUT .../actions`` built it from ``content`` (over ``existing``, the action it replaces),
    made what OpenWhisk stores for a sequence: the checked components (400 with OpenWhisk's message when they
    are not acceptable) and the ``_actions`` parameter. An action that is and stays no sequence comes back
    unchanged ([OW] Actions.scala ``makeWhiskAction``, ``updateWhiskAction``: a sequence's parameters are its
    components; updated without an ``exec`` it keeps them; made an ordinary action it does not inherit them).
    """
    was_sequence = existing is not None and existing.exec.kind == SEQUENCE_KIND
    if content.exec is not None and content.exec.kind == SEQUENCE_KIND:
        exec_ = await checked_sequence_exec(entities, identity, _name_of(action), content.exec)
        parameters = [KeyValue(key="_actions", value=list(exec_.components or []))]
        return action.model_copy(update={"exec": exec_, "parameters": parameters})
    if existing is not None and was_sequence:
        parameters = existing.parameters if content.exec is None else content.parameters or []
        return action.model_copy(update={"parameters": parameters})
    return action


async def checked_sequence_exec(
    entities: EntityStore, identity: Identity, sequence: FullyQualifiedName, exec_: Exec
) -> Exec:
    """The ``exec`` of sequence ``sequence`` as stored: ``{kind: sequence, components: ["/ns[/pkg]/name", ...]}``
    with ``_`` resolved. 400 when there are none or more than 50, when one is missing, when one is the sequence
    itself (directly, through a binding or through another sequence), or when the inlined sequence holds more
    than 50 atomic actions; 403 for a component the caller may not read."""
    if exec_.components is None:
        raise BadRequest("The request content was malformed:\n'components' must be defined for sequence kind")
    if len(exec_.components) > ACTION_SEQUENCE_LIMIT:
        raise BadRequest(SEQUENCE_IS_TOO_LONG)
    if not exec_.components:
        raise BadRequest(SEQUENCE_NO_COMPONENT)
    components = [FullyQualifiedName.parse(c, identity.namespace.name) for c in exec_.components]
    count = await _count_atomic_actions(entities, identity, sequence, components, depth=0)
    if count > ACTION_SEQUENCE_LIMIT:
        raise BadRequest(SEQUENCE_IS_TOO_LONG)
    return Exec(kind=SEQUENCE_KIND, components=[str(c) for c in components])


async def _count_atomic_actions(
    entities: EntityStore,
    identity: Identity,
    sequence: FullyQualifiedName,
    components: Sequence[FullyQualifiedName],
    depth: int,
) -> int:
    # [OW] Actions.countAtomicActionsAndCheckCycle: inline every sequence component and count its atomic
    # actions; a component resolving to the sequence being written is a cycle. Any new cycle passes through
    # that sequence, so this finds it; the depth bound only guards against one stored by a race of updates.
    if len(components) > ACTION_SEQUENCE_LIMIT or depth > ACTION_SEQUENCE_LIMIT:
        raise BadRequest(SEQUENCE_IS_TOO_LONG)
    try:
        resolved = await asyncio.gather(*(resolve_action(entities, identity, c) for c in components))
    except (NotFound, Conflict):  # Conflict: the "package" is an action (no such package, so no component)
        raise BadRequest(SEQUENCE_COMPONENT_NOT_FOUND) from None
    count = 0
    for action in resolved:
        if _name_of(action) == sequence:
            raise BadRequest(SEQUENCE_IS_CYCLIC)
        if action.exec.kind == SEQUENCE_KIND:
            inner = [FullyQualifiedName.parse(c, identity.namespace.name) for c in action.exec.components or []]
            count += await _count_atomic_actions(entities, identity, sequence, inner, depth + 1)
        else:
            count += 1
    return count


def _name_of(action: Action) -> FullyQualifiedName:
    namespace, _, package = action.namespace.partition("/")
    return FullyQualifiedName(namespace=namespace, package=package or None, name=action.name)


# running -----------------------------------------------------------------------------------------------------


def _deadline_ms(components: list[Action | Exception], addon_ms: int) -> int:
    """How long a sequence of ``components`` can run: each component its time limit and the runner's wait
    beyond it (``addon_ms``), an inner sequence as many of the longest as a sequence may hold, and a margin."""
    longest_ms = TIMEOUT_MS.maximum + addon_ms
    total = addon_ms
    for component in components:
        if isinstance(component, Action):
            if component.exec.kind == SEQUENCE_KIND:
                total += ACTION_SEQUENCE_LIMIT * longest_ms
            else:
                total += component.limits.timeout + addon_ms
    return total


@dataclass
class _Accounting:
    """What a sequence has done so far ([OW] SequenceActions ``SequenceAccounting``)."""

    atomic_actions: int
    response: ActivationResponse | None = None
    logs: list[str] = field(default_factory=list)
    duration: int = 0
    max_memory: int | None = None

    def add(self, record: Activation) -> None:
        self.logs.append(record.activationId)
        self.duration += record.duration
        self.response = record.response
        limits = record.annotation("limits")
        if isinstance(limits, dict) and isinstance(limits.get("memory"), int):
            self.max_memory = max(self.max_memory or 0, limits["memory"])

    def fail(self, response: ActivationResponse, activation_id: str | None = None) -> None:
        if activation_id is not None:
            self.logs.append(activation_id)
        self.response = response


class SequenceRunner:
    """Runs sequences in the controller: ``invoke`` starts one and, for a blocking caller, waits for its record.

    A service of the controller's lifespan: ``close`` cancels the sequences still running (each records itself
    as a whisk internal error) and waits for them. Each topmost sequence is journalled before it runs, so that
    one whose controller dies is recorded by another (``controller.sequence_journal``).
    """

    def __init__(
        self, entities: EntityStore, records: ActivationStore, activator: Activator, journal: SequenceJournal
    ) -> None:
        self._entities = entities
        self._records = records
        self._activator = activator
        self._journal = journal
        self._running = RunningCompositions(journal)

    async def start(self) -> None:
        await self._journal.start()

    async def close(self) -> None:
        await self._running.cancel_all()
        await self._journal.close()

    async def invoke(
        self,
        identity: Identity,
        action: Action,
        params: dict[str, Any] | list[Any] | None,
        *,
        transid: TransactionId,
        blocking: bool,
        wait_ms: int = 0,
        activation_id: str | None = None,
    ) -> Activated:
        """Start the sequence ``action`` with the invoke's ``params`` (its own parameters are its components,
        never passed on); 403 for a component the caller may no longer reach, 429 over the concurrency limit.
        A blocking caller gets the record if the sequence ends within ``wait_ms``."""
        merged_params(action, params)  # only for its check of ``final`` parameters
        components = await self._resolve(identity, action)
        for component in components:
            if isinstance(component, Exception) and not isinstance(component, NotFound | Conflict):
                raise component  # not the caller's to run ([OW] entitleReferencedEntitiesMetaData, ACTIVATE)
        self._activator.check_concurrent(identity)
        sequence_id = activation_id or new_activation_id()
        # Journalled before it is accepted: a sequence that runs is one that will end with a record.
        start_ms = time.time() * 1000
        lost = _Accounting(0, response=lost_response())
        lost_record = self._record(identity, action, sequence_id, transid, lost, start_ms, cause=None)
        deadline_ms = int(start_ms) + _deadline_ms(components, self._journal.timeout_addon_ms)
        run = self._run_topmost(identity, action, components, params, sequence_id, transid)
        name = f"sequence {sequence_id}"
        return await self._running.start(
            sequence_id, lost_record, deadline_ms, run, name=name, blocking=blocking, wait_ms=wait_ms
        )

    async def run_nested(
        self,
        identity: Identity,
        sequence: Action,
        params: dict[str, Any] | list[Any] | None,
        *,
        cause: str,
        transid: TransactionId,
    ) -> Activated:
        """Run ``sequence`` inline as a step of another composition (a conductor's component): not topmost, its
        record caused by ``cause``, its own count of atomic actions ([OW] invokeSequence with a cause)."""
        components = await self._resolve(identity, sequence)
        sequence_id = new_activation_id()
        record, _ = await self._run(
            identity, sequence, components, params, sequence_id, transid, cause=cause, atomic_actions=0
        )
        return Activated(sequence_id, record)

    async def _resolve(self, identity: Identity, sequence: Action) -> list[Action | Exception]:
        # Every component at once, as OpenWhisk fetches them speculatively: the first runs as soon as all are read.
        names = [FullyQualifiedName.parse(c, identity.namespace.name) for c in sequence.exec.components or []]
        resolved = await asyncio.gather(
            *(resolve_action(self._entities, identity, name) for name in names), return_exceptions=True
        )
        return [r if isinstance(r, Action | Exception) else RuntimeError(str(r)) for r in resolved]

    async def _run_topmost(
        self,
        identity: Identity,
        sequence: Action,
        components: list[Action | Exception],
        params: dict[str, Any] | list[Any] | None,
        sequence_id: str,
        transid: TransactionId,
    ) -> Activation:
        record, _ = await self._run(
            identity, sequence, components, params, sequence_id, transid, cause=None, atomic_actions=0
        )
        return record

    async def _run(
        self,
        identity: Identity,
        sequence: Action,
        components: list[Action | Exception],
        params: dict[str, Any] | list[Any] | None,
        sequence_id: str,
        transid: TransactionId,
        *,
        cause: str | None,
        atomic_actions: int,
    ) -> tuple[Activation, int]:
        """Run the components in order and write the sequence's record (also when cancelled); the record and
        the count of atomic actions run since the topmost sequence started."""
        start_ms = time.time() * 1000
        accounting = _Accounting(atomic_actions)
        try:
            await self._run_components(identity, components, params, sequence_id, transid, accounting)
        except asyncio.CancelledError:
            log.warning("sequence %s was cancelled; recording it as a whisk internal error", sequence_id)
            accounting.fail(ActivationResponse.error(StatusCode.WHISK_ERROR, SEQUENCE_ACTIVATION_FAILURE))
            record = self._record(identity, sequence, sequence_id, transid, accounting, start_ms, cause)
            await asyncio.shield(self._store(record))
            raise
        record = self._record(identity, sequence, sequence_id, transid, accounting, start_ms, cause)
        await self._store(record)
        return record, accounting.atomic_actions

    async def _run_components(
        self,
        identity: Identity,
        components: list[Action | Exception],
        params: dict[str, Any] | list[Any] | None,
        sequence_id: str,
        transid: TransactionId,
        accounting: _Accounting,
    ) -> None:
        payload = params
        for component in components:
            if accounting.atomic_actions >= ACTION_SEQUENCE_LIMIT:
                accounting.fail(ActivationResponse.error(StatusCode.APPLICATION_ERROR, SEQUENCE_IS_TOO_LONG))
                return
            if isinstance(component, NotFound | Conflict):
                accounting.fail(ActivationResponse.error(StatusCode.APPLICATION_ERROR, SEQUENCE_COMPONENT_NOT_FOUND))
                return
            try:
                if isinstance(component, Exception):
                    raise component
                record = await self._run_component(identity, component, payload, sequence_id, transid, accounting)
            except Exception as exc:  # the platform failed this component (e.g. the bus refused it)
                log.warning("a component of sequence %s failed: %s", sequence_id, exc)
                accounting.fail(ActivationResponse.error(StatusCode.WHISK_ERROR, SEQUENCE_ACTIVATION_FAILURE))
                return
            if record is None:
                return
            accounting.add(record)
            result = record.response.result
            if isinstance(result, dict) and "error" in result:
                return  # [OW] SequenceAccounting.maybe: an error field ends the sequence, as its response
            payload = result if isinstance(result, dict | list) else None

    async def _run_component(
        self,
        identity: Identity,
        component: Action,
        payload: dict[str, Any] | list[Any] | None,
        sequence_id: str,
        transid: TransactionId,
        accounting: _Accounting,
    ) -> Activation | None:
        """The component's record (None, and the accounting failed, when it did not come in time)."""
        # Each component has its own transaction start ([OW] TransactionId.childOf): now.
        child = TransactionId(id=transid.id, start_ms=time.time() * 1000)
        if component.exec.kind == SEQUENCE_KIND:
            inner = await self._resolve(identity, component)
            inner_id = new_activation_id()
            record, accounting.atomic_actions = await self._run(
                identity,
                component,
                inner,
                payload,
                inner_id,
                child,
                cause=sequence_id,
                atomic_actions=accounting.atomic_actions,
            )
            return record
        wait_ms = component.limits.timeout + self._journal.timeout_addon_ms
        activated = await self._activator.activate(
            identity, component, payload, transid=child, blocking=True, wait_ms=wait_ms, component_of=sequence_id
        )
        accounting.atomic_actions += 1
        if activated.record is None:
            log.error("component activation %s of sequence %s timed out", activated.activation_id, sequence_id)
            message = sequence_retrieve_activation_timeout(activated.activation_id)
            accounting.fail(ActivationResponse.error(StatusCode.WHISK_ERROR, message), activated.activation_id)
        return activated.record

    def _record(
        self,
        identity: Identity,
        sequence: Action,
        sequence_id: str,
        transid: TransactionId,
        accounting: _Accounting,
        start_ms: float,
        cause: str | None,
    ) -> Activation:
        # [OW] SequenceActions.makeSequenceActivation, annotations in its order.
        annotations = [
            KeyValue(key="topmost", value=cause is None),
            KeyValue(key="path", value=sequence.path),
            KeyValue(key="kind", value=SEQUENCE_KIND),
        ]
        if cause is not None:
            annotations.append(KeyValue(key="causedBy", value=SEQUENCE_KIND))
        annotations.append(KeyValue(key="waitTime", value=max(0, round(start_ms - transid.start_ms))))
        if accounting.max_memory is not None:
            limits = Limits(timeout=sequence.limits.timeout, memory=accounting.max_memory, logs=sequence.limits.logs)
            annotations.append(KeyValue(key="limits", value=limits.model_dump()))
        response = accounting.response or ActivationResponse.of(StatusCode.SUCCESS, None)
        return Activation(
            activationId=sequence_id,
            namespace=identity.namespace.name,
            name=sequence.name,
            subject=identity.subject,
            version=sequence.version,
            start=int(start_ms),
            end=int(time.time() * 1000),
            duration=accounting.duration,
            cause=cause,
            response=response,
            logs=accounting.logs,
            annotations=annotations,
        )

    async def _store(self, record: Activation) -> None:
        try:
            await self._records.put_activation(record)
        except StoreUnavailable as exc:  # the caller still gets the record; a poll later finds nothing
            log.error("storing the record of sequence %s failed: %s", record.activationId, exc)
