"""Where loadgen finds its API host and key: options, then ``$WSK_CONFIG_FILE`` or ``~/.wskprops``, then defaults.

The properties file is the one ``wsk`` and ``pywsk`` write: ``KEY=VALUE`` lines with the keys ``APIHOST`` and
``AUTH`` (``#`` comments and lines without ``=`` are ignored).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

PROPS_FILE_ENV = "WSK_CONFIG_FILE"
DEFAULT_APIHOST = "http://127.0.0.1:3233"
# OpenWhisk's well-known guest key, which `pywhisk standalone` (and OpenWhisk standalone) seed.
GUEST_AUTH = "23bc46b1-71f6-4ed5-8c54-816aa4f8c502:123zO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP"


@dataclass(frozen=True)
class Target:
    """The API host (a base URL without ``/api/v1``) and the ``uuid:key`` to authenticate with."""

    apihost: str
    auth: str

    @property
    def credentials(self) -> tuple[str, str]:
        uuid, _, key = self.auth.partition(":")
        return uuid, key


def props_path(environ: Mapping[str, str] | None = None) -> Path:
    """The properties file in use: ``$WSK_CONFIG_FILE`` if set, else ``~/.wskprops``."""
    env = os.environ if environ is None else environ
    configured = env.get(PROPS_FILE_ENV)
    return Path(configured).expanduser() if configured else Path.home() / ".wskprops"


def parse_props(text: str) -> dict[str, str]:
    """The ``KEY=VALUE`` pairs of a properties file's text; the last value of a repeated key wins."""
    props: dict[str, str] = {}
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or "=" not in stripped:
            continue
        key, _, value = stripped.partition("=")
        props[key.strip()] = value.strip()
    return props


def read_props(path: Path) -> dict[str, str]:
    """The pairs of the file at ``path``; a missing or unreadable file has none."""
    try:
        return parse_props(path.read_text(encoding="utf-8"))
    except OSError:
        return {}


def normalize_apihost(apihost: str) -> str:
    """A base URL: ``https://`` is assumed without a scheme (as ``wsk`` does); a trailing ``/api/v1`` is dropped."""
    host = apihost.strip().rstrip("/")
    if "://" not in host:
        host = f"https://{host}"
    if host.endswith("/api/v1"):
        host = host[: -len("/api/v1")]
    return host


def resolve_target(apihost: str | None, auth: str | None, environ: Mapping[str, str] | None = None) -> Target:
    """The target from explicit options, else the properties file, else the standalone defaults."""
    props = read_props(props_path(environ))
    return Target(
        apihost=normalize_apihost(apihost or props.get("APIHOST") or DEFAULT_APIHOST),
        auth=auth or props.get("AUTH") or GUEST_AUTH,
    )
