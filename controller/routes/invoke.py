"""``POST /namespaces/{ns}/actions/[{pkg}/]{name}``: invoke, blocking or not (reference/openwhisk.md §1.4).

The route is declared to FastAPI (for the OpenAPI document and for apps built without the controller's edge),
but the controller serves it through ``serve_invoke``: the same handler called straight from ASGI, without
FastAPI's per-request layers (route matching over every route, dependency solving, the exception and exit-stack
middleware), which cost a sixth to a quarter of standalone's CPU per warm invoke (docs/benchmarks.md, issue 15).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from fastapi import APIRouter, Depends, Request
from starlette.types import Receive, Scope, Send

from controller.activator import Activator
from controller.auth import authenticate
from controller.query import flag, json_body
from controller.resolve import namespace_of, resolve_action
from controller.responses import JSONResponse
from controller.throttles import Throttles
from pywhisk.activation import StatusCode
from pywhisk.entities import FullyQualifiedName
from pywhisk.errors import BadRequest
from pywhisk.identity import Identity
from pywhisk.messages import TransactionId
from pywhisk.settings import Settings
from pywhisk.store import EntityStore

router = APIRouter()

INVOKE_SCHEMA = {
    "requestBody": {
        "required": False,
        "content": {"application/json": {"schema": {"type": "object", "additionalProperties": True}}},
    }
}
# Blocking answers by outcome ([OW] Actions.doInvoke): errors of the action are 502, of the platform 500.
STATUS_BY_OUTCOME = {
    StatusCode.SUCCESS: 200,
    StatusCode.APPLICATION_ERROR: 502,
    StatusCode.DEVELOPER_ERROR: 502,
    StatusCode.WHISK_ERROR: 500,
}


@router.post("/namespaces/{namespace}/actions/{name}", openapi_extra=INVOKE_SCHEMA)
@router.post("/namespaces/{namespace}/actions/{package}/{name}", openapi_extra=INVOKE_SCHEMA)
async def invoke_action(
    request: Request, namespace: str, name: str, package: str | None = None, identity: Identity = Depends(authenticate)
) -> JSONResponse:
    settings: Settings = request.app.state.settings
    ns = namespace_of(identity, namespace)
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
    action = await resolve_action(entities, identity, FullyQualifiedName(namespace=ns, package=package, name=name))
    activator: Activator = request.app.state.activator
    transid = TransactionId(id=request.state.transid, start_ms=request.state.receipt_ms)
    activated = await activator.activate(identity, action, params, transid=transid, blocking=blocking, wait_ms=wait_ms)
    headers = {"x-openwhisk-activation-id": activated.activation_id}
    record = activated.record
    if record is None:  # non-blocking, or still running: the caller polls for the record later
        return JSONResponse({"activationId": activated.activation_id}, status_code=202, headers=headers)
    status = STATUS_BY_OUTCOME[record.status_code]
    body = record.response.result if result_only else record.to_api()
    return JSONResponse(body, status_code=status, headers=headers)


# What FastAPI's two routes above match (a path parameter is one non-empty segment), under API_PREFIX.
INVOKE_PATH = re.compile(r"/api/v1/namespaces/([^/]+)/actions/([^/]+)(?:/([^/]+))?")


async def serve_invoke(
    scope: Scope, receive: Receive, send: Send, render_error: Callable[[Request, Exception], JSONResponse | None]
) -> bool:
    """Answer ``scope`` if it is an invoke (False if not, for the caller to route it): authenticate, run
    ``invoke_action``, and render a ``WhiskError`` or ``StoreUnavailable`` with ``render_error`` (the app's
    exception handlers, which answer None for what they do not handle; that propagates as from a route)."""
    match = INVOKE_PATH.fullmatch(scope["path"]) if scope["method"] == "POST" else None
    if match is None:
        return False
    namespace, first, second = match.groups()
    package, name = (first, second) if second is not None else (None, first)
    request = Request(scope, receive)
    try:
        identity = await authenticate(request)
        response = await invoke_action(request, namespace, name, package, identity)
    except Exception as exc:
        rendered = render_error(request, exc)
        if rendered is None:
            raise
        response = rendered
    await response(scope, receive, send)
    return True


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
