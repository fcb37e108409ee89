"""``/api/v1/web/{namespace}/{package|default}/{action}[.{ext}][/projection]``: web actions, served without
credentials to any HTTP method ([OW] core/controller/.../controller/WebActions.scala ``handleMatch``,
``verifyWebAction``, ``processRequest``, ``completeRequest``; docs/webactions.md).

The action runs as its namespace's owner (whose throttles count it) and is found as an invoke finds it, through
packages and bindings (``controller.resolve``); only actions annotated ``web-export: true`` answer, every other
miss is 404. The pure rules (context, projection, transcoding) are in ``controller.webactions``.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from controller.activator import Activator
from controller.auth import Authenticator
from controller.resolve import resolve_action
from controller.throttles import Throttles
from controller.webactions import (
    ACTIVATION_ID_HEADER,
    ERROR_PROCESSING_REQUEST,
    INTERNAL_SERVER_ERROR,
    PARAMETERS_NOT_ALLOWED,
    RESPONSE_NOT_READY,
    UNAUTHORIZED,
    WebError,
    WebResponse,
    action_arguments,
    context_headers,
    default_cors_headers,
    error_body,
    overrides_allowed,
    project,
    projection,
    request_body,
    require_whisk_auth,
    result_response,
    split_extension,
)
from pywhisk.activation import StatusCode
from pywhisk.entities import Action, FullyQualifiedName, validate_name
from pywhisk.errors import BadRequest, NotFound, Unauthorized, WhiskError
from pywhisk.identity import Identity
from pywhisk.messages import TransactionId
from pywhisk.settings import Settings
from pywhisk.store import EntityStore

log = logging.getLogger("pywhisk.controller")
router = APIRouter()

WEB_METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]
DEFAULT_PACKAGE = "default"


@router.api_route("/web/{namespace}/{package}/{segments:path}", methods=WEB_METHODS, include_in_schema=False)
async def web_action(request: Request, namespace: str, package: str, segments: str) -> Response:
    transid: str = request.state.transid
    answered: list[tuple[str, str]] = []  # headers every answer carries once the action is known (CORS, id)
    try:
        return _render(await _serve(request, namespace, package, segments, answered), answered)
    except WebError as exc:
        return _error(exc.status, exc.message, transid, answered)
    except WhiskError as exc:  # 404/403 of the lookup, 429, 503 of the bus: OpenWhisk's own messages
        return _error(exc.status_code, exc.message, transid, answered)


async def _serve(
    request: Request, namespace: str, package: str, segments: str, answered: list[tuple[str, str]]
) -> WebResponse:
    segment, _, rest = segments.partition("/")
    path = f"/{rest}" if _ else ""  # the unmatched path: "" or "/…" (a trailing slash is kept)
    name, extension = split_extension(segment)
    owner, action = await _web_action(request, namespace, package, name)
    headers = request.headers
    method = request.method
    custom_options = action.annotation("web-custom-options") is True
    if not custom_options:
        answered.extend(default_cors_headers(headers))
        if method == "OPTIONS":
            return WebResponse(200)

    caller = await _caller(request)
    # An action handling OPTIONS itself runs for it even without the credentials it requires otherwise.
    if not (custom_options and method == "OPTIONS"):
        authenticated = caller is not None and caller.namespace.name == owner.namespace.name
        if not require_whisk_auth(action.annotation("require-whisk-auth"), headers, authenticated):
            raise WebError(401, UNAUTHORIZED)

    raw = action.annotation("raw-http") is True
    body = request_body(headers.get("content-type"), await request.body(), raw)
    query = dict(request.query_params.multi_items())
    if not raw and not overrides_allowed(query, body, _protected(action)):
        raise WebError(400, PARAMETERS_NOT_ALLOWED)
    arguments = action_arguments(
        method=method,
        headers=context_headers(headers.items()),
        path=path,
        query_string=request.scope["query_string"].decode("latin-1"),
        query=query,
        body=body,
        raw=raw,
        user=caller.namespace.name if caller is not None else None,
    )

    settings: Settings = request.app.state.settings
    activator: Activator = request.app.state.activator
    # ``final`` was enforced just above, as OpenWhisk does for web requests (params set to null stay overridable);
    # the activator's own check, for invokes, must not refuse them again.
    unfinal = action.model_copy(update={"annotations": [a for a in action.annotations if a.key != "final"]})
    activated = await activator.activate(
        owner,
        unfinal,
        arguments,
        transid=TransactionId(id=request.state.transid, start_ms=request.state.receipt_ms),
        blocking=True,
        wait_ms=settings.max_blocking_wait_ms,
    )
    answered.append((ACTIVATION_ID_HEADER, activated.activation_id))
    record = activated.record
    if record is None:  # still running when the blocking wait ran out: the owner can poll the record
        raise WebError(202, RESPONSE_NOT_READY)
    result = record.response.result
    if record.status_code == StatusCode.SUCCESS:
        return result_response(extension, project(result, projection(extension, path)))
    if record.status_code == StatusCode.APPLICATION_ERROR:
        # The projection is ignored: the error is rendered as the extension renders a result (docs/webactions.md).
        return result_response(extension, project(result, ["error"]))
    raise WebError(400, ERROR_PROCESSING_REQUEST)


async def _web_action(request: Request, namespace: str, package: str, name: str) -> tuple[Identity, Action]:
    """The namespace's owner and the exported action, with inherited parameters; 404 for anything else."""
    try:
        for part in (namespace, package, name):
            validate_name(part)
    except BadRequest:
        raise NotFound() from None
    authenticator: Authenticator = request.app.state.authenticator
    owner = await authenticator.owner_of(namespace)
    if owner is None:
        raise NotFound()
    entities: EntityStore = request.app.state.entities
    fqn = FullyQualifiedName(namespace=namespace, package=None if package == DEFAULT_PACKAGE else package, name=name)
    action = await resolve_action(entities, owner, fqn)
    if action.annotation("web-export") is not True:
        raise NotFound()
    throttles: Throttles = request.app.state.throttles
    throttles.check_rate(owner)  # after the lookup, as OpenWhisk's entitlement check
    return owner, action


async def _caller(request: Request) -> Identity | None:
    """Whoever the request's Basic credentials name, if they are valid: a web request needs none, and wrong ones
    make it anonymous rather than refused (as OpenWhisk's web route, tried first with ``basicAuth``)."""
    authorization = request.headers.get("authorization")
    if not authorization:
        return None
    authenticator: Authenticator = request.app.state.authenticator
    try:
        return await authenticator.identify(authorization)
    except Unauthorized:
        return None


def _protected(action: Action) -> set[str]:
    """[OW] ``immutableParameters``: with ``final``, every parameter that has a value (null ones stay open)."""
    if action.annotation("final") is not True:
        return set()
    return {p.key for p in action.parameters if p.value is not None}


def _render(response: WebResponse, answered: list[tuple[str, str]]) -> Response:
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in [*answered, *response.headers]]
    rendered = Response(response.body, status_code=response.status)
    rendered.raw_headers = [
        *(h for h in rendered.raw_headers if h[0] != b"content-type"),
        *headers,
        *([(b"content-type", response.content_type.encode("latin-1"))] if response.content_type else []),
    ]
    return rendered


def _error(status: int, message: str, transid: str, answered: list[tuple[str, str]]) -> Response:
    if status >= 500 and status != 503:
        log.error("web action request %s failed with %d: %s", transid, status, message)
    body: Any = error_body(message or INTERNAL_SERVER_ERROR, transid)
    return _render(WebResponse(status, body, "application/json"), answered)
