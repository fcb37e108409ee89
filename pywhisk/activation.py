"""Activation records as OpenWhisk stores and returns them (reference/openwhisk.md §3)."""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, datetime
from enum import IntEnum
from typing import Any, Literal

import orjson
from pydantic import BaseModel, Field, PrivateAttr, TypeAdapter

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
    # The JSON of ``logs`` when it was made already (bounding a big record makes it), with the list and
    # its length it was made from: valid while ``logs`` is that list, unchanged in length.
    _logs_json: tuple[list[str], int, bytes] | None = PrivateAttr(default=None)

    def __eq__(self, other: object) -> bool:
        # Field by field, as pydantic's, but not the kept JSON of the logs: a cache, not part of the record.
        if not isinstance(other, Activation):
            return NotImplemented
        return type(self) is type(other) and self.__dict__ == other.__dict__

    @property
    def status_code(self) -> StatusCode:
        return StatusCode(self.response.statusCode)

    def annotation(self, key: str, default: Any = None) -> Any:
        for pair in self.annotations:
            if pair.key == key:
                return pair.value
        return default

    @classmethod
    def from_json(cls, data: bytes) -> Activation:
        """The record in ``data``, as a store wrote it (``orjson.dumps(record.document())``).

        The same as ``model_validate_json``, but a big record's logs (~7 MB, 100,000 lines) are parsed a
        slice at a time, each one C call, so that a thread running this lets the event loop take the GIL
        between slices, and their JSON is kept for ``document`` and ``to_api``. The logs are found where
        the serialiser put them, and the split is proved by serialising the rest again and comparing it
        with ``data``: anything else (another serialiser, a damaged document) is parsed whole.
        """
        if len(data) < BIG_RECORD_BYTES:
            return cls.model_validate_json(data)
        end = data.rfind(b'],"annotations":[')
        start = data.rfind(b',"logs":[', 0, end)
        if start < 0:
            return cls.model_validate_json(data)
        logs_json = data[start + 8 : end + 1]
        try:
            record = cls.model_validate_json(data[:start] + b',"logs":[]' + data[end + 1 :])
        except ValueError:
            return cls.model_validate_json(data)
        record._logs_json = (record.logs, 0, logs_json)
        if record.logs or orjson.dumps(record.document()) != data:
            return cls.model_validate_json(data)
        record.logs = _load_lines(logs_json)
        record.keep_logs_json(logs_json)
        return record

    def keep_logs_json(self, logs_json: bytes) -> None:
        """Remember ``logs_json`` (what ``orjson.dumps(self.logs)`` gives) for ``document`` and ``to_api``."""
        self._logs_json = (self.logs, len(self.logs), logs_json)

    def document(self, *, mode: Literal["python", "json"] = "python", exclude_none: bool = False) -> dict[str, Any]:
        """``model_dump``, with the logs as their JSON already made (``orjson.Fragment``) when there is one.

        A record cut at the store's bound holds ~7 MB of logs: the store and the API answer then copy bytes
        instead of serialising 100,000 lines again; ``orjson.dumps`` of either gives the same bytes.
        """
        return self._dump(mode=mode, exclude_none=exclude_none)

    def to_api(self) -> dict[str, Any]:
        """The full record as the API returns it (``toExtendedJson``); render it with ``orjson.dumps``."""
        doc = self._dump(exclude_none=True, exclude={"response", "annotations"})
        doc["response"] = self.response.to_api()
        doc["annotations"] = pairs_to_api(self.annotations)
        return doc

    def _dump(self, **dump: Any) -> dict[str, Any]:
        cached = self._logs_json
        if cached is None or cached[0] is not self.logs or cached[1] != len(self.logs):
            return self.model_dump(**dump)
        doc = self.model_copy(update={"logs": []}).model_dump(**dump)
        doc["logs"] = orjson.Fragment(cached[2])  # in the key's place: the dict keeps the field order
        return doc

    def summary(self) -> dict[str, Any]:
        """The list row ([OW] WhiskActivation.summaryAsJson)."""
        return ActivationSummary.of(self).to_api()


