"""Entities as OpenWhisk stores and returns them: actions, packages, triggers, rules (reference/openwhisk.md §2).

An action inside a package is an ``Action`` whose ``namespace`` is ``ns/pkg``, as OpenWhisk's ``EntityPath``
(its document id is ``ns/pkg/name``): the stores, the invoker and the records need nothing else to know
about packages. A package is a ``Package``; a binding is a package with ``binding`` set.
"""

from __future__ import annotations

import re
import time
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator

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


_BASE64_PADDED = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="


def is_binary_code(code: str) -> bool:
    """OpenWhisk's rule: binary iff the trimmed code is valid base64 of a length divisible by 4.

    "Valid" is exactly what CPython's ``b64decode(code, validate=True)`` accepts, but checked without
    decoding: the decode ran on the event loop for every action PUT and cost ~12x this check for 1.4 MB of
    code (docs/benchmarks.md, issue 12, zipbomb). The strict decoder's rules, for a string of a length
    divisible by 4: only ASCII; no leading ``=``; the digits (everything before the trailing run of ``=``)
    all in the alphabet, so no ``=`` or whitespace among them; and after them, a quantum of 2 digits takes
    exactly ``==``, one of 3 exactly ``=``, whole quanta any multiple of 4 ``=`` (``AAAA====`` decodes).
    tests/unit/test_binary_code.py compares this with the running interpreter's decoder on every short
    string of a small alphabet and on random ones, so a change of CPython's rules shows there."""
    trimmed = code.strip()
    if not trimmed or len(trimmed) % 4 or not trimmed.isascii():
        return False
    data = trimmed.encode("ascii")
    if data.translate(None, _BASE64_PADDED):  # what is left: characters outside the alphabet and "="
        return False
    digits = data.find(b"=")  # the first "=" must start the trailing run, and not the code
    if digits == -1:
        return True
    padding = len(data) - digits
    # With the length divisible by 4, padding % 4 == 0 means whole quanta, 1 or 2 a quantum of 3 or 2 digits.
    return digits > 0 and (padding % 4 == 0 or padding < 3) and data.count(b"=", digits) == padding


class Exec(BaseModel):
    """The action's code and how to run it. ``binary`` is computed by the server, never trusted.
    A ``sequence`` has ``components`` (fully qualified action names) and no code."""

    model_config = ConfigDict(extra="ignore")

    kind: str
    code: str | None = None
    binary: bool = False
    main: str | None = None
    image: str | None = None
    components: list[str] | None = None


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


def split_namespace(path: str) -> tuple[str, str | None]:
    """An entity's ``namespace`` field → (the namespace, the package or None): ``ns/pkg`` → (ns, pkg)."""
    namespace, _, package = path.partition("/")
    return namespace, package or None


class FullyQualifiedName(BaseModel):
    """``/namespace[/package]/name`` ([OW] FullyQualifiedEntityName), as sequences' components, rules'
    ``action`` and bindings name entities."""

    model_config = ConfigDict(frozen=True)

    namespace: str
    package: str | None = None
    name: str

    @property
    def path(self) -> str:
        """The entity's ``namespace`` field: ``ns`` or ``ns/pkg``."""
        return f"{self.namespace}/{self.package}" if self.package else self.namespace

    def __str__(self) -> str:
        return f"/{self.path}/{self.name}"

    @classmethod
    def parse(cls, text: str, default_namespace: str) -> FullyQualifiedName:
        """``/ns/pkg/a``, ``/ns/a``, ``pkg/a`` or ``a`` (the last two in ``default_namespace``); ``_`` as the
        namespace means the default one. 400 with OpenWhisk's message for anything else."""
        absolute = text.startswith("/")
        parts = text[1:].split("/") if absolute else text.split("/")
        if absolute and len(parts) in (2, 3):
            namespace, rest = parts[0], parts[1:]
        elif not absolute and len(parts) in (1, 2):
            namespace, rest = default_namespace, parts
        else:
            raise BadRequest(f"The fully qualified name '{text}' is not valid.")
        if namespace == DEFAULT_NAMESPACE:
            namespace = default_namespace
        for part in (namespace, *rest):
            if not _ENTITY_NAME.match(part):
                raise BadRequest(f"The fully qualified name '{text}' is not valid.")
        package = rest[0] if len(rest) == 2 else None
        return cls(namespace=namespace, package=package, name=rest[-1])


