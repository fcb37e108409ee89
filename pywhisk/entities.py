"""Actions as OpenWhisk stores and returns them (reference/openwhisk.md §2)."""

from __future__ import annotations

import base64
import binascii
import re
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from pywhisk.errors import BadRequest

# [OW] EntityPath.scala: one word character, or up to 256 of [\w@ .&-] not ending in a space.
_ENTITY_NAME = re.compile(r"\A([\w]|[\w][\w@ .&-]{0,254}[\w@.&-])\Z", re.ASCII)  # Java's \w is ASCII
DEFAULT_NAMESPACE = "_"


def validate_name(name: str, what: str = "name") -> str:
    """Return ``name`` if it is a legal OpenWhisk entity name, else raise 400."""
    if not _ENTITY_NAME.match(name):
        raise BadRequest(
            f"The {what} '{name}' is not valid: names start with a letter, digit or underscore and hold "
            "at most 256 characters from [a-zA-Z0-9_@ .&-]."
        )
    return name


def now_ms() -> int:
    return int(time.time() * 1000)


class KeyValue(BaseModel):
    """One parameter or annotation: ``{"key", "value"[, "init"]}``."""

    model_config = ConfigDict(extra="forbid")

    key: str
    value: Any = None
    init: bool | None = None


def pairs_to_api(pairs: list[KeyValue]) -> list[dict[str, Any]]:
    """Parameters or annotations as OpenWhisk writes them: ``key`` and ``value`` always (even null),
    ``init`` only when set."""
    return [{"key": p.key, "value": p.value, **({"init": p.init} if p.init is not None else {})} for p in pairs]


def as_dict(pairs: list[KeyValue]) -> dict[str, Any]:
    return {p.key: p.value for p in pairs}


def merge_pairs(base: list[KeyValue], overrides: list[KeyValue]) -> list[KeyValue]:
    """Overrides win key by key; order is base order, then new keys."""
    merged = {p.key: p for p in base}
    merged.update({p.key: p for p in overrides})
    return list(merged.values())


class LimitRange(BaseModel):
    minimum: int
    maximum: int
    default: int


# [OW] Limits.scala and application.conf; concurrency's upper bound follows OpenWhisk's local env (500).
TIMEOUT_MS = LimitRange(minimum=100, maximum=300_000, default=60_000)
MEMORY_MB = LimitRange(minimum=128, maximum=512, default=256)
LOGS_MB = LimitRange(minimum=0, maximum=10, default=10)
CONCURRENCY = LimitRange(minimum=1, maximum=500, default=1)


class Limits(BaseModel):
    """Per-action limits; a stored or returned action always has all four."""

    timeout: int = TIMEOUT_MS.default
    memory: int = MEMORY_MB.default
    logs: int = LOGS_MB.default
    concurrency: int = CONCURRENCY.default


class LimitsPut(BaseModel):
    """Limits in a PUT body: every field optional (default on create, old value on update)."""

    model_config = ConfigDict(extra="ignore")

    timeout: int | None = None
    memory: int | None = None
    logs: int | None = None
    concurrency: int | None = None

    def apply_to(self, base: Limits) -> Limits:
        limits = base.model_copy(update=self.model_dump(exclude_none=True))
        _check_range("duration", limits.timeout, TIMEOUT_MS, "milliseconds")
        _check_range("memory size", limits.memory, MEMORY_MB, "MB")
        _check_range("log size", limits.logs, LOGS_MB, "MB")
        _check_range("concurrency", limits.concurrency, CONCURRENCY, "")
        return limits


def _check_range(what: str, value: int, allowed: LimitRange, unit: str) -> None:
    # Message texts from [OW] Messages: "memory size 1024 MB exceeds allowed threshold of 512 MB".
    suffix = f" {unit}" if unit else ""
    if value > allowed.maximum:
        raise BadRequest(f"{what} {value}{suffix} exceeds allowed threshold of {allowed.maximum}{suffix}")
    if value < allowed.minimum:
        raise BadRequest(f"{what} {value}{suffix} below allowed threshold of {allowed.minimum}{suffix}")


