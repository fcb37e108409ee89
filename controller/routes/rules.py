"""``/namespaces/{ns}/rules``: create, update, get, list, delete, enable and disable rules.

As OpenWhisk's ``core/controller/.../controller/Rules.scala`` (with ``WhiskRule.scala``), checked against its
``RulesApiTests.scala``. A rule's status lives in its trigger (OpenWhisk's design): the trigger document keeps
``rules: {"ns/rule": {"action", "status"}}``, so a fire reads one document. Hence:

- ``PUT`` (create) needs ``trigger`` and ``action``, fully qualified (``/ns/t``, ``ns/t``, ``/_/t``, or
  ``{"path", "name"}``); the caller must be entitled to read both (the trigger its own, the action its own or in
  a package it may read: another namespace's published one, or through its own binding of it: 403 otherwise),
  and both must exist (400 ``trigger /ns/t does not exist``, ``action /ns/a does not exist``). The rule is
  stored with the names as given and linked, ``active``, into its trigger.
- ``PUT ?overwrite=true`` (update) keeps the rule's status, moves its entry when the trigger changes, and
  checks the (new or old) trigger and action exist the same way.
- ``GET`` answers the rule with ``status`` from its trigger: ``inactive`` when the trigger is gone or does not
  list it. ``DELETE`` unlinks and deletes it, active or not (answered ``inactive``).
- ``POST {"status": "active"|"inactive"}``: 200 whether it changed or already was so (OpenWhisk completes
  both with ``OK``); enabling a rule whose trigger is gone is 404 ``Only rules with existing triggers can be
  activated``. The action is not checked then ([OW] "deferred to trigger activation"): a fire reports a
  deleted action in its record's logs.

Every write of a trigger's ``rules`` is a read-modify-write on its ``rev``, retried when another writer came
first (two rules of one trigger enabled at once both land).
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse
from pydantic import ValidationError

from controller.auth import authenticate, entitled_namespace
from controller.query import flag, json_body, list_limit, list_skip
from controller.resolve import not_authorized, resolve_action
from controller.responses import JSONResponse
from controller.routes.packages import MAX_PARAMETERS_BYTES, EntityTooBig
from controller.triggers import missing_entity
from pywhisk.entities import (
    RULE_ACTIVE,
    RULE_INACTIVE,
    EntityRef,
    KeyValue,
    ReducedRule,
    Rule,
    RulePut,
    Trigger,
    bump_patch,
    now_ms,
    validate_name,
)
from pywhisk.errors import BadRequest, ConcurrentModification, Conflict, Forbidden, NotFound
from pywhisk.identity import Identity
from pywhisk.store import EntityStore

router = APIRouter()

RULE_PUT_SCHEMA = {"requestBody": {"content": {"application/json": {"schema": RulePut.model_json_schema()}}}}
RULE_STATUS_SCHEMA = {
    "requestBody": {
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["status"],
                    "properties": {"status": {"type": "string", "enum": [RULE_ACTIVE, RULE_INACTIVE]}},
                }
            }
        }
    }
}

MALFORMED = "The request content was malformed:\n"
# [OW] Messages.malformedFullyQualifiedEntityName, as FullyQualifiedEntityName.serdesAsDocId's `require` says it.
MALFORMED_NAME = (
    "requirement failed: The fully qualified name of the entity must contain at least the namespace and the name "
    "of the entity."
)
RULE_NEEDS_TRIGGER_AND_ACTION = "rule requires a valid trigger and a valid action"
ONLY_RULES_WITH_EXISTING_TRIGGERS = "Only rules with existing triggers can be activated"
_ENTITY_NAME = re.compile(r"\A([\w]|[\w][\w@ .&-]{0,254}[\w@.&-])\Z", re.ASCII)
_LINK_ATTEMPTS = 10  # read-modify-write of a trigger's rules, retried on a concurrent write


@router.get("/namespaces/{namespace}/rules")
@router.get("/namespaces/{namespace}/rules/", include_in_schema=False)  # [OW] pathEndOrSingleSlash
async def list_rules(request: Request, namespace: str, identity: Identity = Depends(authenticate)) -> JSONResponse:
    ns = entitled_namespace(identity, namespace)
    entities: EntityStore = request.app.state.entities
    query = request.query_params
    if flag(query.get("count")):
        return JSONResponse({"rules": await entities.count_rules(ns)})
    limit = list_limit(query.get("limit"), "rules")
    skip = list_skip(query.get("skip"))
    # [OW] Rules.list reads the whole documents (includeDocs = true): rows have `trigger` and `action`, no status.
    rows = []
    for summary in await entities.list_rules(ns, limit, skip):
        rule = await entities.get_rule(ns, summary.name)
        if rule is not None:  # deleted since the list was read
            rows.append(_without_status(rule))
    return JSONResponse(rows)


@router.put("/namespaces/{namespace}/rules/{name}", openapi_extra=RULE_PUT_SCHEMA)
async def put_rule(
    request: Request, namespace: str, name: str, identity: Identity = Depends(authenticate)
) -> JSONResponse:
    ns = entitled_namespace(identity, namespace)
    validate_name(name)
    overwrite = flag(request.query_params.get("overwrite"))
    content = _parse_put(await json_body(request))
    trigger_ref = _reference(content.trigger, ns)
    action_ref = _reference(content.action, ns)
    _check_size("annotations", content.annotations)
    entities: EntityStore = request.app.state.entities
    existing = await entities.get_rule(ns, name)
    if existing is not None and not overwrite:
        raise Conflict()
    if existing is None:
        if trigger_ref is None or action_ref is None:
            raise BadRequest(RULE_NEEDS_TRIGGER_AND_ACTION)
        return JSONResponse(await _create(entities, identity, ns, name, content, trigger_ref, action_ref))
    return JSONResponse(await _update(entities, identity, existing, content, trigger_ref, action_ref))


@router.get("/namespaces/{namespace}/rules/{name}")
async def get_rule(
    request: Request, namespace: str, name: str, identity: Identity = Depends(authenticate)
) -> JSONResponse:
    ns = entitled_namespace(identity, namespace)
    entities: EntityStore = request.app.state.entities
    rule = await entities.get_rule(ns, name)
    if rule is None:
        raise await missing_entity(entities, ns, name)
    return JSONResponse(rule.to_api(await _status(entities, rule)))


@router.delete("/namespaces/{namespace}/rules/{name}")
async def delete_rule(
    request: Request, namespace: str, name: str, identity: Identity = Depends(authenticate)
) -> JSONResponse:
    ns = entitled_namespace(identity, namespace)
    entities: EntityStore = request.app.state.entities
    rule = await entities.get_rule(ns, name)
    if rule is None:
        raise await missing_entity(entities, ns, name)
    # [OW] Rules.remove: active or not, its entry leaves the trigger (if the trigger is still there) first.
    await _link(entities, rule.trigger, rule.doc_id, None)
    deleted = await entities.delete_rule(ns, name)
    if deleted is None:  # deleted meanwhile by another request
        raise NotFound()
    return JSONResponse(deleted.to_api(RULE_INACTIVE))


@router.post("/namespaces/{namespace}/rules/{name}", openapi_extra=RULE_STATUS_SCHEMA)
async def set_rule_status(
    request: Request, namespace: str, name: str, identity: Identity = Depends(authenticate)
) -> PlainTextResponse:
    ns = entitled_namespace(identity, namespace)
    requested = _parse_status(await json_body(request))  # [OW] the body is read before the rule
    entities: EntityStore = request.app.state.entities
    rule = await entities.get_rule(ns, name)
    if rule is None:
        raise await missing_entity(entities, ns, name)
    if await _status(entities, rule) != requested:
        linked = await _link(entities, rule.trigger, rule.doc_id, ReducedRule(action=rule.action, status=requested))
        if linked is None:
            raise NotFound(ONLY_RULES_WITH_EXISTING_TRIGGERS)
    # [OW] complete(OK) for a change and for none alike: akka's default entity, text "OK".
    return PlainTextResponse("OK")


async def _create(
    entities: EntityStore,
    identity: Identity,
    ns: str,
    name: str,
    content: RulePut,
    trigger_ref: EntityRef,
    action_ref: EntityRef,
) -> dict[str, Any]:
    await _check_trigger_and_action(entities, identity, trigger_ref, action_ref)
    rule = Rule(
        namespace=ns,
        name=name,
        trigger=trigger_ref,
        action=action_ref,
        version=content.version or "0.0.1",
        publish=bool(content.publish),
        annotations=content.annotations or [],
        updated=now_ms(),
    )
    try:
        stored = await entities.put_rule(rule, expected_rev=None)
    except ConcurrentModification:
        raise
    except Conflict:
        conflict = await missing_entity(entities, ns, name)
        raise (conflict if isinstance(conflict, Conflict) else Conflict()) from None
    # The rule is written before its link (OpenWhisk links first): a rule without a link is merely inactive,
    # a link without its rule would fire an action nobody can see or delete.
    if await _link(entities, trigger_ref, stored.doc_id, ReducedRule(action=action_ref, status=RULE_ACTIVE)) is None:
        await entities.delete_rule(ns, name)  # the trigger went meanwhile: as if it never existed
        raise BadRequest(f"trigger {trigger_ref} does not exist")
    return stored.to_api(RULE_ACTIVE)


async def _update(
    entities: EntityStore,
    identity: Identity,
    existing: Rule,
    content: RulePut,
    trigger_ref: EntityRef | None,
    action_ref: EntityRef | None,
) -> dict[str, Any]:
    # [OW] Rules.update: the status the old trigger holds carries over to the (possibly new) trigger.
    status = await _status(entities, existing)
    new_trigger = trigger_ref or existing.trigger
    new_action = action_ref or existing.action
    await _check_trigger_and_action(entities, identity, new_trigger, new_action)
    updated = existing.model_copy(
        update={
            "trigger": new_trigger,
            "action": new_action,
            "version": content.version or bump_patch(existing.version),
            "publish": existing.publish if content.publish is None else content.publish,
            "annotations": existing.annotations if content.annotations is None else content.annotations,
            "updated": now_ms(),
        }
    )
    stored = await entities.put_rule(updated, expected_rev=existing.rev)
    if new_trigger != existing.trigger:
        await _link(entities, existing.trigger, existing.doc_id, None)
    linked = await _link(entities, new_trigger, stored.doc_id, ReducedRule(action=new_action, status=status))
    return stored.to_api(_status_in(linked, stored.doc_id))


async def _check_trigger_and_action(
    entities: EntityStore, identity: Identity, trigger_ref: EntityRef, action_ref: EntityRef
) -> None:
    """403 when the caller may not read either ([OW] entitlement of the referenced entities, checked first),
    then 400 naming the trigger, else the action, that does not exist ([OW] checkTriggerAndActionExist)."""
    if trigger_ref.path != identity.namespace.name:  # triggers are private to their namespace
        raise not_authorized(trigger_ref.doc_id)
    action_exists = True
    try:
        await resolve_action(entities, identity, action_ref.fully_qualified_name)
    except Forbidden:
        raise not_authorized(action_ref.doc_id) from None
    except (NotFound, Conflict):  # Conflict: the package named is an action, so no such action either
        action_exists = False
    if await entities.get_trigger(trigger_ref.path, trigger_ref.name) is None:
        raise BadRequest(f"trigger {trigger_ref} does not exist")
    if not action_exists:
        raise BadRequest(f"action {action_ref} does not exist")


async def _link(
    entities: EntityStore, trigger_ref: EntityRef, rule_key: str, link: ReducedRule | None
) -> Trigger | None:
    """Set the rule's entry in its trigger's ``rules`` (remove it when ``link`` is None); the trigger as
    written, or None when it does not exist."""
    for _ in range(_LINK_ATTEMPTS):
        trigger = await entities.get_trigger(trigger_ref.path, trigger_ref.name)
        if trigger is None:
            return None
        rules = dict(trigger.rules or {})
        if rules.get(rule_key) == link:
            return trigger  # already so: no write
        if link is None:
            del rules[rule_key]
        else:
            rules[rule_key] = link
        try:
            return await entities.put_trigger(trigger.model_copy(update={"rules": rules}), expected_rev=trigger.rev)
        except ConcurrentModification:
            continue  # another rule of this trigger changed meanwhile: read it again
    raise ConcurrentModification()


async def _status(entities: EntityStore, rule: Rule) -> str:
    return _status_in(await entities.get_trigger(rule.trigger.path, rule.trigger.name), rule.doc_id)


def _status_in(trigger: Trigger | None, rule_key: str) -> str:
    """[OW] Rules.getStatus: the trigger's entry for the rule, ``inactive`` without trigger or entry."""
    entry = (trigger.rules or {}).get(rule_key) if trigger is not None else None
    return entry.status if entry is not None else RULE_INACTIVE