class Binding(BaseModel):
    """What a package binding points at: another package, by namespace and name."""

    model_config = ConfigDict(extra="ignore")

    namespace: str
    name: str

    @property
    def path(self) -> str:
        """The bound package's actions' ``namespace`` field: ``ns/pkg``."""
        return f"{self.namespace}/{self.name}"


class Package(BaseModel):
    """A stored package document (``WhiskPackage``); a binding when ``binding`` is set."""

    namespace: str
    name: str
    version: str = "0.0.1"
    publish: bool = False
    binding: Binding | None = None
    parameters: list[KeyValue] = Field(default_factory=list)
    annotations: list[KeyValue] = Field(default_factory=list)
    updated: int = Field(default_factory=now_ms)
    rev: str | None = Field(default=None, exclude=True)

    @field_validator("binding", mode="before")
    @classmethod
    def _no_binding(cls, value: Any) -> Any:
        # OpenWhisk writes (and clients send) ``"binding": {}`` for a package that is not a binding.
        return None if value == {} else value

    @property
    def path(self) -> str:
        """The ``namespace`` field of the package's own actions: ``ns/pkg``."""
        return f"{self.namespace}/{self.name}"

    def annotation(self, key: str, default: Any = None) -> Any:
        for pair in self.annotations:
            if pair.key == key:
                return pair.value
        return default

    def to_api(self) -> dict[str, Any]:
        """The package as ``GET`` answers it before its actions are added; ``binding`` is ``{}`` when the
        package is not a binding, as OpenWhisk writes it."""
        return {
            "namespace": self.namespace,
            "name": self.name,
            "version": self.version,
            "publish": self.publish,
            "binding": self.binding.model_dump() if self.binding else {},
            "parameters": pairs_to_api(self.parameters),
            "annotations": pairs_to_api(self.annotations),
            "updated": self.updated,
        }

    def summary(self) -> dict[str, Any]:
        """The list row ([OW] WhiskPackage.summaryAsJson): no parameters."""
        return PackageSummary.of(self).to_api()


class EntitySummary(BaseModel):
    """An entity as a collection lists it: what every type's list row holds ([OW] WhiskEntity.summaryAsJson),
    kept beside the document so that listing reads no document. Packages add their binding; actions keep their
    own ``ActionSummary`` (limits and ``exec.binary``)."""

    namespace: str
    name: str
    version: str = "0.0.1"
    publish: bool = False
    annotations: list[KeyValue] = Field(default_factory=list)
    updated: int = 0

    @classmethod
    def of(cls, entity: Package | Trigger | Rule) -> Self:
        # Built from a validated entity: nothing to validate again (this runs on every write).
        return cls.model_construct(**{name: getattr(entity, name) for name in cls.model_fields})

    def to_api(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "name": self.name,
            "version": self.version,
            "publish": self.publish,
            "annotations": pairs_to_api(self.annotations),
            "updated": self.updated,
        }


class PackageSummary(EntitySummary):
    """A package as ``GET .../packages`` lists it."""

    binding: Binding | None = None

    @field_validator("binding", mode="before")
    @classmethod
    def _no_binding(cls, value: Any) -> Any:
        # OpenWhisk writes (and clients send) ``"binding": {}`` for a package that is not a binding.
        return None if value == {} else value

    def to_api(self) -> dict[str, Any]:
        return {**super().to_api(), "binding": self.binding.model_dump() if self.binding else {}}


class PackagePut(BaseModel):
    """The body of ``PUT /packages/{name}`` (``WhiskPackagePut``); every field optional."""

    model_config = ConfigDict(extra="ignore")

    binding: Binding | None = None
    parameters: list[KeyValue] | None = None
    annotations: list[KeyValue] | None = None
    version: str | None = None
    publish: bool | None = None

    @field_validator("binding", mode="before")
    @classmethod
    def _no_binding(cls, value: Any) -> Any:
        # OpenWhisk writes (and clients send) ``"binding": {}`` for a package that is not a binding.
        return None if value == {} else value


class EntityRef(BaseModel):
    """A fully qualified entity name as OpenWhisk writes it in JSON: ``{"path": "ns[/pkg]", "name": "a"}``
    ([OW] FullyQualifiedEntityName.serdes), the form of a rule's ``trigger`` and ``action``."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    path: str
    name: str

    @classmethod
    def of(cls, name: FullyQualifiedName) -> EntityRef:
        return cls(path=name.path, name=name.name)

    @property
    def fully_qualified_name(self) -> FullyQualifiedName:
        namespace, package = split_namespace(self.path)
        return FullyQualifiedName(namespace=namespace, package=package, name=self.name)

    @property
    def doc_id(self) -> str:
        """``ns[/pkg]/name``: how OpenWhisk keys a trigger's rules ([OW] serdesAsDocId)."""
        return f"{self.path}/{self.name}"

    def __str__(self) -> str:
        return f"/{self.doc_id}"


