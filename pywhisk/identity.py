"""Subjects, namespaces and keys: who is calling and what they may touch."""

from __future__ import annotations

import base64
import binascii
import hmac

from pydantic import BaseModel

# The well-known guest credential of OpenWhisk's standalone and ansible deployments
# ([OW] ansible/files/auth.guest); seeded on first start so `wsk` works out of the box.
GUEST_UUID = "23bc46b1-71f6-4ed5-8c54-816aa4f8c502"
GUEST_KEY = "123zO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP"
GUEST_NAMESPACE = "guest"


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

    def matches_key(self, key: str) -> bool:
        return hmac.compare_digest(self.authkey.key.encode(), key.encode())


def guest_identity() -> Identity:
    return Identity(
        subject=GUEST_NAMESPACE,
        namespace=Namespace(name=GUEST_NAMESPACE, uuid=GUEST_UUID),
        authkey=AuthKey(uuid=GUEST_UUID, key=GUEST_KEY),
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
