"""From what an executor answered to an activation response, as OpenWhisk's ActivationResult does
(``processInitResponseContent`` / ``processRunResponseContent``, reference/openwhisk.md §3-4)."""

from __future__ import annotations

from typing import Any

import orjson

from pywhisk.activation import Activation, ActivationResponse, Messages, StatusCode, format_log_line
from pywhisk.executor import ProxyResult

# [OW] application.conf: activation results are at most 1 MB.
MAX_RESULT_BYTES = 1024 * 1024
# Room left in a stored record for what a store adds (CouchDB's _id, _rev, entityType) and the annotations.
RECORD_RESERVE_BYTES = 16 * 1024


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


def bound_record(record: Activation, max_bytes: int) -> Activation:
    """``record`` cut so that its JSON fits in ``max_bytes``, the same for every store.

    The action's log limit (up to 10 MB, [OW] LogLimit) can exceed what a store takes in one
    document (CouchDB 3: 8,000,000 bytes), and JSON escaping can make a line up to 6 times longer
    than its characters. So the logs that do not fit end, as OpenWhisk's do at the log limit, with
    its truncation notice; a response that alone does not fit is replaced by the truncation message.
    """
    logs_bound = sum(6 * len(line) + 3 for line in record.logs)  # \u00XX escapes, quotes and comma
    if logs_bound + (record.response.size or 0) + RECORD_RESERVE_BYTES <= max_bytes:
        return record  # the common case, decided without serialising anything
    budget = max_bytes - RECORD_RESERVE_BYTES
    response = record.response
    response_bytes = len(orjson.dumps(response.model_dump(mode="json")))
    if response_bytes > budget // 2:
        status = StatusCode.APPLICATION_ERROR if response.success else StatusCode(response.statusCode)
        response = ActivationResponse.error(status, Messages.truncated_response(response_bytes, budget // 2))
        response_bytes = len(orjson.dumps(response.model_dump(mode="json")))
    notice = format_log_line("stderr", Messages.truncated_logs(max_bytes))
    left = budget - response_bytes - len(orjson.dumps(notice)) - 1
    logs: list[str] = []
    for line in record.logs:
        left -= len(orjson.dumps(line)) + 1
        if left < 0:
            logs.append(notice)
            break
        logs.append(line)
    return record.model_copy(update={"response": response, "logs": logs})


def whisk_error(message: str) -> ActivationResponse:
    return ActivationResponse.error(StatusCode.WHISK_ERROR, message)


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