def _without_status(rule: Rule) -> dict[str, Any]:
    row = rule.to_api(RULE_INACTIVE)
    del row["status"]
    return row


def _parse_put(body: Any) -> RulePut:
    if body is None:
        return RulePut()
    if not isinstance(body, dict):
        raise BadRequest(f"{MALFORMED}the rule must be a JSON object")
    try:
        return RulePut.model_validate(body)
    except ValidationError as exc:
        details = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise BadRequest(f"{MALFORMED}{details}") from None


def _reference(value: str | EntityRef | None, namespace: str) -> EntityRef | None:
    """A rule's ``trigger`` or ``action`` as OpenWhisk reads it (``FullyQualifiedEntityName.serdes``, then
    ``WhiskRulePut.resolve``): at least a namespace and a name, ``_`` meaning the caller's namespace."""
    if value is None:
        return None
    if isinstance(value, EntityRef):
        parts = [*value.path.split("/"), value.name]
    else:
        parts = [p for p in value.split("/") if p]
        if len(parts) < 2:
            raise BadRequest(f"{MALFORMED}{MALFORMED_NAME}")
    if len(parts) > 3 or not all(_ENTITY_NAME.match(p) for p in parts):
        raise BadRequest(f"{MALFORMED}requirement failed: The name of the entity contains illegal characters.")
    root = namespace if parts[0] == "_" else parts[0]
    return EntityRef(path="/".join([root, *parts[1:-1]]), name=parts[-1])


def _parse_status(body: Any) -> str:
    # [OW] Status.serdesRestricted, its deserialization errors as the rejection handler renders them.
    if not isinstance(body, dict) or "status" not in body:
        raise BadRequest(f"{MALFORMED}key not found: status")
    status = body["status"]
    if status not in (RULE_ACTIVE, RULE_INACTIVE):
        raise BadRequest(f"{MALFORMED}requirement failed: {status} is not a recognized rule state")
    return str(status)


def _check_size(field: str, pairs: list[KeyValue] | None) -> None:
    size = sum(len(KeyValue.model_dump_json(p)) for p in pairs or [])
    if size > MAX_PARAMETERS_BYTES:
        raise EntityTooBig(field, size, MAX_PARAMETERS_BYTES)
