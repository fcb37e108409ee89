"""Conductor actions: compositions the controller runs step by step, as the conductor action decides
([OW] controller/actions/PrimitiveActions.scala ``invokeComposition``, ``invokeConductor``, ``tryInvokeNext``,
``invokeComponent``, ``waitForActivation``, ``completeActivation``; docs/conductors.md).

An action whose ``conductor`` annotation is truthy (not false, 0, null or "") and that is no sequence is a
conductor. Invoking it starts a composition, whose trace is ``conductor (component conductor)*``:

- the conductor action runs (a *secondary* activation) on the invoke's parameters, or later on the last
  component's result with the ``state`` it returned before laid over it;
- its result ``{action, params, state}`` names the next component (``params``, boxed as ``{value}`` when it
  is no object, are its parameters; ``state``, boxed as ``{state}``, is kept for the next conductor step);
  a result without ``action`` ends the composition: its ``params`` (or the whole result) with the conductor
  activation's status is the composition's response;
- a component that cannot be parsed, resolved or reached does not end the composition: the conductor runs
  again on ``{"error": <OpenWhisk's message>}`` (and usually ends it, as an application error);
- a component is an action, a sequence (run inline, counted as one component) or a conductor (a nested
  composition sharing this one's counts); any of its results, errors included, goes back to the conductor.
  Only a platform failure (no record in time, the bus refusing; and, unlike OpenWhisk, which reports any
  failure to resolve as "not found", the store being unreachable) ends the composition, as a whisk error.

Limits, shared by nested compositions: at most ``ACTION_SEQUENCE_LIMIT`` (n = 50) components; a component
beyond is refused to the conductor as ``{"error": "Too many actions in the composition."}``, and a
conductor step beyond 2n + 1 ends the composition with that error.

The composition's own (*primary*) record is written by the controller when it ends:

    logs         the ids of the secondary and component activations, in order (a nested composition or
                 sequence appears as its own id only)
    duration     the sum of their durations
    cause        the enclosing composition or sequence, if any
    annotations  topmost, path, kind "sequence", conductor true, [causedBy "sequence"], limits (the
                 conductor's, with the largest memory of the conductor and every component)

and every secondary and component activation has ``cause`` = the composition's id and ``causedBy: sequence``.

Throttles count a composition once (the rate by the route, the concurrency here); its steps are not checked
again. A blocking caller whose wait runs out gets the id (202) and the composition goes on; nested ones are
waited for whatever their wait. As for sequences, a topmost composition is journalled before it runs
(``controller.sequence_journal``), so that one whose controller dies is recorded as a whisk internal error
once its deadline passed; the journal's scan is run by the ``SequenceRunner`` that owns it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

import orjson

from controller.activator import Activated, Activator, merged_params
from controller.resolve import resolve_action
from controller.sequence_journal import RunningCompositions, SequenceJournal
from controller.sequences import ACTION_SEQUENCE_LIMIT, SEQUENCE_KIND, SequenceRunner
from pywhisk.activation import Activation, ActivationResponse, StatusCode, new_activation_id
from pywhisk.entities import TIMEOUT_MS, Action, FullyQualifiedName, KeyValue, Limits
from pywhisk.errors import BadRequest, Forbidden, StoreUnavailable, WhiskError
from pywhisk.identity import Identity
from pywhisk.messages import TransactionId
from pywhisk.store import ActivationStore, EntityStore

log = logging.getLogger("pywhisk.controller.conductors")

CONDUCTOR_ANNOTATION = "conductor"

# [OW] common/scala/.../http/ErrorResponse.scala, Messages ("Error messages for compositions").
COMPOSITION_IS_TOO_LONG = "Too many actions in the composition."
COMPOSITION_ACTIVATION_FAILURE = "Activation failure during composition."
# Ours: the journal's record for a composition whose controller died (OpenWhisk writes none).
COMPOSITION_LOST = "The composition did not complete: the controller running it stopped responding."


def composition_activation_timeout(activation_id: str) -> str:
    return f"Timeout reached when retrieving activation {activation_id} during composition."


def composition_component_invalid(value: Any) -> str:
    # Scala prints the JsValue compactly: a string keeps its quotes.
    return f"Failed to parse action name from json value {orjson.dumps(value).decode()} during composition."


def composition_component_not_found(name: str) -> str:
    return f"Failed to resolve action with name '{name}' during composition."


def composition_component_not_accessible(name: str) -> str:
    return f"Failed entitlement check for action with name '{name}' during composition."


def is_conductor(action: Action) -> bool:
    """A conductor action: a truthy ``conductor`` annotation, and no sequence ([OW] ``isTruthy``; "the
    conductor annotation on a sequence has no effect")."""
    return action.exec.kind != SEQUENCE_KIND and _is_truthy(action.annotation(CONDUCTOR_ANNOTATION))


class ConductorRunner:
    """Runs compositions in the controller: ``invoke`` starts one and, for a blocking caller, waits for its
    record. A service of the controller's lifespan: ``close`` cancels the compositions still running (each
    records itself as a whisk internal error) and waits for them."""

    def __init__(
        self,
        entities: EntityStore,
        records: ActivationStore,
        activator: Activator,
        sequences: SequenceRunner,
        journal: SequenceJournal,
    ) -> None:
        self._entities = entities
        self._records = records
        self._activator = activator
        self._sequences = sequences
        self._journal = journal
        self._running = RunningCompositions(journal)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        await self._running.cancel_all()

    def runs(self, action: Action) -> bool:
        """Whether invoking ``action`` starts a composition."""
        return is_conductor(action)

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
        cause: str | None = None,
    ) -> Activated:
        """Start the composition of conductor ``action`` on ``params``; 400 for ``final`` parameters overridden,
        429 over the concurrency limit. A blocking caller gets the record if it ends within ``wait_ms``.

        With ``cause`` (the id of the sequence it is a component of) it runs to its end whatever the wait, as
        OpenWhisk ignores the wait of a composition that is not topmost, and is not throttled or journalled."""
        merged_params(action, params)  # only for its check of ``final`` parameters, before anything runs
        composition_id = activation_id or new_activation_id()
        if cause is not None:
            record = await self._run(identity, action, params, composition_id, transid, cause, _Accounting())
            return Activated(composition_id, record)
        self._activator.check_concurrent(identity)
        # Journalled before it is accepted: a composition that runs is one that will end with a record.
        lost = _Session(composition_id, time.time() * 1000, action, None, _Accounting())
        lost_record = self._record(identity, lost, ActivationResponse.error(StatusCode.WHISK_ERROR, COMPOSITION_LOST))
        deadline_ms = int(lost.start_ms) + _deadline_ms(self._journal.timeout_addon_ms)
        run = self._run(identity, action, params, composition_id, transid, None, _Accounting())
        name = f"composition {composition_id}"
        return await self._running.start(
            composition_id, lost_record, deadline_ms, run, name=name, blocking=blocking, wait_ms=wait_ms
        )

    async def _run(
        self,
        identity: Identity,
        action: Action,
        params: dict[str, Any] | list[Any] | None,
        composition_id: str,
        transid: TransactionId,
        cause: str | None,
        accounting: _Accounting,
    ) -> Activation:
        """Run the composition and write its record (also when cancelled or failed) ([OW] invokeComposition)."""
        session = _Session(composition_id, time.time() * 1000, action, cause, accounting)
        log.info("invoking composition %s topmost %s activation id %s", action.path, cause is None, composition_id)
        try:
            response = await self._compose(identity, session, params, transid)
        except asyncio.CancelledError:
            log.warning("composition %s was cancelled; recording it as a whisk internal error", composition_id)
            failed = ActivationResponse.error(StatusCode.WHISK_ERROR, COMPOSITION_ACTIVATION_FAILURE)
            await asyncio.shield(self._store(self._record(identity, session, failed)))
            raise
        except Exception:
            log.exception("composition %s failed", composition_id)
            response = ActivationResponse.error(StatusCode.WHISK_ERROR, COMPOSITION_ACTIVATION_FAILURE)
        record = self._record(identity, session, response)
        await self._store(record)
        return record

    async def _compose(
        self,
        identity: Identity,
        session: _Session,
        params: dict[str, Any] | list[Any] | None,
        transid: TransactionId,
    ) -> ActivationResponse:
        """The conductor/component loop; the composition's response ([OW] invokeConductor, tryInvokeNext)."""
        payload = params
        while True:
            if session.accounting.conductors > 2 * ACTION_SEQUENCE_LIMIT:
                return ActivationResponse.error(StatusCode.APPLICATION_ERROR, COMPOSITION_IS_TOO_LONG)
            session.accounting.conductors += 1
            step = await self._waited(
                session, self._activate(identity, session.action, _with_state(payload, session), session, transid)
            )
            if isinstance(step, ActivationResponse):
                return step
            result = step.response.result
            if not isinstance(result, dict):  # nothing to continue with: the step's response ends it
                return step.response
            component_params = _boxed(result["params"], "value") if "params" in result else None
            session.state = _boxed(result["state"], "state") if "state" in result else None
            if "action" not in result:
                return ActivationResponse.of(
                    StatusCode(step.response.statusCode), component_params if component_params is not None else result
                )
            next_action = result["action"]
            name = _parse_action_name(next_action, identity.namespace.name)
            if name is None:
                payload = {"error": composition_component_invalid(next_action)}
                continue
            if session.accounting.components >= ACTION_SEQUENCE_LIMIT:
                payload = {"error": COMPOSITION_IS_TOO_LONG}
                continue
            qualified = f"{name.path}/{name.name}"  # [OW] FullyQualifiedEntityName.asString: no leading slash
            try:
                component = await resolve_action(self._entities, identity, name)
            except Forbidden:
                payload = {"error": composition_component_not_accessible(qualified)}
                continue
            except WhiskError:  # missing, or the "package" is an action
                payload = {"error": composition_component_not_found(qualified)}
                continue
            except StoreUnavailable as exc:  # not the conductor's doing: ours, as a failed activation
                log.warning("resolving %s for composition %s failed: %s", qualified, session.activation_id, exc)
                return ActivationResponse.error(StatusCode.WHISK_ERROR, COMPOSITION_ACTIVATION_FAILURE)
            step = await self._waited(session, self._component(identity, component, component_params, session, transid))
            if isinstance(step, ActivationResponse):
                return step
            payload = step.response.result if isinstance(step.response.result, dict | list) else None

    async def _activate(
        self,
        identity: Identity,
        action: Action,
        payload: dict[str, Any] | list[Any] | None,
        session: _Session,
        transid: TransactionId,
    ) -> Activated:
        # An activation of the action itself, even for the conductor: each its own transaction start, and the
        # wait of a component of a sequence ([OW] invokeSimpleAction with cause, timeout + 1 minute).
        child = TransactionId(id=transid.id, start_ms=time.time() * 1000)
        return await self._activator.activate(
            identity,
            action,
            payload,
            transid=child,
            blocking=True,
            wait_ms=action.limits.timeout + self._journal.timeout_addon_ms,
            component_of=session.activation_id,
            conductor_step=True,
        )

    async def _component(
        self,
        identity: Identity,
        component: Action,
        payload: dict[str, Any] | None,
        session: _Session,
        transid: TransactionId,
    ) -> Activated:
        """Run one component ([OW] invokeComponent): a nested composition shares the counts and adds its own
        conductor steps; a sequence counts as one component whatever its length."""
        child = TransactionId(id=transid.id, start_ms=time.time() * 1000)
        if is_conductor(component):
            inner_id = new_activation_id()
            record = await self._run(
                identity, component, payload, inner_id, child, session.activation_id, session.accounting
            )
            return Activated(inner_id, record)
        session.accounting.components += 1
        if component.exec.kind == SEQUENCE_KIND:
            return await self._sequence(identity, component, payload, session.activation_id, child)
        return await self._activate(identity, component, payload, session, transid)

    async def _sequence(
        self,
        identity: Identity,
        sequence: Action,
        payload: dict[str, Any] | None,
        cause: str,
        transid: TransactionId,
    ) -> Activated:
        # Inline, as a sequence inside a sequence ([OW] invokeSequence with cause, not topmost).
        return await self._sequences.run_nested(identity, sequence, payload, cause=cause, transid=transid)

    async def _waited(self, session: _Session, step: Awaitable[Activated]) -> Activation | ActivationResponse:
        """The record of a step, accounted in the session; or the response ending the composition when it
        failed or did not come in time ([OW] waitForActivation)."""
        try:
            activated = await step
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # e.g. the bus refused it: nothing ran
            log.warning("a step of composition %s failed: %s", session.activation_id, exc)
            return ActivationResponse.error(StatusCode.WHISK_ERROR, COMPOSITION_ACTIVATION_FAILURE)
        session.logs.append(activated.activation_id)
        record = activated.record
        if record is None:
            log.error("activation %s of composition %s timed out", activated.activation_id, session.activation_id)
            message = composition_activation_timeout(activated.activation_id)
            return ActivationResponse.error(StatusCode.WHISK_ERROR, message)
        session.duration += record.duration
        limits = record.annotation("limits")
        if isinstance(limits, dict) and isinstance(limits.get("memory"), int):
            session.max_memory = max(session.max_memory, limits["memory"])
        return record

    def _record(self, identity: Identity, session: _Session, response: ActivationResponse) -> Activation:
        # [OW] completeActivation, annotations in its order; no waitTime (OpenWhisk writes none for compositions).
        conductor = session.action
        annotations = [
            KeyValue(key="topmost", value=session.cause is None),
            KeyValue(key="path", value=conductor.path),
            KeyValue(key="kind", value=SEQUENCE_KIND),
            KeyValue(key=CONDUCTOR_ANNOTATION, value=True),
        ]
        if session.cause is not None:
            annotations.append(KeyValue(key="causedBy", value=SEQUENCE_KIND))
        limits = Limits(timeout=conductor.limits.timeout, memory=session.max_memory, logs=conductor.limits.logs)
        annotations.append(KeyValue(key="limits", value=limits.model_dump()))
        return Activation(
            activationId=session.activation_id,
            namespace=identity.namespace.name,
            name=conductor.name,
            subject=identity.subject,
            version=conductor.version,
            start=int(session.start_ms),
            end=max(int(session.start_ms), int(time.time() * 1000)),
            duration=session.duration,
            cause=session.cause,
            response=response,
            logs=list(session.logs),
            annotations=annotations,
        )

    async def _store(self, record: Activation) -> None:
        try:
            await self._records.put_activation(record)
        except StoreUnavailable as exc:  # the caller still gets the record; a poll later finds nothing
            log.error("storing the record of composition %s failed: %s", record.activationId, exc)


