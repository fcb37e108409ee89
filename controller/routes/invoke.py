"""``POST /namespaces/{ns}/actions/{name}``: invoke, blocking or not (reference/openwhisk.md §1.4)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Depends, Request

from controller.auth import authenticate, entitled_namespace
from controller.loadbalancer import LoadBalancer
from controller.query import flag, json_body
from controller.responses import JSONResponse
from controller.throttles import Throttles
from pywhisk.activation import Activation, StatusCode, new_activation_id
from pywhisk.entities import Action, as_dict
from pywhisk.errors import BadRequest, NotFound, ServiceUnavailable, StoreUnavailable, WhiskError
from pywhisk.identity import Identity
from pywhisk.messages import ActionRef, ActivationMessage, ControllerInstance
from pywhisk.settings import Settings
from pywhisk.store import ActivationStore, EntityStore

router = APIRouter()
log = logging.getLogger("pywhisk.controller")

INVOKE_SCHEMA = {
    "requestBody": {
        "required": False,
        "content": {"application/json": {"schema": {"type": "object", "additionalProperties": True}}},
    }
}
# Blocking answers by outcome ([OW] Actions.doInvoke): errors of the action are 502, of the platform 500.
_STATUS_BY_OUTCOME = {
    StatusCode.SUCCESS: 200,
    StatusCode.APPLICATION_ERROR: 502,
    StatusCode.DEVELOPER_ERROR: 502,
    StatusCode.WHISK_ERROR: 500,
}


@router.post("/namespaces/{namespace}/actions/{name}", openapi_extra=INVOKE_SCHEMA)
async def invoke_action(
    request: Request, namespace: str, name: str, identity: Identity = Depends(authenticate)
) -> JSONResponse:
    settings: Settings = request.app.state.settings
    ns = entitled_namespace(identity, namespace)
    query = request.query_params
    blocking = flag(query.get("blocking"))
    result_only = flag(query.get("result"))
    wait_ms = _blocking_timeout(query.get("timeout"), settings.max_blocking_wait_ms)
    params = await json_body(request)
    if params is not None and not isinstance(params, dict | list):
        raise BadRequest("The request content was malformed:\nparameters must be a JSON object or array")

    throttles: Throttles = request.app.state.throttles
    throttles.check_rate(identity)  # before the action is read, as OpenWhisk's entitlement check

    entities: EntityStore = request.app.state.entities
    action = await entities.get_action(ns, name)
    if action is None:
        raise NotFound()

    activation_id = new_activation_id()
    message = ActivationMessage(
        transid=[request.state.transid, request.state.receipt_ms],
        action=ActionRef(path=action.namespace, name=action.name, version=action.version),
        revision=action.rev,
        user=identity,
        activationId=activation_id,
        rootControllerIndex=ControllerInstance(asString=str(settings.controller_id)),
        blocking=blocking,
        content=_merged_params(action, params),
        initArgs=[p.key for p in action.parameters if p.init],
    )
    balancer: LoadBalancer = request.app.state.balancer
    throttles.check_concurrent(identity)  # no await until publish has booked it: a burst cannot overshoot
    try:
        await balancer.publish(message, action)
    except WhiskError:
        raise
    except Exception as exc:  # the bus did not take the message: nothing was accepted
        log.warning("publishing activation %s failed: %s", activation_id, exc)
        raise ServiceUnavailable("The activation could not be scheduled: the message bus is unavailable.") from exc
    headers = {"x-openwhisk-activation-id": activation_id}
    if not blocking:
        return JSONResponse({"activationId": activation_id}, status_code=202, headers=headers)

    records: ActivationStore = request.app.state.activations
    record = await _blocking_result(balancer, records, ns, activation_id, wait_ms)
    if record is None:  # still running: the caller polls for the record later
        return JSONResponse({"activationId": activation_id}, status_code=202, headers=headers)
    status = _STATUS_BY_OUTCOME[record.status_code]
    body = record.response.result if result_only else record.to_api()
    return JSONResponse(body, status_code=status, headers=headers)


def _blocking_timeout(raw: str | None, maximum_ms: int) -> int:
    if raw is None:
        return maximum_ms
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if not 0 < value <= maximum_ms:
        raise BadRequest(f"Timeout must be number of milliseconds up to {maximum_ms}.")
    return value


def _merged_params(action: Action, params: dict[str, Any] | list[Any] | None) -> dict[str, Any] | list[Any]:
    """Invoke-time params over the action's defaults; ``final`` actions refuse overrides."""
    if isinstance(params, list):
        return params
    defaults = as_dict([p for p in action.parameters if not p.init])
    given = params or {}
    if action.annotation("final") is True and set(given) & set(defaults):
        raise BadRequest("Request defines parameters that are not allowed (e.g., reserved properties).")
    return {**defaults, **given}


async def _blocking_result(
    balancer: LoadBalancer, records: ActivationStore, namespace: str, activation_id: str, wait_ms: int
) -> Activation | None:
    record = await balancer.wait(activation_id, wait_ms / 1000)
    if record is None and balancer.completed(activation_id):
        # The completion came without the record (e.g. too large for the bus): read the store.
        try:
            record = await records.get_activation(namespace, activation_id)
        except StoreUnavailable as exc:  # accepted all the same: the caller gets the id and polls later
            log.warning("reading the record of %s failed: %s", activation_id, exc)
    return record
