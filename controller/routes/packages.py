"""``/namespaces/{ns}/packages``: create, update, get, list and delete packages and bindings.

As OpenWhisk's ``core/controller/.../controller/Packages.scala`` (and the messages of ``Messages`` in
``http/ErrorResponse.scala``), checked against its ``PackagesApiTests.scala``:

- ``PUT`` creates (``overwrite=true``: updates, the version's patch bumped); ``default`` is a reserved name; a
  ``binding`` must name a package the caller may read (their own, or a published one of another namespace) that
  is not itself a binding; a package never becomes a binding. The server owns the ``binding`` annotation.
- ``GET`` of a package answers it with its ``actions`` and ``feeds`` (actions annotated ``feed``); of a binding,
  the binding with the bound package's parameters under its own, and the bound package's actions.
- ``GET`` of the collection lists a namespace's packages and bindings; another namespace's only its published
  packages (never its bindings). ``public=true`` is accepted and ignored, as OpenWhisk has disabled it.
- ``DELETE`` of a package holding actions is 409 unless ``force=true``, which deletes them first.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import ValidationError

from controller.auth import authenticate
from controller.query import flag, json_body, list_limit, list_skip
from controller.resolve import CONFORMANCE, namespace_of, not_authorized, read_package
from controller.responses import JSONResponse
from pywhisk.entities import (
    Binding,
    KeyValue,
    Package,
    PackagePut,
    bump_patch,
    now_ms,
    pairs_to_api,
    validate_name,
)
from pywhisk.errors import BadRequest, Conflict, NotFound, WhiskError
from pywhisk.identity import Identity
from pywhisk.store import ActionSummary, EntityStore

router = APIRouter()

# [OW] Packages.RESERVED_NAMES: `default` names the default package in `/ns/default/action` (web actions).
RESERVED_NAMES = frozenset({"default"})
# [OW] Parameters.sizeLimit, for a package's parameters and annotations alike.
MAX_PARAMETERS_BYTES = 1024 * 1024
# [OW] WhiskPackage.bindingFieldName: the annotation the controller sets on every binding.
BINDING_ANNOTATION = "binding"
FEED_ANNOTATION = "feed"
PACKAGE_PUT_SCHEMA = {"requestBody": {"content": {"application/json": {"schema": PackagePut.model_json_schema()}}}}

# [OW] Messages (http/ErrorResponse.scala).
BINDING_DOES_NOT_EXIST = "Binding references a package that does not exist."
PACKAGE_CANNOT_BECOME_BINDING = "Resource is a package and cannot be converted into a binding."
BINDING_CANNOT_REFERENCE_BINDING = "Cannot bind to another package binding."
REQUESTED_BINDING_IS_NOT_VALID = "Cannot bind to a resource that is not a package."

_PAGE = 200  # the store's list pages when every action of a package is read


class EntityTooBig(WhiskError):
    """[OW] Messages.entityTooBig: ``parameters larger than allowed: N > M bytes.``"""

    status_code = 413

    def __init__(self, field: str, size: int, limit: int) -> None:
        super().__init__(f"{field} larger than allowed: {size} > {limit} bytes.")


@router.get("/namespaces/{namespace}/packages")
@router.get("/namespaces/{namespace}/packages/", include_in_schema=False)  # [OW] pathEndOrSingleSlash
async def list_packages(request: Request, namespace: str, identity: Identity = Depends(authenticate)) -> JSONResponse:
    ns = namespace_of(identity, namespace)
    query = request.query_params
    flag(query.get("public"))  # validated, then ignored: OpenWhisk disabled `?public`
    # Anyone may list any namespace's packages; another namespace shows only what it published
    # ([OW] PackageCollection.implicitRights, and Packages.list's choice of the `packages-public` view).
    published_only = ns != identity.namespace.name
    entities: EntityStore = request.app.state.entities
    if flag(query.get("count")):
        return JSONResponse({"packages": await entities.count_packages(ns, published_only=published_only)})
    limit = list_limit(query.get("limit"), "packages")
    skip = list_skip(query.get("skip"))
    packages = await entities.list_packages(ns, limit, skip, published_only=published_only)
    rows = []
    for package in packages:
        if published_only and package.binding is not None:  # OpenWhisk's public view leaves bindings out
            continue
        row = package.to_api()
        # The list row's `binding` is the binding or false ([OW] WhiskPackage.summaryAsJson).
        row["binding"] = package.binding.model_dump() if package.binding else False
        rows.append(row)
    return JSONResponse(rows)


@router.put("/namespaces/{namespace}/packages/{name}", openapi_extra=PACKAGE_PUT_SCHEMA)
async def put_package(
    request: Request, namespace: str, name: str, identity: Identity = Depends(authenticate)
) -> JSONResponse:
    ns = namespace_of(identity, namespace)
    if ns != identity.namespace.name:
        raise not_authorized(f"{ns}/{name}")
    validate_name(name)
    overwrite = flag(request.query_params.get("overwrite"))
    if name in RESERVED_NAMES:
        raise BadRequest(f"Package name '{name}' is reserved.")
    content = _parse_put(await json_body(request), ns)
    entities: EntityStore = request.app.state.entities
    _check_size("parameters", content.parameters)
    _check_size("annotations", content.annotations)
    if content.binding is not None:
        await _check_binding(entities, identity, content.binding)

    existing = await entities.get_package(ns, name)
    if existing is not None and not overwrite:
        raise Conflict()
    if existing is None:
        package = _new_package(ns, name, content)
    else:
        if content.binding is not None and existing.binding is None:
            raise Conflict(PACKAGE_CANNOT_BECOME_BINDING)
        package = _updated_package(existing, content)
    try:
        stored = await entities.put_package(package, expected_rev=existing.rev if existing else None)
    except Conflict:
        if existing is None and await entities.get_action(ns, name) is not None:
            raise Conflict(CONFORMANCE) from None  # the name is an action's ([OW] DocumentTypeMismatchException)
        raise
    return JSONResponse(stored.to_api())


@router.get("/namespaces/{namespace}/packages/{name}")
async def get_package(
    request: Request, namespace: str, name: str, identity: Identity = Depends(authenticate)
) -> JSONResponse:
    ns = namespace_of(identity, namespace)
    entities: EntityStore = request.app.state.entities
    try:
        resolved = await read_package(entities, identity, ns, name)
    except NotFound:  # [OW] authorizeAndDispatch names the resource that is missing
        raise NotFound(f"The requested resource '{ns}/{name}' does not exist.") from None
    body = resolved.entity.to_api()
    body["parameters"] = pairs_to_api(resolved.parameters)
    actions = await _all_actions(entities, resolved.package.path)
    # [OW] WhiskPackage.withPackageActions: an action annotated `feed` (whatever its value) is a feed.
    body["actions"] = [_package_action(a) for a in actions if not _is_feed(a)]
    body["feeds"] = [_package_action(a) for a in actions if _is_feed(a)]
    return JSONResponse(body)


@router.delete("/namespaces/{namespace}/packages/{name}")
async def delete_package(
    request: Request, namespace: str, name: str, identity: Identity = Depends(authenticate)
) -> JSONResponse:
    ns = namespace_of(identity, namespace)
    if ns != identity.namespace.name:
        raise not_authorized(f"{ns}/{name}")
    force = flag(request.query_params.get("force"))
    entities: EntityStore = request.app.state.entities
    package = await entities.get_package(ns, name)
    if package is None:
        if await entities.get_action(ns, name) is not None:
            raise Conflict(CONFORMANCE)
        raise NotFound()
    if package.binding is None:  # a binding holds nothing: it is always safe to remove
        contained = await entities.count_actions(package.path)
        if contained and not force:
            noun = "entity" if contained == 1 else "entities"
            raise Conflict(
                f"Package not empty (contains {contained} {noun}). Set force param or delete package contents."
            )
        if contained:
            for action in await _all_actions(entities, package.path):
                await entities.delete_action(package.path, action.name)
    deleted = await entities.delete_package(ns, name)
    if deleted is None:  # deleted meanwhile by another request
        raise NotFound()
    return JSONResponse(deleted.to_api())


def _parse_put(body: Any, namespace: str) -> PackagePut:
    if body is None:
        return PackagePut()
    if not isinstance(body, dict):
        raise BadRequest("The request content was malformed:\nthe package must be a JSON object")
    try:
        content = PackagePut.model_validate(body)
    except ValidationError as exc:
        details = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise BadRequest(f"The request content was malformed:\n{details}") from None
    if content.binding is not None:
        # [OW] WhiskPackagePut.resolve: `_` binds in the caller's own namespace.
        bound_ns = namespace if content.binding.namespace == "_" else content.binding.namespace
        validate_name(bound_ns, "binding namespace")
        validate_name(content.binding.name, "binding name")
        content = content.model_copy(update={"binding": Binding(namespace=bound_ns, name=content.binding.name)})
    return content


async def _check_binding(entities: EntityStore, identity: Identity, binding: Binding) -> None:
    """The bound package must be readable by the caller (403 otherwise, [OW] entitlement of the referenced
    package), exist (400), be a package (409) and not a binding (400) ([OW] Packages.checkBinding)."""
    owner = binding.namespace == identity.namespace.name
    bound = await entities.get_package(binding.namespace, binding.name)
    if bound is None:
        if not owner:
            raise not_authorized(binding.path)
        if await entities.get_action(binding.namespace, binding.name) is not None:
            raise Conflict(REQUESTED_BINDING_IS_NOT_VALID)
        raise BadRequest(BINDING_DOES_NOT_EXIST)
    if not owner and (bound.binding is not None or not bound.publish):
        raise not_authorized(binding.path)
    if bound.binding is not None:
        raise BadRequest(BINDING_CANNOT_REFERENCE_BINDING)


def _check_size(field: str, pairs: list[KeyValue] | None) -> None:
    size = sum(len(KeyValue.model_dump_json(p)) for p in pairs or [])
    if size > MAX_PARAMETERS_BYTES:
        raise EntityTooBig(field, size, MAX_PARAMETERS_BYTES)


def _with_binding_annotation(annotations: list[KeyValue], binding: Binding | None) -> list[KeyValue]:
    # [OW] Packages.bindingAnnotation: whatever the client sent under `binding` is dropped, and a binding
    # gets the annotation from the controller (clients listing packages read it there).
    kept = [p for p in annotations if p.key != BINDING_ANNOTATION]
    if binding is None:
        return kept
    return [*kept, KeyValue(key=BINDING_ANNOTATION, value=binding.model_dump())]


def _new_package(ns: str, name: str, content: PackagePut) -> Package:
    return Package(
        namespace=ns,
        name=name,
        version=content.version or "0.0.1",
        publish=bool(content.publish),
        binding=content.binding,
        parameters=content.parameters or [],
        annotations=_with_binding_annotation(content.annotations or [], content.binding),
        updated=now_ms(),
    )


def _updated_package(existing: Package, content: PackagePut) -> Package:
    # [OW] Packages.update: each field given replaces the old one (annotations too, not merged).
    binding = content.binding or existing.binding
    annotations = existing.annotations if content.annotations is None else content.annotations
    return existing.model_copy(
        update={
            "binding": binding,
            "parameters": existing.parameters if content.parameters is None else content.parameters,
            "version": content.version or bump_patch(existing.version),
            "publish": existing.publish if content.publish is None else content.publish,
            "annotations": _with_binding_annotation(annotations, binding),
            "updated": now_ms(),
        }
    )


async def _all_actions(entities: EntityStore, path: str) -> list[ActionSummary]:
    """Every action of a package ([OW] lists them with limit 0: all), page by page."""
    actions: list[ActionSummary] = []
    while True:
        page = await entities.list_actions(path, _PAGE, len(actions))
        actions.extend(page)
        if len(page) < _PAGE:
            return actions


def _is_feed(action: ActionSummary) -> bool:
    return any(p.key == FEED_ANNOTATION for p in action.annotations)


def _package_action(action: ActionSummary) -> dict[str, Any]:
    # [OW] WhiskPackageAction: what a package's GET says of each of its actions.
    return {"name": action.name, "version": action.version, "annotations": pairs_to_api(action.annotations)}
