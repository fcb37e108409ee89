"""Basic authentication (``uuid:key``) and entitlement to a namespace.

A key is checked against the salted hash in its subject document (``pywhisk.identity.verify_key``). Found
identities and their namespace's limits are cached for ``cache_ttl_s`` (5 s by default,
``PYWHISK_IDENTITY_CACHE_TTL_S``), so a key deleted or a limit changed with ``pywhisk admin`` takes effect
within that time on every controller, without a restart. Within the TTL a repeated credential is compared
(constant-time) with the one already verified, so the hash is not recomputed on every request.

An identity in use is read again ahead of its expiry (in the last ``REFRESH_AHEAD`` of its TTL), in the
background, while the cached one still answers: a namespace sending steady traffic never waits for the store.
The reload was a thread hop on every request path once per TTL, and beside an event loop kept busy by another
namespace a thread waits for the GIL: it held one request for seconds (docs/benchmarks.md, issue 12). An entry is
never served past its TTL, so a key deleted still stops working within the TTL.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request

from pywhisk.entities import DEFAULT_NAMESPACE
from pywhisk.errors import Forbidden, Unauthorized
from pywhisk.identity import (
    AuthKey,
    Identity,
    Namespace,
    NamespaceLimits,
    SubjectNamespace,
    hash_key,
    parse_basic_auth,
    verify_key,
)
from pywhisk.store import SubjectStore

# akka-http's text for a request without credentials, which OpenWhisk passes through.
CREDENTIALS_MISSING = "The resource requires authentication, which was not supplied with the request"
# Verified against when the uuid is unknown, so an unknown uuid costs what a wrong key costs.
_NOBODY_HASH = hash_key("0" * 64)
_MAX_CACHED = 10_000
# The last part of an entry's TTL in which a request starts its reload in the background (module docstring).
REFRESH_AHEAD = 0.2


@dataclass
class _Cached:
    """What the store said about one uuid, and the credential last verified against it."""

    entry: SubjectNamespace | None
    identity: Identity | None
    expires: float
    verified_key: str | None = None


class Authenticator:
    """Looks identities up by uuid, with a short cache so a key or limit change still takes effect quickly."""

    def __init__(
        self, store: SubjectStore, cache_ttl_s: float = 5.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._store = store
        self._ttl = cache_ttl_s
        self._clock = clock
        self._cache: dict[str, _Cached] = {}
        # One store read per uuid at a time: when an entry expires under load, every request in flight would
        # otherwise read the subject (two CouchDB reads each) until the first read returns (issue 15).
        self._loading: dict[str, asyncio.Future[_Cached]] = {}
        self._owners: dict[str, tuple[Identity | None, float]] = {}

    async def identify(self, authorization: str | None) -> Identity:
        """The caller's identity (with its namespace's own limits), or ``Unauthorized``."""
        if not authorization:
            raise Unauthorized(CREDENTIALS_MISSING)
        credentials = parse_basic_auth(authorization)
        if credentials is None:
            raise Unauthorized()
        uuid, key = credentials
        cached = self._cache.get(uuid)
        now = self._clock()
        if cached is None or cached.expires <= now:
            cached = await self._load_once(uuid)
        elif cached.expires - now < self._ttl * REFRESH_AHEAD and uuid not in self._loading:
            self._start_load(uuid)  # this request goes on with the cached identity
        if cached.verified_key is not None and hmac.compare_digest(cached.verified_key.encode(), key.encode()):
            assert cached.identity is not None
            return cached.identity
        matches = verify_key(key, cached.entry.key_hash if cached.entry else _NOBODY_HASH)
        if cached.identity is None or not matches:
            raise Unauthorized()
        cached.verified_key = key
        cached.identity = cached.identity.model_copy(update={"authkey": AuthKey(uuid=uuid, key=key)})
        return cached.identity

    async def owner_of(self, namespace: str) -> Identity | None:
        """The identity a web action of ``namespace`` runs as (its throttles, its records): the first subject
        holding a key for it, None when nobody does ([OW] ``AuthenticationDirectiveProvider.identityByNamespace``).
        Cached like ``identify``, misses too, so anonymous requests for made-up namespaces cost no store reads.
        It carries no usable key: the store keeps only the key's hash."""
        cached = self._owners.get(namespace)
        if cached is None or cached[1] <= self._clock():
            cached = (await self._load_owner(namespace), self._clock() + self._ttl)
            if len(self._owners) >= _MAX_CACHED:
                self._owners.clear()
            self._owners[namespace] = cached
        return cached[0]

    async def _load_owner(self, namespace: str) -> Identity | None:
        for subject in await self._store.list_subjects(namespace):
            entry = subject.namespace_named(namespace)
            if entry is not None:
                limits = await self._store.get_limits(namespace)
                return Identity(
                    subject=subject.subject,
                    namespace=Namespace(name=namespace, uuid=entry.uuid),
                    authkey=AuthKey(uuid=entry.uuid, key="0" * 64),
                    limits=limits or NamespaceLimits(),
                )
        return None

    async def _load_once(self, uuid: str) -> _Cached:
        loading = self._loading.get(uuid) or self._start_load(uuid)
        # Shielded: a caller that goes away does not cancel the read the others wait for.
        return await asyncio.shield(loading)

    def _start_load(self, uuid: str) -> asyncio.Future[_Cached]:
        loading = asyncio.ensure_future(self._load(uuid))
        self._loading[uuid] = loading
        loading.add_done_callback(lambda done: self._loaded(uuid, done))
        return loading

    def _loaded(self, uuid: str, done: asyncio.Future[_Cached]) -> None:
        if self._loading.get(uuid) is done:
            del self._loading[uuid]
        if not done.cancelled():
            done.exception()  # retrieved: a failure every waiter left is not logged as never retrieved

    async def _load(self, uuid: str) -> _Cached:
        subject = await self._store.get_subject_by_uuid(uuid)
        entry = subject.namespace_for_uuid(uuid) if subject else None
        cached = _Cached(entry=None, identity=None, expires=self._clock() + self._ttl)
        if subject is None or entry is None:
            return cached  # unknown uuids are not cached: a key created a moment ago works at once
        limits = await self._store.get_limits(entry.name)
        cached.entry = entry
        cached.identity = Identity(
            subject=subject.subject,
            namespace=Namespace(name=entry.name, uuid=uuid),
            authkey=AuthKey(uuid=uuid, key="0" * 64),  # replaced by the verified key
            limits=limits or NamespaceLimits(),
        )
        previous = self._cache.get(uuid)
        if previous is not None and previous.verified_key is not None and previous.entry == entry:
            # The same key hash: the key verified against it still matches, and need not be hashed again.
            cached.verified_key = previous.verified_key
            cached.identity = cached.identity.model_copy(
                update={"authkey": AuthKey(uuid=uuid, key=previous.verified_key)}
            )
        if len(self._cache) >= _MAX_CACHED:
            self._cache.clear()
        self._cache[uuid] = cached
        return cached


async def authenticate(request: Request) -> Identity:
    """FastAPI dependency: the caller's identity, or 401."""
    authenticator: Authenticator = request.app.state.authenticator
    return await authenticator.identify(request.headers.get("authorization"))


def entitled_namespace(identity: Identity, namespace: str) -> str:
    """Resolve ``_`` to the caller's namespace; any other namespace but theirs is 403."""
    if namespace in (DEFAULT_NAMESPACE, identity.namespace.name):
        return identity.namespace.name
    raise Forbidden()
