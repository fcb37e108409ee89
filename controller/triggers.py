"""Firing a trigger: its active rules' actions invoked, and a trigger activation record that says what each did.

As OpenWhisk's ``core/controller/.../controller/Triggers.scala`` (``activate``, ``activateRules``,
``postActivation``, ``RuleActivationResult``), checked against its ``TriggersApiTests.scala``:

- a fire is counted against the namespace's ``firesPerMinute`` before the trigger is read (429 with
  ``Messages.tooManyRequests``, the entitlement's ``triggerRateThrottler``);
- a trigger without an active rule is not fired at all: no record, and the API answers 204;
- otherwise every rule of the trigger gets a line in the record's ``logs``: an active one invokes its action,
  non-blocking, with the trigger's parameters under the fire's payload (the action's own defaults beneath, as
  for any invoke); an inactive one is reported as not activated. Each line is the compact JSON of
  ``{statusCode, success, activationId | error, rule, action}``, the status code 0 (accepted), 1 (refused with a
  4xx: a missing action, a throttle) or 3 (the platform failed: a 5xx);
- the record is the trigger's: ``name`` the trigger, ``response.result`` the fire's payload only (not merged),
  ``end`` 0 (OpenWhisk writes ``Instant.EPOCH``: a trigger does not run), no annotations.

OpenWhisk posts each rule's invoke to its own controller over HTTP, with the firing user's key; here it goes
through the same steps in-process: the invoke's rate throttle, ``resolve_action`` (packages, bindings, another
namespace's published package), and the activator (sequences included). Like OpenWhisk's, the actions' records
carry no ``cause``: the trigger record's logs are the link from a fire to its activations.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson

from controller.activator import Activator
from controller.resolve import CONFORMANCE, resolve_action
from controller.throttles import Throttles
from pywhisk.activation import Activation, ActivationResponse, StatusCode, new_activation_id
from pywhisk.entities import RULE_ACTIVE, ReducedRule, Trigger, as_dict
from pywhisk.errors import Conflict, NotFound, StoreUnavailable, WhiskError
from pywhisk.identity import Identity
from pywhisk.messages import TransactionId
from pywhisk.store import ActivationStore, EntityStore

__all__ = ["TriggerFirer", "missing_entity", "rule_activation_log"]

log = logging.getLogger("pywhisk.controller")

# akka-http's InternalServerError.defaultMessage: what OpenWhisk logs for a rule whose invoke failed unexpectedly.
INTERNAL_SERVER_ERROR = "There was an internal server error."
# controller/app.py answers a store outage with this (503), and a fire's rule reports what the invoke would say.
STORE_UNAVAILABLE = "The service is temporarily unavailable: the database cannot be reached. Try again later."


def trigger_with_inactive_rule(rule: str, action: str) -> str:
    """[OW] Messages.triggerWithInactiveRule."""
    return f"Rule '{rule}' is inactive, action '{action}' was not activated."


class TriggerFirer:
    """Fires triggers for the API (``POST /namespaces/{ns}/triggers/{name}``) and for feeds run inside the
    controller (the alarms scheduler): one ``fire`` for both, so a scheduled fire is throttled, recorded and
    logged exactly as a fire over HTTP."""

    def __init__(
        self, entities: EntityStore, records: ActivationStore, activator: Activator, throttles: Throttles
    ) -> None:
        self._entities = entities
        self._records = records
        self._activator = activator
        self._throttles = throttles

    async def fire(
        self, identity: Identity, namespace: str, name: str, params: dict[str, Any], *, transid: TransactionId
    ) -> str | None:
        """Fire the trigger ``namespace/name`` as ``identity`` with ``params`` (the fire's payload).

        Returns the trigger activation's id, its record stored; None when no rule of the trigger is active
        (nothing fired, nothing recorded: the API's 204). Raises ``TooManyRequests`` over the namespace's
        ``firesPerMinute`` (counted before the trigger is read, a refused fire too), ``NotFound`` for a missing
        trigger (``Conflict`` when the name is another collection's)."""
        self._throttles.check_fires(identity)
        trigger = await self._entities.get_trigger(namespace, name)
        if trigger is None:
            raise await missing_entity(self._entities, namespace, name)
        rules = trigger.rules or {}
        if not any(rule.status == RULE_ACTIVE for rule in rules.values()):
            log.debug("[POST] trigger %s/%s without an active rule was fired: no record", namespace, name)
            return None
        activation_id = new_activation_id()
        start_ms = int(time.time() * 1000)
        # [OW] trigger.parameters.merge(payload): the fire's payload over the trigger's parameters.
        args = {**as_dict(trigger.parameters), **params}
        lines = await asyncio.gather(
            *(self._activate_rule(identity, rule_name, rule, args, transid) for rule_name, rule in rules.items())
        )
        await self._store(_trigger_record(identity, trigger, activation_id, start_ms, params, list(lines)))
        return activation_id

    async def _activate_rule(
        self, identity: Identity, rule_name: str, rule: ReducedRule, args: dict[str, Any], transid: TransactionId
    ) -> str:
        action_name = rule.action.doc_id
        if rule.status != RULE_ACTIVE:
            message = trigger_with_inactive_rule(rule_name, action_name)
            return rule_activation_log(StatusCode.APPLICATION_ERROR, rule_name, action_name, error=message)
        try:
            activation_id = await self._invoke(identity, rule, args, transid)
        except WhiskError as exc:
            # [OW] a 5xx answer is a whisk error, any other refusal an application error; the message is the
            # error answer's.
            status = StatusCode.WHISK_ERROR if exc.status_code >= 500 else StatusCode.APPLICATION_ERROR
            log.debug("trigger-fired action '%s' failed to invoke with %s", action_name, exc.message)
            return rule_activation_log(status, rule_name, action_name, error=exc.message)
        except StoreUnavailable as exc:
            log.error("trigger-fired action '%s' failed to invoke: %s", action_name, exc)
            return rule_activation_log(StatusCode.WHISK_ERROR, rule_name, action_name, error=STORE_UNAVAILABLE)
        except Exception:
            log.exception("trigger-fired action '%s' failed to invoke", action_name)
            return rule_activation_log(StatusCode.WHISK_ERROR, rule_name, action_name, error=INTERNAL_SERVER_ERROR)
        log.debug("trigger-fired action '%s' invoked with activation %s", action_name, activation_id)
        return rule_activation_log(StatusCode.SUCCESS, rule_name, action_name, activation_id=activation_id)

    async def _invoke(self, identity: Identity, rule: ReducedRule, args: dict[str, Any], transid: TransactionId) -> str:
        # What POST /namespaces/{ns}/actions/[{pkg}/]{name} (non-blocking) does, as OpenWhisk's postActivation
        # goes through it: the rate throttle first, then the action, then the activator.
        self._throttles.check_rate(identity)
        action = await resolve_action(self._entities, identity, rule.action.fully_qualified_name)
        activated = await self._activator.activate(identity, action, args, transid=transid, blocking=False)
        return activated.activation_id

    async def _store(self, record: Activation) -> None:
        try:
            await self._records.put_activation(record)
        except StoreUnavailable as exc:  # the rules fired all the same ([OW] logs the failed write and goes on)
            log.error("storing the record of trigger activation %s failed: %s", record.activationId, exc)


def rule_activation_log(
    status: StatusCode, rule: str, action: str, *, activation_id: str | None = None, error: str | None = None
) -> str:
    """One line of a trigger record's ``logs`` ([OW] RuleActivationResult.toJson, compact)."""
    line: dict[str, Any] = {"statusCode": int(status), "success": status == StatusCode.SUCCESS}
    if activation_id is not None:
        line["activationId"] = activation_id
    else:
        line["error"] = error
    line["rule"] = rule
    line["action"] = action
    return orjson.dumps(line).decode()


async def missing_entity(entities: EntityStore, namespace: str, name: str) -> WhiskError:
    """What to answer for ``namespace/name`` missing from a collection: 409 when the name is an entity of
    another collection ([OW] DocumentTypeMismatchException → conformanceMessage), else 404."""
    others = (entities.get_action, entities.get_package, entities.get_trigger, entities.get_rule)
    for get in others:
        if await get(namespace, name) is not None:
            return Conflict(CONFORMANCE)
    return NotFound()


def _trigger_record(
    identity: Identity,
    trigger: Trigger,
    activation_id: str,
    start_ms: int,
    payload: dict[str, Any],
    logs: list[str],
) -> Activation:
    # [OW] Triggers.activate: the record lands in the firing user's namespace, whatever the trigger's;
    # `end` is the epoch and there is no duration (stored as 0 here: the record model's fields are integers).
    return Activation(
        activationId=activation_id,
        namespace=identity.namespace.name,
        name=trigger.name,
        subject=identity.subject,
        version=trigger.version,
        start=start_ms,
        end=0,
        duration=0,
        response=ActivationResponse.of(StatusCode.SUCCESS, payload),
        logs=logs,
    )