@dataclass
class _Accounting:
    """Steps run so far, shared with nested compositions so the limits are global ([OW] CompositionAccounting)."""

    components: int = 0
    conductors: int = 0


@dataclass
class _Session:
    """One composition's run, not shared with nested ones ([OW] Session)."""

    activation_id: str
    start_ms: float
    action: Action
    cause: str | None
    accounting: _Accounting
    duration: int = 0
    max_memory: int = 0
    state: dict[str, Any] | None = None
    logs: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.max_memory = max(self.max_memory, self.action.limits.memory)


def _deadline_ms(addon_ms: int) -> int:
    """How long a composition can run: 2n + 1 conductor steps and n components, any of them as long as an
    action may be and each component possibly a sequence of n actions, and a margin. Days, not minutes: a
    composition lost with its controller is recorded late, never while it still runs."""
    longest_ms = TIMEOUT_MS.maximum + addon_ms
    steps = 2 * ACTION_SEQUENCE_LIMIT + 1 + ACTION_SEQUENCE_LIMIT * ACTION_SEQUENCE_LIMIT
    return addon_ms + steps * longest_ms


def _with_state(payload: dict[str, Any] | list[Any] | None, session: _Session) -> dict[str, Any] | list[Any] | None:
    # [OW] invokeConductor: the state's fields over the payload's.
    if session.state is None:
        return payload
    return {**(payload if isinstance(payload, dict) else {}), **session.state}


def _boxed(value: Any, key: str) -> dict[str, Any]:
    return value if isinstance(value, dict) else {key: value}


def _parse_action_name(value: Any, namespace: str) -> FullyQualifiedName | None:
    # [OW] FullyQualifiedEntityName.resolveName: a string naming an action, in the caller's namespace if relative.
    if not isinstance(value, str):
        return None
    try:
        return FullyQualifiedName.parse(value, namespace)
    except BadRequest:
        return None


def _is_truthy(value: Any) -> bool:
    # [OW] Parameters.isTruthy: JavaScript's notion, absent meaning false.
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str):
        return value != ""
    return value is not None