# How long a worker thread lets go of the GIL between two slices of a big record's work (``between_slices``): long
# enough for a thread it wakes to be scheduled and take the GIL; ~70 slices of a 10 MB log cost ~10 ms of wall time
# this way, and no CPU.
SLICE_PAUSE_S = 0.00005


def between_slices() -> None:
    """Call between two slices of a big record's work on a worker thread (formatting, bounding, serialising a
    10 MB log): lets go of the GIL for ``SLICE_PAUSE_S``, so that a thread waiting for it takes it now.

    Without this, the worker gives the GIL up only when the interpreter's switch interval (5 ms) forces it: the
    event loop, which takes the GIL again after every wait (each hand-off of another namespace's hello to the
    bus, the store and the executor threads and back), then waits up to 5 ms each time, and the hello up to
    tens of milliseconds for a record it has no part in. On the event loop's own thread it does nothing (a
    sleep there would stall every request)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        time.sleep(SLICE_PAUSE_S)


# A serialised record from this size on has its logs parsed a slice at a time (``Activation.from_json``).
BIG_RECORD_BYTES = 256 * 1024
_SLICE_BYTES = 64 * 1024
_LINES = TypeAdapter(list[str])


def _load_lines(logs_json: bytes) -> list[str]:
    """``orjson.loads(logs_json)`` for a compact JSON array of strings, validated, a slice at a time.

    A slice ends after a string: at a ``","`` whose quote is not escaped (an even run of backslashes
    before it; a run too long to look at is passed over, so an adversarial line only makes a slice longer).
    """
    lines: list[str] = []
    at, end = 1, len(logs_json) - 1  # inside the brackets
    while at < end:
        if at > 1:  # another namespace's request may be waiting for the GIL
            between_slices()
        cut = logs_json.find(b'","', at + _SLICE_BYTES, end)
        while cut >= 0 and not _closes_string(logs_json, cut):
            cut = logs_json.find(b'","', cut + 1, end)
        stop = end if cut < 0 else cut + 1
        lines.extend(_LINES.validate_json(b"[" + logs_json[at:stop] + b"]"))
        at = stop + 1
    return lines


def _closes_string(data: bytes, quote_at: int) -> bool:
    run = data[max(0, quote_at - 64) : quote_at]
    backslashes = len(run) - len(run.rstrip(b"\\"))
    return backslashes < 64 and backslashes % 2 == 0


class ActivationSummary(BaseModel):
    """An activation record as ``GET .../activations`` lists it: no result, no logs
    ([OW] WhiskActivation.summaryAsJson, and the ``activations`` view of
    whisks_design_document_for_activations_db_v2.1.0.json)."""

    activationId: str
    namespace: str
    name: str
    version: str = "0.0.1"
    publish: bool = False
    annotations: list[KeyValue] = Field(default_factory=list)
    start: int
    end: int = 0
    duration: int = 0
    cause: str | None = None
    statusCode: int = 0

    @classmethod
    def of(cls, activation: Activation) -> ActivationSummary:
        """The summary of a stored record (what a backend keeps beside it)."""
        # Built from a validated record: nothing to validate again (this runs on every record written).
        return cls.model_construct(
            activationId=activation.activationId,
            namespace=activation.namespace,
            name=activation.name,
            version=activation.version,
            publish=activation.publish,
            annotations=activation.annotations,
            start=activation.start,
            end=activation.end,
            duration=activation.duration,
            cause=activation.cause,
            statusCode=activation.response.statusCode,
        )

    def to_api(self) -> dict[str, Any]:
        """The list row, key for key what ``Activation.summary()`` of the whole record gives."""
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
            doc.update(end=self.end, duration=self.duration, statusCode=self.statusCode)
        return doc
