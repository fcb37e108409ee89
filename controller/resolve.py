"""Finding the action a request names, through packages and bindings, with what the caller may reach.

``/ns/name`` is an action of ``ns``; ``/ns/pkg/name`` an action of package ``pkg`` of ``ns``, and when ``pkg`` is a
binding, the action of the package it binds ([OW] Actions.scala ``mergeActionWithPackageAndDispatch``,
Packages.scala ``resolvePackageName``). The caller may reach their own namespace's entities, and another
namespace's only through a ``publish``ed package ([OW] entitlement/PackageCollection.scala). The action comes
back with the parameters it inherits: package < binding < action, as OpenWhisk's ``WhiskAction.inherit``.
"""

from __future__ import annotations

from pywhisk.entities import DEFAULT_NAMESPACE, Action, FullyQualifiedName, Package, merge_pairs
from pywhisk.errors import Forbidden, NotFound
from pywhisk.identity import Identity
from pywhisk.store import EntityStore


def namespace_of(identity: Identity, namespace: str) -> str:
    """``_`` is the caller's own namespace."""
    return identity.namespace.name if namespace == DEFAULT_NAMESPACE else namespace


async def resolve_package(entities: EntityStore, identity: Identity, namespace: str, name: str) -> Package:
    """The package ``/namespace/name`` as the caller may use it: a binding is followed to the package it binds,
    whose parameters it overrides. 404 if missing (or its bound package is), 403 if not the caller's and not
    published."""
    own = namespace == identity.namespace.name
    package = await entities.get_package(namespace, name)
    if package is None:
        raise NotFound() if own else Forbidden()
    if not own and not package.publish:
        raise Forbidden()
    if package.binding is None:
        return package
    bound = await entities.get_package(package.binding.namespace, package.binding.name)
    if bound is None:
        raise NotFound()
    if bound.namespace != identity.namespace.name and not bound.publish:
        raise Forbidden()
    if bound.binding is not None:  # OpenWhisk refuses bindings of bindings when they are made
        raise NotFound()
    return bound.model_copy(update={"parameters": merge_pairs(bound.parameters, package.parameters)})


async def resolve_action(entities: EntityStore, identity: Identity, name: FullyQualifiedName) -> Action:
    """The action ``name`` names, with its inherited parameters; 404/403 as OpenWhisk."""
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
