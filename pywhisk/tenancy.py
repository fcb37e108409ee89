"""Tenancy operations over the ``SubjectStore``: subjects, their keys and their namespaces' limits.

What ``pywhisk admin`` (wskadmin's ``user`` and ``limits`` commands) does, as plain async functions so the
controller's start-up (seeding the guest) and tests use the same code. Keys are generated here and only their
salted hash reaches the store; the clear ``uuid:key`` is returned once, to the caller that created it.
"""

from __future__ import annotations

import re

from pywhisk.identity import (
    GUEST_LIMITS,
    GUEST_NAMESPACE,
    GUEST_UUID,
    AuthKey,
    NamespaceLimits,
    Subject,
    SubjectNamespace,
    generate_key,
    guest_subject,
    hash_key,
    valid_auth_key,
)
from pywhisk.store import SubjectStore

# OpenWhisk's entity-name rule ([OW] EntityPath.scala), minus a leading underscore: subject and namespace
# names become CouchDB document ids, where `_` starts reserved ids (`_design/...`).
_NAME = re.compile(r"\A([A-Za-z0-9]|[A-Za-z0-9][\w@ .&-]{0,254}[\w@.&-])\Z", re.ASCII)
# wskadmin refuses shorter subjects ([OW] tools/admin/wskadmin `createUserCmd`).
MIN_SUBJECT_LENGTH = 5


class TenancyError(Exception):
    """An admin operation that cannot be done as asked; the message says why, in wskadmin's words."""


async def create_user(
    store: SubjectStore, subject: str, namespace: str | None = None, auth: str | None = None
) -> AuthKey:
    """Create ``subject`` with a key for ``namespace`` (default: a namespace named like the subject), or
    add that namespace to an existing subject. Returns the new ``uuid:key``, shown only this once."""
    subject = subject.strip()
    namespace = subject if namespace is None else namespace.strip()
    if len(subject) < MIN_SUBJECT_LENGTH:
        raise TenancyError(f"Subject name must be at least {MIN_SUBJECT_LENGTH} characters")
    _check_name(subject, "Subject")
    _check_name(namespace, "Namespace")
    key = _parse_auth(auth) if auth is not None else generate_key()
    if await store.get_subject_by_uuid(key.uuid) is not None:
        raise TenancyError(f"The uuid {key.uuid} already holds a key")
    existing = await store.get_subject(subject)
    entry = SubjectNamespace(name=namespace, uuid=key.uuid, key_hash=hash_key(key.key))
    if existing is None:
        await store.put_subject(Subject(subject=subject, namespaces=[entry]))
    elif existing.namespace_named(namespace) is not None:
        raise TenancyError("Namespace already exists")
    else:
        await store.put_subject(existing.model_copy(update={"namespaces": [*existing.namespaces, entry]}))
    return key


async def delete_user(store: SubjectStore, subject: str, namespace: str | None = None) -> Subject:
    """Delete the subject (all its keys), or only its key for ``namespace``. Returns what was removed."""
    existing = await store.get_subject(subject)
    if existing is None:
        raise TenancyError(f'Subject "{subject}" does not exist')
    if namespace is None:
        await store.delete_subject(subject)
        return existing
    entry = existing.namespace_named(namespace)
    if entry is None:
        raise TenancyError(f'Namespace "{namespace}" does not exist for "{subject}"')
    remaining = [ns for ns in existing.namespaces if ns.name != namespace]
    if remaining:
        await store.put_subject(existing.model_copy(update={"namespaces": remaining}))
    else:
        await store.delete_subject(subject)
    return existing.model_copy(update={"namespaces": [entry]})


async def set_limits(
    store: SubjectStore,
    namespace: str,
    *,
    invocations_per_minute: int | None = None,
    concurrent_invocations: int | None = None,
    fires_per_minute: int | None = None,
) -> NamespaceLimits:
    """Set the given limits of a namespace, keeping the ones not given (as wskadmin ``limits set``)."""
    _check_name(namespace, "Namespace")
    given = {
        "invocationsPerMinute": invocations_per_minute,
        "concurrentInvocations": concurrent_invocations,
        "firesPerMinute": fires_per_minute,
    }
    for name, value in given.items():
        if value is not None and value < 0:
            raise TenancyError(f"{name} must be 0 or more")
    if all(value is None for value in given.values()):
        raise TenancyError("No limits given: set at least one")
    current = await store.get_limits(namespace) or NamespaceLimits()
    limits = current.model_copy(update={k: v for k, v in given.items() if v is not None})
    await store.put_limits(namespace, limits)
    return limits


async def seed_guest_subject(store: SubjectStore) -> bool:
    """Create OpenWhisk's well-known guest (hashed key) with ``GUEST_LIMITS`` if it is missing.

    Returns whether it was created. The limits are written only together with the guest, so limits an
    operator later sets or deletes for ``guest`` stay as they left them across restarts.
    """
    if await store.get_subject_by_uuid(GUEST_UUID) is not None:
        return False
    await store.put_subject(guest_subject())
    if await store.get_limits(GUEST_NAMESPACE) is None:
        await store.put_limits(GUEST_NAMESPACE, GUEST_LIMITS)
    return True


def _check_name(name: str, what: str) -> None:
    if not _NAME.match(name):
        raise TenancyError(
            f"{what} '{name}' is not valid: it must start with a letter or digit and hold at most 256 "
            "characters from [a-zA-Z0-9_@ .&-]"
        )


def _parse_auth(auth: str) -> AuthKey:
    uuid, _, key = auth.partition(":")
    if not valid_auth_key(uuid, key):
        raise TenancyError("The authorization key must be uuid:key, a UUID and 64 letters and digits")
    return AuthKey(uuid=uuid, key=key)
