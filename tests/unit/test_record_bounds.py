"""The stored record's size bound (invoker/results.py ``bound_record``)."""

from __future__ import annotations

import orjson
import pytest

from invoker.results import bound_record
from pywhisk.activation import Activation, ActivationResponse, Messages, StatusCode, format_log_line

pytestmark = pytest.mark.unit

LIMIT = 2_000_000


def record(logs: list[str], result: object = None, status: StatusCode = StatusCode.SUCCESS) -> Activation:
    return Activation(
        activationId="0" * 32,
        namespace="guest",
        name="logs",
        subject="guest",
        start=1,
        end=2,
        duration=1,
        response=ActivationResponse.of(status, result if result is not None else {"lines": len(logs)}),
        logs=logs,
    )


def stored_size(activation: Activation) -> int:
    return len(orjson.dumps(activation.model_dump(mode="json")))


def test_a_record_that_fits_is_left_alone() -> None:
    small = record([format_log_line("stdout", f"line {n}") for n in range(1000)])
    assert bound_record(small, LIMIT) is small


def test_logs_past_the_bound_end_with_openwhisks_notice() -> None:
    lines = [format_log_line("stdout", f"line {n}") for n in range(100_000)]  # ~5 MB of JSON
    bounded = bound_record(record(lines), LIMIT)
    assert stored_size(bounded) <= LIMIT
    assert stored_size(bounded) > LIMIT - 64 * 1024  # cut near the bound, not far below it
    assert bounded.logs[:-1] == lines[: len(bounded.logs) - 1]
    assert bounded.logs[-1].endswith(f"stderr: {Messages.truncated_logs(LIMIT)}")
    assert bounded.response == record(lines).response


def test_lines_that_grow_when_escaped_are_counted_escaped() -> None:
    line = "\x01" * 1000  # 1,000 characters, 6,000 bytes of JSON
    bounded = bound_record(record([line] * 1000), LIMIT)
    assert stored_size(bounded) <= LIMIT
    assert 300 < len(bounded.logs) < 340


def test_a_response_too_large_for_the_record_is_replaced_by_the_truncation_message() -> None:
    huge = {"error": "\x02" * 1_000_000}  # allowed as a 1 MB result, but 6 MB of JSON
    bounded = bound_record(record(["a line"], result=huge, status=StatusCode.APPLICATION_ERROR), LIMIT)
    assert stored_size(bounded) <= LIMIT
    assert bounded.response.statusCode == StatusCode.APPLICATION_ERROR
    assert bounded.response.result["error"].startswith(
        "The action produced a response that exceeded the allowed length"
    )
    assert bounded.logs[0] == "a line"


def test_a_successful_response_that_is_cut_becomes_an_application_error() -> None:
    huge = {"text": "\x03" * 1_000_000}
    bounded = bound_record(record([], result=huge), LIMIT)
    assert bounded.response.statusCode == StatusCode.APPLICATION_ERROR
    assert stored_size(bounded) <= LIMIT
