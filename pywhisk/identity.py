"""Subjects, namespaces and keys: who is calling and what they may touch.

Keys are OpenWhisk's ``uuid:key`` credentials (a UUID and 64 alphanumeric characters, [OW] Secret.scala),
generated with ``secrets`` and stored only as a salted HMAC-SHA256 (``key_hash``). The key carries
64·log2(62) ≈ 381 bits of entropy, so a fast hash is enough: a slow KDF protects low-entropy passwords
and would only cost time on the request path.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import string
import uuid as uuidlib

from pydantic import BaseModel

# The well-known guest credential of OpenWhisk's standalone and ansible deployments
# ([OW] ansible/files/auth.guest); seeded on first start so `wsk` works out of the box.
GUEST_UUID = "23bc46b1-71f6-4ed5-8c54-816aa4f8c502"
GUEST_KEY = "123zO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP"
GUEST_NAMESPACE = "guest"

KEY_LENGTH = 64
_KEY_ALPHABET = string.ascii_letters + string.digits
_HASH_SCHEME = "hmac-sha256"


class NamespaceLimits(BaseModel):
    """A namespace's own throttles (OpenWhisk's ``UserLimits``); None means the system default."""

    invocationsPerMinute: int | None = None
    concurrentInvocations: int | None = None
    firesPerMinute: int | None = None

    def is_empty(self) -> bool:
        return self.invocationsPerMinute is None and self.concurrentInvocations is None and self.firesPerMinute is None


# The seeded guest is the identity every test, benchmark and `loadgen` run uses by default (loadgen holds up
# to 20,000 activations in flight and sends thousands per minute), so it gets limits of its own far above
# OpenWhisk's defaults. Other namespaces get the system defaults (60/min, 30 concurrent) unless an operator
# sets theirs with `pywhisk admin namespace limits set`.
GUEST_LIMITS = NamespaceLimits(invocationsPerMinute=1_000_000, concurrentInvocations=100_000, firesPerMinute=1_000_000)


class SubjectNamespace(BaseModel):
    """One namespace a subject holds a key for: the key's uuid and the salted hash of its secret."""

    name: str
    uuid: str
    key_hash: str


class Subject(BaseModel):
    """A subject document (OpenWhisk's ``WhiskAuth``: ``{subject, namespaces: [{name, uuid, key}]}``),
    with the key replaced by its hash."""

    subject: str
    namespaces: list[SubjectNamespace]

    def namespace_for_uuid(self, uuid: str) -> SubjectNamespace | None:
        return next((ns for ns in self.namespaces if ns.uuid == uuid), None)

    def namespace_named(self, name: str) -> SubjectNamespace | None:
        return next((ns for ns in self.namespaces if ns.name == name), None)


def generate_key() -> AuthKey:
    """A fresh ``uuid:key`` from the operating system's CSPRNG."""
    return AuthKey(
        uuid=str(uuidlib.UUID(bytes=secrets.token_bytes(16), version=4)),
        key="".join(secrets.choice(_KEY_ALPHABET) for _ in range(KEY_LENGTH)),
    )


def hash_key(key: str) -> str:
    """``hmac-sha256$<salt hex>$<digest hex>`` with a fresh 16-byte salt."""
    salt = secrets.token_bytes(16)
    return f"{_HASH_SCHEME}${salt.hex()}${_digest(salt, key)}"


def verify_key(key: str, key_hash: str) -> bool:
    """Whether ``key`` is the secret behind ``key_hash``; the comparison is constant-time."""
    scheme, _, rest = key_hash.partition("$")
    salt_hex, _, digest = rest.partition("$")
    try:
        salt = bytes.fromhex(salt_hex)
    except ValueError:
        salt = b""
    expected = _digest(salt, key)
    return hmac.compare_digest(expected.encode(), digest.encode()) and scheme == _HASH_SCHEME and bool(salt)


def _digest(salt: bytes, key: str) -> str:
    return hmac.new(salt, key.encode(), hashlib.sha256).hexdigest()


def valid_auth_key(uuid: str, key: str) -> bool:
    """OpenWhisk's credential form: a UUID and exactly 64 alphanumeric characters."""
    try:
        uuidlib.UUID(uuid)
    except ValueError:
        return False
    return len(key) == KEY_LENGTH and all(c in _KEY_ALPHABET for c in key)


class Namespace(BaseModel):
    name: str
    uuid: str


class AuthKey(BaseModel):
    uuid: str
    key: str

    @property
    def api_key(self) -> str:
        return f"{self.uuid}:{self.key}"


class Identity(BaseModel):
    """An authenticated caller: subject, their namespace and key (OpenWhisk's ``Identity``)."""

    subject: str
    namespace: Namespace
    authkey: AuthKey
    rights: list[str] = ["READ", "PUT", "DELETE", "ACTIVATE"]
    limits: NamespaceLimits = NamespaceLimits()


def guest_identity() -> Identity:
    return Identity(
        subject=GUEST_NAMESPACE,
        namespace=Namespace(name=GUEST_NAMESPACE, uuid=GUEST_UUID),
        authkey=AuthKey(uuid=GUEST_UUID, key=GUEST_KEY),
        limits=GUEST_LIMITS,
    )


def guest_subject() -> Subject:
    """The guest's subject document, its well-known key stored hashed like any other."""
    return Subject(
        subject=GUEST_NAMESPACE,
        namespaces=[SubjectNamespace(name=GUEST_NAMESPACE, uuid=GUEST_UUID, key_hash=hash_key(GUEST_KEY))],
    )


def parse_basic_auth(header: str | None) -> tuple[str, str] | None:
    """``Basic base64(uuid:key)`` → ``(uuid, key)``, or None when absent or malformed."""
    if not header:
        return None
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    uuid, sep, key = decoded.partition(":")
    if not sep or not uuid or not key:
        return None
    return uuid, key
