"""Bus messages between controllers and invokers, shaped after OpenWhisk's (reference §5.2)."""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, Field

from pywhisk.activation import Activation
from pywhisk.identity import Identity

M = TypeVar("M", bound=BaseModel)


class Serialized(bytes):
    """A message's bytes that remember the message they were made from.

    The in-process buses (memory, SQLite) hand a consumer the very bytes object that was sent, so a consumer in
    the process that sent it takes the message back with ``parse`` instead of parsing and validating it again
    (~10 % of standalone's CPU per warm invoke, issue 15). Bytes from Kafka or a journal replay are plain
    bytes and are parsed and validated as before. Receivers treat messages as read-only, so sharing is safe.
    """

    message: BaseModel


def serialized(message: BaseModel, data: bytes) -> Serialized:
    """``data`` (the wire form of ``message``) as ``Serialized`` bytes remembering ``message``."""
    value = Serialized(data)
    value.message = message
    return value


def parse(cls: type[M], value: bytes) -> M:
    """The ``cls`` message in ``value``: the sender's own object when it never left this process, else validated
    from JSON (``ValidationError`` or ``JSONDecodeError`` when malformed)."""
    if type(value) is Serialized and type(value.message) is cls:
        return value.message
    return cls.model_validate_json(value)


class TransactionId(BaseModel):
    """``transid``: the id and the controller's receipt time, the origin of ``waitTime``.

    OpenWhisk sends ``[id, startMillis]``; the start is kept as float milliseconds here so waitTime
    can be measured below the millisecond in benchmarks.
    """

    id: str
    start_ms: float

    def to_wire(self) -> list[Any]:
        return [self.id, self.start_ms]


class ActionRef(BaseModel):
    path: str  # the namespace (and package) of the action
    name: str
    version: str


class ControllerInstance(BaseModel):
    asString: str
    instanceType: str = "controller"


class ActivationMessage(BaseModel):
    """Controller → invoker: run this action with these parameters."""

    transid: list[Any]
    action: ActionRef
    revision: str | None = None
    user: Identity
    activationId: str
    rootControllerIndex: ControllerInstance
    blocking: bool
    content: dict[str, Any] | list[Any] | None = None
    initArgs: list[str] = Field(default_factory=list)
    cause: str | None = None
    # "sequence" for a component of a sequence: its record is annotated ``causedBy`` instead of ``waitTime``
    # ([OW] ContainerProxy.constructWhiskActivation; OpenWhisk derives it from ``cause``, kept apart here so
    # that a cause alone, as a trigger's, does not mark an activation as a sequence's).
    causedBy: str | None = None

    @property
    def transaction(self) -> TransactionId:
        return TransactionId(id=str(self.transid[0]), start_ms=float(self.transid[1]))

    def serialize(self) -> bytes:
        return serialized(self, orjson.dumps(self.model_dump(exclude_none=True)))


class InvokerInstance(BaseModel):
    instance: int
    uniqueName: str | None = None
    userMemory: str = "0 MB"
    instanceType: str = "invoker"


class CompletionMessage(BaseModel):
    """Invoker → controller: the activation ended (frees the load balancer's slot).

    With ``response`` set it is OpenWhisk's ``CombinedCompletionAndResultMessage``: the record
    travels with the ack so a blocking caller is answered without reading the store.
    """

    transid: list[Any]
    activationId: str
    isSystemError: bool
    instance: InvokerInstance
    response: Activation | None = None

    def serialize(self) -> bytes:
        return serialized(self, orjson.dumps(self.model_dump(exclude_none=True)))


class ResultMessage(BaseModel):
    """Invoker → controller: a blocking activation's record before it is stored ([OW] ResultMessage).

    Sent with ``Settings.result_before_record`` (by default over Kafka); the ``CompletionMessage`` (without the
    record) follows once the record is stored, and only it frees the load balancer's slot. Told apart from a
    completion by its lack of ``isSystemError``, as OpenWhisk's ``AcknowledgementMessage.parse`` does.
    """

    transid: list[Any]
    response: Activation

    def serialize(self) -> bytes:
        return serialized(self, orjson.dumps(self.model_dump(exclude_none=True)))


class CacheKey(BaseModel):
    """What a cache entry is about: an entity's document id (``ns/name``, ``ns/pkg/name``), as OpenWhisk's."""

    mainId: str


class CacheInvalidationMessage(BaseModel):
    """Controller → every controller, on ``cacheInvalidation``: the entity ``key`` was written or deleted by
    controller ``instanceId`` ([OW] RemoteCacheInvalidation.scala); the others drop it from their caches."""

    key: CacheKey
    instanceId: str

    def serialize(self) -> bytes:
        return orjson.dumps(self.model_dump())


class PingMessage(BaseModel):
    """Invoker → every controller, once a second on ``health``."""

    name: InvokerInstance
    isEnabled: bool = True
    # Not in OpenWhisk's ping: when it was sent (epoch ms), so a controller replaying the health
    # topic after a restart does not take old pings for signs of life.
    timestamp: float | None = None

    def serialize(self) -> bytes:
        return orjson.dumps(self.model_dump())


def invoker_topic(invoker_id: int) -> str:
    return f"invoker{invoker_id}"


def completed_topic(controller_id: int | str) -> str:
    return f"completed{controller_id}"


HEALTH_TOPIC = "health"
CACHE_INVALIDATION_TOPIC = "cacheInvalidation"
