"""From what an executor answered to an activation response, as OpenWhisk's ActivationResult does
(``processInitResponseContent`` / ``processRunResponseContent``, reference/openwhisk.md §3-4)."""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson

from pywhisk.activation import Activation, ActivationResponse, Messages, StatusCode, between_slices, format_log_line
from pywhisk.executor import ProxyResult

# [OW] application.conf: activation results are at most 1 MB.
MAX_RESULT_BYTES = 1024 * 1024
# Room left in a stored record for what a store adds (CouchDB's _id, _rev, entityType) and the annotations.
RECORD_RESERVE_BYTES = 16 * 1024
# Lines measured or serialised per C call when bounding a record (~0.2 ms each for OpenWhisk-formatted lines).
LINES_PER_SLICE = 4096

# Why an activation ended before its action ran, word for word from [OW] core/entity/.../Messages.scala
# (actionRemovedWhileInvoking, actionMismatchWhileInvoking, actionFetchErrorWhileInvoking,
# resourceProvisionError). Which status each gets is [OW] InvokerReactive.handleActivationMessage's
# and ContainerProxy's choice: only a fault of the platform is a whisk error.
ACTION_REMOVED = "Action could not be found or may have been deleted."
ACTION_MISMATCH = "Action version is not compatible and cannot be invoked."
ACTION_FETCH_ERROR = "Action could not be fetched."
RESOURCE_PROVISION_ERROR = "Failed to provision resources to run the action."


def init_failure(result: ProxyResult, timeout_ms: int) -> ActivationResponse | None:
    """None when ``/init`` succeeded; otherwise the developer error the activation ends with."""
    if result.status == 200:
        return None
    if result.timed_out:
        return _developer_error(Messages.timed_out_during_init(timeout_ms))
    if result.memory_exhausted:
        return _developer_error(Messages.memory_exhausted)
    if result.status is None:
        return _developer_error(Messages.init_exited)
    body = _parse(result.body)
    if isinstance(body, dict) and "error" in body:
        return _developer_error(body["error"])
    return _developer_error(Messages.invalid_init_response(result.body))


def run_response(result: ProxyResult, timeout_ms: int) -> ActivationResponse:
    """The activation's response for what ``/run`` produced."""
    if result.timed_out:
        return _developer_error(Messages.timed_out(timeout_ms))
    if result.memory_exhausted:
        return _developer_error(Messages.memory_exhausted)
    if result.status is None:
        return _developer_error(Messages.run_exited)
    raw = result.body.encode()
    if len(raw) > MAX_RESULT_BYTES:
        truncated = raw[:MAX_RESULT_BYTES].decode(errors="ignore")
        message = f"{Messages.truncated_response(len(raw), MAX_RESULT_BYTES)} The truncated response was: {truncated}"
        return ActivationResponse.error(StatusCode.APPLICATION_ERROR, message)
    body = _parse(result.body)
    ok = result.status == 200
    if isinstance(body, dict):
        if "error" in body:
            status = StatusCode.APPLICATION_ERROR if ok else StatusCode.DEVELOPER_ERROR
            return ActivationResponse.of(status, {"error": body["error"]})
        if ok:
            return ActivationResponse.of(StatusCode.SUCCESS, body)
        # A failed /run without an error field is a broken proxy, whatever else the body holds.
    if isinstance(body, list) and ok:
        return ActivationResponse.of(StatusCode.SUCCESS, body)
    return _developer_error(Messages.invalid_run_response(result.body))


class BoundedLogs(NamedTuple):
    """What of an activation's response and logs goes into its record (``bound_logs``)."""

    response: ActivationResponse
    logs: list[str]
    logs_json: bytes | None
    """``orjson.dumps(logs)`` when bounding had to serialise the lines anyway, else None."""


