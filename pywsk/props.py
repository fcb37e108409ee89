"""The `.wskprops` file: where pywsk, like `wsk`, keeps its API host, auth key and namespace.

The file holds `KEY=VALUE` lines (keys APIHOST, AUTH, NAMESPACE, APIVERSION). It lives at `~/.wskprops` unless
`$WSK_CONFIG_FILE` names another file (reference/openwhisk.md §6). Writing keeps every line it does not change,
so keys written by other tools (and comments) survive.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

PROPS_FILE_ENV = "WSK_CONFIG_FILE"

# What `pywhisk standalone` serves when nothing is configured (reference/openwhisk.md §1.1).
DEFAULT_APIHOST = "http://127.0.0.1:3233"
GUEST_AUTH = "23bc46b1-71f6-4ed5-8c54-816aa4f8c502:123zO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP"
DEFAULT_NAMESPACE = "_"
DEFAULT_APIVERSION = "v1"


def props_path() -> Path:
    """The properties file in use: `$WSK_CONFIG_FILE` if set, else `~/.wskprops`."""
    configured = os.environ.get(PROPS_FILE_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".wskprops"


def read_props(path: Path) -> dict[str, str]:
    """The KEY=VALUE pairs of `path`; a missing file has none. Lines without `=` and `#` comments are ignored."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    props: dict[str, str] = {}
    for line in text.splitlines():
        parsed = _parse_line(line)
        if parsed is not None:
            props[parsed[0]] = parsed[1]
    return props


def write_props(path: Path, updates: Mapping[str, str | None]) -> None:
    """Set (or, for a None value, remove) keys in `path`, keeping all other lines in place.

    Updated keys keep their position; new keys are appended. A new file is created readable by its owner only,
    since it holds an auth key.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        lines = []
    pending = dict(updates)
    kept: list[str] = []
    for line in lines:
        parsed = _parse_line(line)
        if parsed is None or parsed[0] not in updates:
            kept.append(line)
            continue
        if parsed[0] in pending:
            value = pending.pop(parsed[0])
            if value is not None:
                kept.append(f"{parsed[0]}={value}")
        # else: a duplicate of a key already written above; drop it so the file has one value per key.
    kept.extend(f"{key}={value}" for key, value in pending.items() if value is not None)
    content = "".join(f"{line}\n" for line in kept)
    if not path.exists():
        path.touch(mode=0o600)
    path.write_text(content, encoding="utf-8")


def normalize_apihost(apihost: str) -> str:
    """The API host as a base URL: `https://` is assumed when no scheme is given, as `wsk` does (§1.1)."""
    host = apihost.strip().rstrip("/")
    if "://" not in host:
        host = f"https://{host}"
    return host


def _parse_line(line: str) -> tuple[str, str] | None:
    stripped = line.strip()
    if not stripped or stripped.startswith("#") or "=" not in stripped:
        return None
    key, _, value = stripped.partition("=")
    return key.strip(), value.strip()
