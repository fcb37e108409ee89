"""Basic authentication (``uuid:key``) and entitlement to a namespace."""

from __future__ import annotations

import time

from fastapi import Request

from pywhisk.entities import DEFAULT_NAMESPACE
from pywhisk.errors import Forbidden, Unauthorized
from pywhisk.identity import AuthKey, Identity, Namespace, parse_basic_auth
from pywhisk.store import Store

# akka-http's text for a request without credentials, which OpenWhisk passes through.
CREDENTIALS_MISSING = "The resource requires authentication, which was not supplied with the request"
_NOBODY = Identity(subject="", namespace=Namespace(name="", uuid=""), authkey=AuthKey(uuid="", key="0" * 64), rights=[])


class Authenticator:
    """Looks identities up by uuid, with a short cache so a key change still takes effect quickly."""

    def __init__(self, store: Store, cache_ttl_s: float = 5.0) -> None:
        self._store = store
        self._ttl = cache_ttl_s
        self._cache: dict[str, tuple[Identity, float]] = {}

    async def identify(self, authorization: str | None) -> Identity:
        if not authorization:
            raise Unauthorized(CREDENTIALS_MISSING)
        credentials = parse_basic_auth(authorization)
        if credentials is None:
            raise Unauthorized()
        uuid, key = credentials
        identity = await self._lookup(uuid)
        # Compare against a dummy when the uuid is unknown, so both cases cost the same.
        matches = (identity or _NOBODY).matches_key(key)
        if identity is None or not matches:
            raise Unauthorized()
        return identity

    async def _lookup(self, uuid: str) -> Identity | None:
        cached = self._cache.get(uuid)
        now = time.monotonic()
        if cached and cached[1] > now:
            return cached[0]
        identity = await self._store.get_identity(uuid)
        if identity is not None:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[uuid] = (identity, now + self._ttl)
        return identity


async def authenticate(request: Request) -> Identity:
    """FastAPI dependency: the caller's identity, or 401."""
    authenticator: Authenticator = request.app.state.authenticator
    return await authenticator.identify(request.headers.get("authorization"))


def entitled_namespace(identity: Identity, namespace: str) -> str:
    """Resolve ``_`` to the caller's namespace; any other namespace but theirs is 403."""
    if namespace in (DEFAULT_NAMESPACE, identity.namespace.name):
        return identity.namespace.name
    raise Forbidden()