def bound_logs(logs: list[str], response: ActivationResponse, max_bytes: int, serialise: bool = False) -> BoundedLogs:
    """``response`` and ``logs`` cut so that the record's JSON fits in ``max_bytes``, the same for every store.

    The action's log limit (up to 10 MB, [OW] LogLimit) can exceed what a store takes in one
    document (CouchDB 3: 8,000,000 bytes), and JSON escaping can make a line up to 6 times longer
    than its characters. So the logs that do not fit end, as OpenWhisk's do at the log limit, with
    its truncation notice; a response that alone does not fit is replaced by the truncation message.

    The work is bounded by ``max_bytes``, not by the number of lines (an action at a 10 MB log limit
    prints ~900,000): the fit is decided on an upper bound summed a slice at a time until it is exceeded,
    and the cut on the lines' JSON, serialised a slice at a time (one C call each) and kept as the logs'
    JSON, so that the record is serialised once. Between slices a thread gives the event loop the GIL.
    ``serialise`` makes the JSON of logs that fit too (a slice at a time), else it is None for them.
    """
    allowance = max_bytes - RECORD_RESERVE_BYTES - (response.size or 0)
    if _within(logs, allowance):  # the common case, decided without serialising anything
        return BoundedLogs(response, logs, _json_of(logs) if serialise else None)
    budget = max_bytes - RECORD_RESERVE_BYTES
    response_bytes = len(orjson.dumps(response.model_dump(mode="json")))
    if response_bytes > budget // 2:
        status = StatusCode.APPLICATION_ERROR if response.success else StatusCode(response.statusCode)
        response = ActivationResponse.error(status, Messages.truncated_response(response_bytes, budget // 2))
        response_bytes = len(orjson.dumps(response.model_dump(mode="json")))
    notice = format_log_line("stderr", Messages.truncated_logs(max_bytes))
    left = budget - response_bytes - len(orjson.dumps(notice)) - 1
    # A line is kept while what is left after its JSON and a comma is not negative; a slice whose JSON
    # (its lines', their commas and two brackets: the same sum minus one) fits is kept whole.
    pieces: list[bytes | memoryview] = []
    kept = 0
    for at in range(0, len(logs), LINES_PER_SLICE):
        if at:  # another namespace's request may be waiting for the GIL (pywhisk/records.py)
            between_slices()
        data = orjson.dumps(logs[at : at + LINES_PER_SLICE])
        if left - (len(data) - 1) >= 0:
            left -= len(data) - 1
            pieces.append(memoryview(data)[1:-1])
            kept = min(at + LINES_PER_SLICE, len(logs))
            continue
        for line in logs[at : at + LINES_PER_SLICE]:
            line_json = orjson.dumps(line)
            left -= len(line_json) + 1
            if left < 0:
                pieces.append(orjson.dumps(notice))
                return BoundedLogs(response, [*logs[:kept], notice], _array(pieces))
            pieces.append(line_json)
            kept += 1
    return BoundedLogs(response, logs, _array(pieces))


def bound_record(record: Activation, max_bytes: int) -> Activation:
    """``record`` cut by ``bound_logs``: the record itself when it fits."""
    bounded = bound_logs(record.logs, record.response, max_bytes)
    if bounded.logs_json is None:
        return record
    cut = record.model_copy(update={"response": bounded.response, "logs": bounded.logs})
    cut.keep_logs_json(bounded.logs_json)
    return cut


def _json_of(logs: list[str]) -> bytes:
    if len(logs) <= LINES_PER_SLICE:  # one slice: orjson's array is the logs' JSON as it is
        return orjson.dumps(logs)
    pieces: list[bytes | memoryview] = []
    for at in range(0, len(logs), LINES_PER_SLICE):
        if at:
            between_slices()
        pieces.append(memoryview(orjson.dumps(logs[at : at + LINES_PER_SLICE]))[1:-1])
    return _array(pieces)


def _array(pieces: list[bytes | memoryview]) -> bytes:
    """A JSON array of the pieces (each one element's or several elements' JSON): the bytes copied once, by one
    join (slicing off the brackets with a memoryview copies nothing; ``b"[" + ... + b"]"`` around a join copied
    the logs' JSON twice more, up to 8 MB each time)."""
    if not pieces:
        return b"[]"
    framed: list[bytes | memoryview] = [b"["]
    for piece in pieces:
        framed.append(piece)
        framed.append(b",")
    framed[-1] = b"]"  # in place of the last comma
    return b"".join(framed)


def _within(logs: list[str], allowance: int) -> bool:
    # The upper bound of the logs' JSON: a line's characters escaped as \u00XX, quotes and a comma.
    total = 3 * len(logs)
    for at in range(0, len(logs), LINES_PER_SLICE):
        if total > allowance:
            return False
        total += 6 * sum(map(len, logs[at : at + LINES_PER_SLICE]))
    return total <= allowance


def whisk_error(message: str) -> ActivationResponse:
    """A fault of the platform: the only status that counts against the invoker's health."""
    return ActivationResponse.error(StatusCode.WHISK_ERROR, message)


def application_error(message: str) -> ActivationResponse:
    """The user's doing outside the action's code, e.g. deleting the action while it was invoked."""
    return ActivationResponse.error(StatusCode.APPLICATION_ERROR, message)


def developer_error(message: str) -> ActivationResponse:
    """The action's fault: its code, its image, its limits."""
    return _developer_error(message)


def _developer_error(message: Any) -> ActivationResponse:
    if isinstance(message, dict) and "error" in message:
        return ActivationResponse.of(StatusCode.DEVELOPER_ERROR, message)
    return ActivationResponse.error(StatusCode.DEVELOPER_ERROR, message)


_INVALID = object()


def _parse(body: str) -> Any:
    try:
        return orjson.loads(body) if body.strip() else _INVALID
    except orjson.JSONDecodeError:
        return _INVALID