RULE_ACTIVE = "active"
RULE_INACTIVE = "inactive"


class ReducedRule(BaseModel):
    """A rule as its trigger keeps it ([OW] ReducedRule): what a fire needs without reading the rule."""

    action: EntityRef
    status: str = RULE_ACTIVE


class Trigger(BaseModel):
    """A stored trigger document (``WhiskTrigger``); ``rules`` maps each rule's ``ns/name`` to its action and
    status, so that a fire reads one document."""

    namespace: str
    name: str
    version: str = "0.0.1"
    publish: bool = False
    parameters: list[KeyValue] = Field(default_factory=list)
    annotations: list[KeyValue] = Field(default_factory=list)
    limits: dict[str, Any] = Field(default_factory=dict)  # [OW] TriggerLimits: none today, written as {}
    rules: dict[str, ReducedRule] | None = None
    updated: int = Field(default_factory=now_ms)
    rev: str | None = Field(default=None, exclude=True)

    @property
    def fully_qualified_name(self) -> FullyQualifiedName:
        return FullyQualifiedName(namespace=self.namespace, name=self.name)

    def annotation(self, key: str, default: Any = None) -> Any:
        for pair in self.annotations:
            if pair.key == key:
                return pair.value
        return default

    def to_api(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "namespace": self.namespace,
            "name": self.name,
            "version": self.version,
            "publish": self.publish,
            "parameters": pairs_to_api(self.parameters),
            "annotations": pairs_to_api(self.annotations),
            "limits": self.limits,
            "updated": self.updated,
        }
        if self.rules is not None:
            doc["rules"] = {key: rule.model_dump() for key, rule in self.rules.items()}
        return doc

    def summary(self) -> dict[str, Any]:
        return TriggerSummary.of(self).to_api()


class TriggerSummary(EntitySummary):
    """A trigger as ``GET .../triggers`` lists it."""


class TriggerPut(BaseModel):
    """The body of ``PUT /triggers/{name}`` (``WhiskTriggerPut``); every field optional."""

    model_config = ConfigDict(extra="ignore")

    parameters: list[KeyValue] | None = None
    annotations: list[KeyValue] | None = None
    limits: dict[str, Any] | None = None
    version: str | None = None
    publish: bool | None = None


class Rule(BaseModel):
    """A stored rule document (``WhiskRule``). Its status lives in its trigger's ``rules`` (OpenWhisk's design):
    the API answers it with ``status`` taken from there."""

    namespace: str
    name: str
    trigger: EntityRef
    action: EntityRef
    version: str = "0.0.1"
    publish: bool = False
    annotations: list[KeyValue] = Field(default_factory=list)
    updated: int = Field(default_factory=now_ms)
    rev: str | None = Field(default=None, exclude=True)

    @property
    def doc_id(self) -> str:
        """``ns/name``: the key of this rule in its trigger's ``rules``."""
        return f"{self.namespace}/{self.name}"

    def to_api(self, status: str) -> dict[str, Any]:
        """[OW] WhiskRuleResponse: the rule with its status."""
        return {
            "namespace": self.namespace,
            "name": self.name,
            "status": status,
            "trigger": self.trigger.model_dump(),
            "action": self.action.model_dump(),
            "version": self.version,
            "publish": self.publish,
            "annotations": pairs_to_api(self.annotations),
            "updated": self.updated,
        }

    def summary(self) -> dict[str, Any]:
        return RuleSummary.of(self).to_api()


class RuleSummary(EntitySummary):
    """A rule as ``GET .../rules`` lists it (OpenWhisk's rules view: no status; the API adds none either)."""


class RulePut(BaseModel):
    """The body of ``PUT /rules/{name}`` (``WhiskRulePut``): ``trigger`` and ``action`` as fully qualified names
    (strings such as ``/ns/t`` or ``{"path", "name"}`` objects, as OpenWhisk reads both)."""

    model_config = ConfigDict(extra="ignore")

    trigger: str | EntityRef | None = None
    action: str | EntityRef | None = None
    version: str | None = None
    publish: bool | None = None
    annotations: list[KeyValue] | None = None
    status: str | None = None
