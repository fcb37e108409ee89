"""Finding the package or action a request names, through bindings, with what the caller may reach.

``/ns/name`` is an action of ``ns``; ``/ns/pkg/name`` an action of package ``pkg`` of ``ns``, and when ``pkg`` is a
binding, the action of the package it binds ([OW] Actions.scala ``mergeActionWithPackageAndDispatch``).

Who may read a package ([OW] entitlement/PackageCollection.scala ``checkPackageReadPermission``):

- a package: its own namespace, or anyone when it is ``publish``ed;
- a binding: only its own namespace (a binding is never shared, even published), and only while the package it
  binds is readable by the same rule (own, or published);
- what does not exist is 404 to its own namespace and 403 to others, so nobody learns what another namespace holds.

Everything else of another namespace (its default package's actions, any write) is 403. The action comes back
with the parameters it inherits, package < binding < action, as OpenWhisk's ``WhiskPackage.inherit`` and
``WhiskAction.inherit``; the invoke's own parameters come last (``controller.activator.merged_params``).
"""

from __future__ import annotations

from dataclasses import dataclass

from pywhisk.entities import DEFAULT_NAMESPACE, Action, FullyQualifiedName, KeyValue, Package, merge_pairs
from pywhisk.errors import Conflict, Forbidden, NotFound, WhiskError
from pywhisk.identity import Identity
from pywhisk.store import EntityStore

# [OW] Messages.conformanceMessage: the name is taken by an entity of another collection (an action, say).
CONFORMANCE = "Resource by this name exists but is not in this collection."


class UnprocessableEntity(WhiskError):
    status_code = 422


class NotAllowedOnBinding(WhiskError):
    """[OW] Messages.notAllowedOnBinding: actions are created in (and deleted from) packages, never bindings."""

    status_code = 400
    default_message = "Operation not permitted on package binding."


def namespace_of(identity: Identity, namespace: str) -> str:
    """``_`` is the caller's own namespace."""
    return identity.namespace.name if namespace == DEFAULT_NAMESPACE else namespace


def not_authorized(resource: str) -> Forbidden:
    """[OW] Messages.notAuthorizedtoAccessResource, naming the resource as ``ns/name``."""
    return Forbidden(f"The supplied authentication is not authorized to access '{resource}'.")


@dataclass(frozen=True)
class ResolvedPackage:
    """A package as the caller reached it: ``entity`` as stored (a package or a binding) and ``package``, the one
    that holds the actions (``entity`` itself, or the package the binding binds)."""

    entity: Package
    package: Package

    @property
    def parameters(self) -> list[KeyValue]:
        """The package's parameters under the binding's: what the package's actions inherit."""
        if self.entity is self.package:
            return self.package.parameters
        return merge_pairs(self.package.parameters, self.entity.parameters)


async def read_package(entities: EntityStore, identity: Identity, namespace: str, name: str) -> ResolvedPackage:
    """The package or binding ``/namespace/name`` and the package holding its actions, if the caller may read
    them; 404 (the caller's own, missing), 403 (not readable or not theirs), 409 (an action by that name)."""
    resource = f"{namespace}/{name}"
    entity = await _readable(entities, identity, namespace, name, resource)
    if entity.binding is None:
        return ResolvedPackage(entity, entity)
    bound = entity.binding
    if (bound.namespace, bound.name) == (namespace, name):
        raise UnprocessableEntity(f"Package binding '{bound.path}' contains a circular reference.")
    package = await _readable(entities, identity, bound.namespace, bound.name, resource)
    if package.binding is not None:  # the API refuses bindings of bindings: one stored anyway binds nothing
        raise NotFound()
    return ResolvedPackage(entity, package)


async def resolve_package(entities: EntityStore, identity: Identity, namespace: str, name: str) -> Package:
    """The package whose actions ``/namespace/name`` reaches (the bound one for a binding), with the parameters
    its actions inherit (the binding's over the package's)."""
    resolved = await read_package(entities, identity, namespace, name)
    return resolved.package.model_copy(update={"parameters": resolved.parameters})


async def resolve_action(entities: EntityStore, identity: Identity, name: FullyQualifiedName) -> Action:
    """The action ``name`` names, with its inherited parameters; 404/403 as OpenWhisk. An action reached through
    a binding keeps its own ``namespace`` (``ns/pkg`` of the bound package), as OpenWhisk answers it."""
    if name.package is None:
        if name.namespace != identity.namespace.name:
            raise Forbidden()
        action = await entities.get_action(name.namespace, name.name)
        if action is None:
            raise NotFound()
        return action
    package = await resolve_package(entities, identity, name.namespace, name.package)
    action = await entities.get_action(package.path, name.name)
    if action is None:
        raise NotFound()
    if package.parameters:
        action = action.model_copy(update={"parameters": merge_pairs(package.parameters, action.parameters)})
    return action


async def writable_package(entities: EntityStore, identity: Identity, namespace: str, name: str) -> Package:
    """The package an action is created in or deleted from: the caller's own, existing, and not a binding
    ([OW] Actions.scala ``innerRoutes``: PUT and DELETE of ``/ns/pkg/name``)."""
    if namespace != identity.namespace.name:
        raise not_authorized(f"{namespace}/{name}")
    package = await entities.get_package(namespace, name)
    if package is None:
        if await entities.get_action(namespace, name) is not None:
            raise Conflict(CONFORMANCE)
        raise NotFound()
    if package.binding is not None:
        raise NotAllowedOnBinding()
    return package


async def _readable(entities: EntityStore, identity: Identity, namespace: str, name: str, resource: str) -> Package:
    owner = namespace == identity.namespace.name
    package = await entities.get_package(namespace, name)
    if package is None:
        if not owner:
            raise not_authorized(resource)
        if await entities.get_action(namespace, name) is not None:
            raise Conflict(CONFORMANCE)
        raise NotFound()
    if owner or (package.publish and package.binding is None):
        return package
    raise not_authorized(resource)
