"""``/namespaces/{ns}/actions``: create, update, get, list and delete (reference/openwhisk.md §1.3).

Actions in packages as OpenWhisk's Actions.scala ``innerRoutes``: ``/actions/{pkg}/{name}`` is created, updated and
deleted in the caller's own package only (404 if it is missing, 400 if it is a binding); it is read through a
binding and in another namespace's published package, with the parameters it inherits (``controller.resolve``);
``GET /actions/{pkg}/`` lists a package's (or a binding's package's) actions.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import ValidationError

from controller.auth import authenticate, entitled_namespace
from controller.query import flag, json_body, list_limit, list_skip
from controller.resolve import CONFORMANCE, namespace_of, read_package, resolve_action, writable_package
from controller.responses import JSONResponse
from controller.sequences import SEQUENCE_KIND, checked_sequence_action
from pywhisk.entities import (
    Action,
    ActionPut,
    Exec,
    FullyQualifiedName,
    KeyValue,
    Limits,
    bump_patch,
    is_binary_code,
    merge_pairs,
    now_ms,
    validate_name,
)
from pywhisk.errors import BadRequest, Conflict, NotFound, PayloadTooLarge
from pywhisk.identity import Identity
from pywhisk.runtimes import RuntimeManifest
from pywhisk.store import EntityStore

router = APIRouter()

# [OW] application.conf: exec-size-limit = 48 m; parameters at most 1 MB.
MAX_CODE_BYTES = 48 * 1024 * 1024
MAX_PARAMETERS_BYTES = 1024 * 1024
ACTION_PUT_SCHEMA = {"requestBody": {"content": {"application/json": {"schema": ActionPut.model_json_schema()}}}}


@router.get("/namespaces/{namespace}/actions")
@router.get("/namespaces/{namespace}/actions/", include_in_schema=False)  # [OW] collectionOps: pathEndOrSingleSlash
async def list_actions(request: Request, namespace: str, identity: Identity = Depends(authenticate)) -> JSONResponse:
    ns = entitled_namespace(identity, namespace)
    entities: EntityStore = request.app.state.entities
    if flag(request.query_params.get("count")):
        return JSONResponse({"actions": await entities.count_actions(ns)})
    limit = list_limit(request.query_params.get("limit"), "actions")
    skip = list_skip(request.query_params.get("skip"))
    actions = await entities.list_actions(ns, limit, skip)
    return JSONResponse([action.to_api() for action in actions])


@router.get("/namespaces/{namespace}/actions/{package}/")
async def list_package_actions(
    request: Request, namespace: str, package: str, identity: Identity = Depends(authenticate)
) -> JSONResponse:
    """A package's actions; a binding's are its bound package's, with that package's ``namespace``."""
    entities: EntityStore = request.app.state.entities
    resolved = await read_package(entities, identity, namespace_of(identity, namespace), package)
    path = resolved.package.path
    if flag(request.query_params.get("count")):
        return JSONResponse({"actions": await entities.count_actions(path)})
    limit = list_limit(request.query_params.get("limit"), "actions")
    skip = list_skip(request.query_params.get("skip"))
    return JSONResponse([action.to_api() for action in await entities.list_actions(path, limit, skip)])


@router.put("/namespaces/{namespace}/actions/{name}", openapi_extra=ACTION_PUT_SCHEMA)
@router.put("/namespaces/{namespace}/actions/{package}/{name}", openapi_extra=ACTION_PUT_SCHEMA)
async def put_action(
    request: Request, namespace: str, name: str, package: str | None = None, identity: Identity = Depends(authenticate)
) -> JSONResponse:
    ns = entitled_namespace(identity, namespace)
    validate_name(name)
    entities: EntityStore = request.app.state.entities
    if package is not None:  # the action's namespace is the package's path: ns/pkg
        ns = (await writable_package(entities, identity, ns, package)).path
    overwrite = flag(request.query_params.get("overwrite"))
    content = _parse_put(await json_body(request))
    manifest: RuntimeManifest = request.app.state.manifest

    existing = await entities.get_action(ns, name)
    if existing is not None and not overwrite:
        raise Conflict()
    if existing is None:
        action = _new_action(ns, name, content, manifest)
    else:
        action = _updated_action(existing, content, manifest)
    action = await checked_sequence_action(entities, identity, action, content, existing)
    stored = await entities.put_action(action, expected_rev=existing.rev if existing else None)
    return JSONResponse(stored.to_api())


@router.get("/namespaces/{namespace}/actions/{name}")
@router.get("/namespaces/{namespace}/actions/{package}/{name}")
async def get_action(
    request: Request, namespace: str, name: str, package: str | None = None, identity: Identity = Depends(authenticate)
) -> JSONResponse:
    entities: EntityStore = request.app.state.entities
    if package is None:
        ns = entitled_namespace(identity, namespace)
        found = await entities.get_action(ns, name)
        if found is None:
            if await entities.get_package(ns, name) is not None:
                # [OW] a package's name under /actions (its list wants the trailing slash): not this collection's
                raise Conflict(CONFORMANCE)
            raise NotFound()
        action = found
    else:  # through a binding or another namespace's published package too, with inherited parameters
        fqn = FullyQualifiedName(namespace=namespace_of(identity, namespace), package=package, name=name)
        action = await resolve_action(entities, identity, fqn)
    return JSONResponse(action.to_api(include_code=flag(request.query_params.get("code"), True)))


@router.delete("/namespaces/{namespace}/actions/{name}")
@router.delete("/namespaces/{namespace}/actions/{package}/{name}")
async def delete_action(
    request: Request, namespace: str, name: str, package: str | None = None, identity: Identity = Depends(authenticate)
) -> JSONResponse:
    ns = entitled_namespace(identity, namespace)
    entities: EntityStore = request.app.state.entities
    if package is not None:
        ns = (await writable_package(entities, identity, ns, package)).path
    action = await entities.delete_action(ns, name)
    if action is None:
        raise NotFound()
    return JSONResponse(action.to_api())


def _parse_put(body: Any) -> ActionPut:
    if body is None:
        return ActionPut()
    if not isinstance(body, dict):
        raise BadRequest("The request content was malformed:\nthe action must be a JSON object")
    try:
        return ActionPut.model_validate(body)
    except ValidationError as exc:
        details = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise BadRequest(f"The request content was malformed:\n{details}") from None


def _checked_exec(exec_: Exec, manifest: RuntimeManifest) -> Exec:
    if exec_.kind == SEQUENCE_KIND:  # no runtime: run by the controller, checked by checked_sequence_action
        return exec_
    runtime = manifest.resolve(exec_.kind)
    code = exec_.code
    if code is not None and len(code) > MAX_CODE_BYTES:
        raise PayloadTooLarge(len(code), MAX_CODE_BYTES)
    if runtime.kind == "blackbox" and not exec_.image:
        raise BadRequest("exec malformed: image undefined (a blackbox action names its Docker image)")
    if not code and not exec_.image:
        raise BadRequest("exec malformed: code undefined")
    binary = is_binary_code(code) if code else False
    if runtime.binary and not binary:
        raise BadRequest(
            f"The code of a '{runtime.kind}' action must be a base64-encoded binary "
            "(a WebAssembly module or a zip holding one), but it was sent as text. The wsk CLI sends a file "
            "of an extension it does not know (.wasm) as text: zip the module and create the action from the "
            f"zip (wsk action create NAME NAME.zip --kind {runtime.kind})."
        )
    return Exec(kind=runtime.kind, code=code, binary=binary, main=exec_.main, image=exec_.image)


def _checked_parameters(parameters: list[KeyValue]) -> list[KeyValue]:
    size = sum(len(KeyValue.model_dump_json(p)) for p in parameters)
    if size > MAX_PARAMETERS_BYTES:
        raise PayloadTooLarge(size, MAX_PARAMETERS_BYTES)
    return parameters


def _amended_annotations(annotations: list[KeyValue], exec_: Exec, creating: bool) -> list[KeyValue]:
    # [OW] Actions.amendAnnotations: the server records the kind, and on create marks
    # provide-api-key false unless the client said otherwise.
    extra = [KeyValue(key="exec", value=exec_.kind)]
    if creating and all(p.key != "provide-api-key" for p in annotations):
        extra.append(KeyValue(key="provide-api-key", value=False))
    return merge_pairs(annotations, extra)


def _new_action(ns: str, name: str, content: ActionPut, manifest: RuntimeManifest) -> Action:
    if content.exec is None:
        raise BadRequest("exec undefined")
    exec_ = _checked_exec(content.exec, manifest)
    return Action(
        namespace=ns,
        name=name,
        version=content.version or "0.0.1",
        publish=bool(content.publish),
        exec=exec_,
        parameters=_checked_parameters(content.parameters or []),
        annotations=_amended_annotations(content.annotations or [], exec_, creating=True),
        limits=(content.limits.apply_to(Limits()) if content.limits else Limits()),
        updated=now_ms(),
    )


def _updated_action(existing: Action, content: ActionPut, manifest: RuntimeManifest) -> Action:
    exec_ = _checked_exec(content.exec, manifest) if content.exec else existing.exec
    annotations = merge_pairs(existing.annotations, content.annotations or [])
    if content.delAnnotations:
        annotations = [p for p in annotations if p.key not in set(content.delAnnotations)]
    return existing.model_copy(
        update={
            "exec": exec_,
            "version": content.version or bump_patch(existing.version),
            "publish": existing.publish if content.publish is None else content.publish,
            "parameters": _checked_parameters(
                existing.parameters if content.parameters is None else content.parameters
            ),
            "annotations": _amended_annotations(annotations, exec_, creating=False),
            "limits": content.limits.apply_to(existing.limits) if content.limits else existing.limits,
            "updated": now_ms(),
        }
    )
