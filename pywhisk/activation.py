"""Activation records as OpenWhisk stores and returns them (reference/openwhisk.md §3)."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from enum import IntEnum
from typing import Any

import orjson
from pydantic import BaseModel, Field

from pywhisk.entities import KeyValue, pairs_to_api


class StatusCode(IntEnum):
    """``response.statusCode``: the four outcomes of an activation."""

    SUCCESS = 0
    APPLICATION_ERROR = 1
    DEVELOPER_ERROR = 2
    WHISK_ERROR = 3

    @property
    def text(self) -> str:
        return _STATUS_TEXT[self]


_STATUS_TEXT = {
    StatusCode.SUCCESS: "success",
    StatusCode.APPLICATION_ERROR: "application error",
    StatusCode.DEVELOPER_ERROR: "action developer error",
    StatusCode.WHISK_ERROR: "whisk internal error",
}


class Messages:
    """Activation result texts, word for word from OpenWhisk's ``Messages`` and ``ActivationResult``."""

    @staticmethod
    def timed_out(timeout_ms: int) -> str:
        return f"The action exceeded its time limits of {timeout_ms} milliseconds."

    @staticmethod
    def timed_out_during_init(timeout_ms: int) -> str:
        return f"The action exceeded its time limits of {timeout_ms} milliseconds during initialization."

    memory_exhausted = "The action exhausted its memory and was aborted."
    init_exited = "The action did not initialize and exited unexpectedly."
    run_exited = "The action did not produce a valid response and exited unexpectedly."
    logs_missing = "The action did not initialize or run as expected. Log data might be missing."

    @staticmethod
    def invalid_run_response(raw: str) -> str:
        return f"The action did not produce a valid JSON or JSON Array response: {raw}"

    @staticmethod
    def invalid_init_response(raw: str) -> str:
        return f"The action failed during initialization: {raw}"

    @staticmethod
    def truncated_response(length: int, limit: int) -> str:
        return f"The action produced a response that exceeded the allowed length: {length} > {limit} bytes."

    @staticmethod
    def truncated_logs(limit_bytes: int) -> str:
        return f"Logs were truncated because the total bytes size exceeds the limit of {limit_bytes} bytes."


def new_activation_id() -> str:
    """32 random hex characters, the shape of OpenWhisk's dash-less UUIDs ([OW] ActivationId.scala).

    Ids must be unique, not secret: Python's PRNG (seeded from the OS) avoids a getrandom syscall
    per id, which showed up as 4.5 % of the event loop's time under load.
    """
    return f"{random.getrandbits(128):032x}"


def format_log_line(stream: str, line: str, when: datetime | None = None) -> str:
    """OpenWhisk's ``f"$time%-30s $stream: $line"`` with an ISO-8601 UTC timestamp."""
    stamp = (when or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return f"{stamp:<30} {stream}: {line}"


class ActivationResponse(BaseModel):
    """The stored ``response``: status code, result, and size of the serialised result."""

    statusCode: int
    result: Any = None
    size: int | None = None

    @classmethod
    def of(cls, status: StatusCode, result: Any) -> ActivationResponse:
        size = len(orjson.dumps(result)) if result is not None else None
        return cls(statusCode=int(status), result=result, size=size)

    @classmethod
    def error(cls, status: StatusCode, message: Any) -> ActivationResponse:
        return cls.of(status, {"error": message})

    @property
    def success(self) -> bool:
        return self.statusCode == StatusCode.SUCCESS

    def to_api(self) -> dict[str, Any]:
        # The REST output drops statusCode and adds success and status ([OW] ActivationResult.toExtendedJson).
        doc: dict[str, Any] = {
            "status": StatusCode(self.statusCode).text,
            "success": self.success,
            "result": self.result,
        }
        if self.size is not None:
            doc["size"] = self.size
        return doc


class Activation(BaseModel):
    """A stored activation record (``WhiskActivation``)."""

    activationId: str
    namespace: str
    name: str
    subject: str
    version: str = "0.0.1"
    publish: bool = False
    start: int
    end: int
    duration: int
    cause: str | None = None
    response: ActivationResponse
    logs: list[str] = Field(default_factory=list)
    annotations: list[KeyValue] = Field(default_factory=list)

    @property
    def status_code(self) -> StatusCode:
        return StatusCode(self.response.statusCode)

    def annotation(self, key: str, default: Any = None) -> Any:
        for pair in self.annotations:
            if pair.key == key:
                return pair.value
        return default

    def to_api(self) -> dict[str, Any]:
        """The full record as the API returns it (``toExtendedJson``)."""
        doc = self.model_dump(exclude_none=True, exclude={"response", "annotations"})
        doc["response"] = self.response.to_api()
        doc["annotations"] = pairs_to_api(self.annotations)
        return doc

    def summary(self) -> dict[str, Any]:
        """The list row ([OW] WhiskActivation.summaryAsJson)."""
        doc: dict[str, Any] = {
            "namespace": self.namespace,
            "name": self.name,
            "version": self.version,
            "publish": self.publish,
            "annotations": pairs_to_api(self.annotations),
            "activationId": self.activationId,
            "start": self.start,
        }
        if self.cause:
            doc["cause"] = self.cause
        if self.end:
            doc.update(end=self.end, duration=self.duration, statusCode=self.response.statusCode)
        return doc
