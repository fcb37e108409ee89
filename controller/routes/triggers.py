"""``/namespaces/{ns}/triggers``: create, update, get, list, delete and fire triggers.

As OpenWhisk's ``core/controller/.../controller/Triggers.scala`` (with ``WhiskTrigger.scala`` for the shapes),
checked against its ``TriggersApiTests.scala``:

- triggers are private: every route is for the caller's own namespace (403 otherwise);
- ``PUT`` creates (``overwrite=true``: updates: each field given replaces the old one, the version's patch is
  bumped, the trigger's ``rules`` are kept); a created trigger's ``feed`` annotation must name an entity (400
  ``Feed name is not valid``); ``limits`` are ``{}`` (OpenWhisk's ``TriggerLimits`` has none);
- ``GET`` answers the trigger with its ``rules`` (``{"ns/rule": {"action": {path, name}, "status"}}``) once a
  rule was linked to it; ``DELETE`` answers the deleted trigger and leaves its rules, which then report
  ``inactive`` (controller/routes/rules.py);
- ``POST`` fires it (controller/triggers.py): 202 ``{"activationId"}``, or 204 when no rule is active.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import ValidationError

from controller.auth import authenticate, entitled_namespace
from controller.query import flag, json_body, list_limit, list_skip
from controller.resolve import CONFORMANCE
from controller.responses import JSONResponse
from controller.routes.packages import MAX_PARAMETERS_BYTES, EntityTooBig
from controller.triggers import TriggerFirer, missing_entity
from pywhisk.entities import KeyValue, Trigger, TriggerPut, bump_patch, now_ms, validate_name
from pywhisk.errors import BadRequest, ConcurrentModification, Conflict
from pywhisk.identity import Identity
from pywhisk.messages import TransactionId
from pywhisk.store import EntityStore

router = APIRouter()

FEED_ANNOTATION = "feed"
FEED_NAME_IS_NOT_VALID = "Feed name is not valid"
TRIGGER_PUT_SCHEMA = {"requestBody": {"content": {"application/json": {"schema": TriggerPut.model_json_schema()}}}}
FIRE_SCHEMA = {
    "requestBody": {
        "required": False,
        "content": {"application/json": {"schema": {"type": "object", "additionalProperties": True}}},
    }
}
# [OW] EntityPath.validate: `/`-separated segments, each a valid entity name (Java's \w is ASCII).
_PATH_SEGMENT = re.compile(r"\A([\w]|[\w][\w@ .&-]{0,254}[\w@.&-])\Z", re.ASCII)


@router.get("/namespaces/{namespace}/triggers")
@router.get("/namespaces/{namespace}/triggers/", include_in_schema=False)  # [OW] pathEndOrSingleSlash
async def list_triggers(request: Request, namespace: str, identity: Identity = Depends(authenticate)) -> JSONResponse:
    ns = entitled_namespace(identity, namespace)
    entities: EntityStore = request.app.state.entities
    query = request.query_params
    if flag(query.get("count")):
        return JSONResponse({"triggers": await entities.count_triggers(ns)})
    limit = list_limit(query.get("limit"), "triggers")
    skip = list_skip(query.get("skip"))
    return JSONResponse([trigger.to_api() for trigger in await entities.list_triggers(ns, limit, skip)])


@router.put("/namespaces/{namespace}/triggers/{name}", openapi_extra=TRIGGER_PUT_SCHEMA)
async def put_trigger(
    request: Request, namespace: str, name: str, identity: Identity = Depends(authenticate)
) -> JSONResponse:
    ns = entitled_namespace(identity, namespace)
    validate_name(name)
    overwrite = flag(request.query_params.get("overwrite"))
    content = _parse_put(await json_body(request))
    _check_size("parameters", content.parameters)
    _check_size("annotations", content.annotations)
    entities: EntityStore = request.app.state.entities
    existing = await entities.get_trigger(ns, name)
    if existing is not None and not overwrite:
        raise Conflict()
    trigger = _new_trigger(ns, name, content) if existing is None else _updated_trigger(existing, content)
    try:
        stored = await entities.put_trigger(trigger, expected_rev=existing.rev if existing else None)
    except ConcurrentModification:
        raise
    except Conflict:
        if existing is None:  # the name is another collection's ([OW] DocumentTypeMismatchException)
            raise Conflict(CONFORMANCE) from None
        raise
    return JSONResponse(stored.to_api())


@router.get("/namespaces/{namespace}/triggers/{name}")
async def get_trigger(
    request: Request, namespace: str, name: str, identity: Identity = Depends(authenticate)
) -> JSONResponse:
    ns = entitled_namespace(identity, namespace)
    entities: EntityStore = request.app.state.entities
    trigger = await entities.get_trigger(ns, name)
    if trigger is None:
        raise await missing_entity(entities, ns, name)
    return JSONResponse(trigger.to_api())


@router.delete("/namespaces/{namespace}/triggers/{name}")
async def delete_trigger(
    request: Request, namespace: str, name: str, identity: Identity = Depends(authenticate)
) -> JSONResponse:
    ns = entitled_namespace(identity, namespace)
    entities: EntityStore = request.app.state.entities
    # [OW] Triggers.remove: the rules stay; with their trigger gone they answer `inactive`.
    trigger = await entities.delete_trigger(ns, name)
    if trigger is None:
        raise await missing_entity(entities, ns, name)
    return JSONResponse(trigger.to_api())


@router.post("/namespaces/{namespace}/triggers/{name}", openapi_extra=FIRE_SCHEMA)
async def fire_trigger(
    request: Request, namespace: str, name: str, identity: Identity = Depends(authenticate)
) -> Response:
    ns = entitled_namespace(identity, namespace)
    payload = await json_body(request)
    if payload is not None and not isinstance(payload, dict):
        # [OW] entity(as[Option[JsObject]]): a fire's payload is an object or nothing.
        raise BadRequest("The request content was malformed:\nthe payload must be a JSON object")
    triggers: TriggerFirer = request.app.state.triggers
    transid = TransactionId(id=request.state.transid, start_ms=request.state.receipt_ms)
    activation_id = await triggers.fire(identity, ns, name, payload or {}, transid=transid)
    if activation_id is None:
        return Response(status_code=204)
    headers = {"x-openwhisk-activation-id": activation_id}
    return JSONResponse({"activationId": activation_id}, status_code=202, headers=headers)


def _parse_put(body: Any) -> TriggerPut:
    if body is None:
        return TriggerPut()
    if not isinstance(body, dict):
        raise BadRequest("The request content was malformed:\nthe trigger must be a JSON object")
    try:
        return TriggerPut.model_validate(body)
    except ValidationError as exc:
        details = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise BadRequest(f"The request content was malformed:\n{details}") from None


def _check_size(field: str, pairs: list[KeyValue] | None) -> None:
    size = sum(len(KeyValue.model_dump_json(p)) for p in pairs or [])
    if size > MAX_PARAMETERS_BYTES:
        raise EntityTooBig(field, size, MAX_PARAMETERS_BYTES)


def _valid_feed_name(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    segments = [s for s in value.split("/") if s]
    return bool(segments) and all(_PATH_SEGMENT.match(s) for s in segments)


def _new_trigger(ns: str, name: str, content: TriggerPut) -> Trigger:
    annotations = content.annotations or []
    # [OW] Triggers.validateTriggerFeed: checked on create only (an update keeps or replaces it unchecked).
    feed = next((p for p in annotations if p.key == FEED_ANNOTATION), None)
    if feed is not None and not _valid_feed_name(feed.value):
        raise BadRequest(FEED_NAME_IS_NOT_VALID)
    return Trigger(
        namespace=ns,
        name=name,
        version=content.version or "0.0.1",
        publish=bool(content.publish),
        parameters=content.parameters or [],
        annotations=annotations,
        limits={},
        rules=None,
        updated=now_ms(),
    )


def _updated_trigger(existing: Trigger, content: TriggerPut) -> Trigger:
    # [OW] Triggers.update: what is given replaces (annotations too, not merged); the rules are kept.
    return existing.model_copy(
        update={
            "version": content.version or bump_patch(existing.version),
            "publish": existing.publish if content.publish is None else content.publish,
            "parameters": existing.parameters if content.parameters is None else content.parameters,
            "annotations": existing.annotations if content.annotations is None else content.annotations,
            "updated": now_ms(),
        }
    )