def is_binary_code(code: str) -> bool:
    """OpenWhisk's rule: binary iff the trimmed code is valid base64 of a length divisible by 4."""
    trimmed = code.strip()
    if not trimmed or len(trimmed) % 4:
        return False
    try:
        base64.b64decode(trimmed, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


class Exec(BaseModel):
    """The action's code and how to run it. ``binary`` is computed by the server, never trusted."""

    model_config = ConfigDict(extra="ignore")

    kind: str
    code: str | None = None
    binary: bool = False
    main: str | None = None
    image: str | None = None


class Action(BaseModel):
    """A stored action document (``WhiskAction``); ``rev`` is the store's revision, never serialised."""

    namespace: str
    name: str
    version: str = "0.0.1"
    publish: bool = False
    exec: Exec
    parameters: list[KeyValue] = Field(default_factory=list)
    annotations: list[KeyValue] = Field(default_factory=list)
    limits: Limits = Field(default_factory=Limits)
    updated: int = Field(default_factory=now_ms)
    rev: str | None = Field(default=None, exclude=True)

    @property
    def fully_qualified_name(self) -> str:
        """``/ns[/pkg]/name``, as used in ``__OW_ACTION_NAME`` and activation paths."""
        return f"/{self.namespace}/{self.name}"

    @property
    def path(self) -> str:
        """The activation record's ``path`` annotation: the qualified name without a leading slash."""
        return f"{self.namespace}/{self.name}"

    def annotation(self, key: str, default: Any = None) -> Any:
        for pair in self.annotations:
            if pair.key == key:
                return pair.value
        return default

    def to_api(self, include_code: bool = True) -> dict[str, Any]:
        doc = self.model_dump(exclude_none=True, exclude={"parameters", "annotations"})
        doc["parameters"] = pairs_to_api(self.parameters)
        doc["annotations"] = pairs_to_api(self.annotations)
        if not include_code:
            doc["exec"].pop("code", None)
        return doc

    def summary(self) -> dict[str, Any]:
        """The list row ([OW] WhiskAction.summaryAsJson)."""
        return ActionSummary.of(self).to_api()


class ActionSummary(BaseModel):
    """An action as ``GET .../actions`` lists it: everything but code and parameters
    ([OW] WhiskAction.summaryAsJson, and the ``actions`` view of whisks_design_document_for_entities_db_v2.1.0.json)."""

    namespace: str
    name: str
    version: str = "0.0.1"
    publish: bool = False
    annotations: list[KeyValue] = Field(default_factory=list)
    limits: Limits = Field(default_factory=Limits)
    binary: bool = False
    updated: int = 0

    @classmethod
    def of(cls, action: Action) -> ActionSummary:
        """The summary of a stored action (what a backend keeps beside it)."""
        # Built from a validated action: nothing to validate again (this runs on every write).
        return cls.model_construct(
            namespace=action.namespace,
            name=action.name,
            version=action.version,
            publish=action.publish,
            annotations=action.annotations,
            limits=action.limits,
            binary=action.exec.binary,
            updated=action.updated,
        )

    def to_api(self) -> dict[str, Any]:
        """The list row, key for key what ``Action.summary()`` of the whole action gives."""
        return {
            "namespace": self.namespace,
            "name": self.name,
            "version": self.version,
            "publish": self.publish,
            "annotations": pairs_to_api(self.annotations),
            "limits": self.limits.model_dump(),
            "exec": {"binary": self.binary},
            "updated": self.updated,
        }


class ActionPut(BaseModel):
    """The body of ``PUT /actions/{name}`` (``WhiskActionPut``); every field optional."""

    model_config = ConfigDict(extra="ignore")

    exec: Exec | None = None
    parameters: list[KeyValue] | None = None
    annotations: list[KeyValue] | None = None
    limits: LimitsPut | None = None
    version: str | None = None
    publish: bool | None = None
    delAnnotations: list[str] | None = None


def bump_patch(version: str) -> str:
    """0.0.1 -> 0.0.2, as OpenWhisk does on every update without an explicit version."""
    parts = version.split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        return "0.0.1"
    major, minor, patch = (int(p) for p in parts)
    return f"{major}.{minor}.{patch + 1}"
