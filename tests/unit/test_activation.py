"""Activation records: status texts, the API's response and record shapes, list rows, log lines."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from pywhisk.activation import (
    Activation,
    ActivationResponse,
    Messages,
    StatusCode,
    format_log_line,
    new_activation_id,
)
from pywhisk.entities import KeyValue

pytestmark = pytest.mark.unit

LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z\s+ stdout: text$")


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (StatusCode.SUCCESS, "success"),
        (StatusCode.APPLICATION_ERROR, "application error"),
        (StatusCode.DEVELOPER_ERROR, "action developer error"),
        (StatusCode.WHISK_ERROR, "whisk internal error"),
    ],
)
def test_status_codes_have_openwhisk_texts(code: StatusCode, text: str) -> None:
    assert code.text == text


def test_status_codes_are_numbered_0_to_3() -> None:
    assert [int(c) for c in StatusCode] == [0, 1, 2, 3]


def test_activation_ids_are_32_hex_characters_and_unique() -> None:
    ids = {new_activation_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)


# response ---------------------------------------------------------------------------------------


def test_successful_response_to_api_drops_status_code_and_adds_success_and_status() -> None:
    response = ActivationResponse.of(StatusCode.SUCCESS, {"payload": "Hello John"})
    assert response.to_api() == {
        "status": "success",
        "success": True,
        "result": {"payload": "Hello John"},
        "size": len('{"payload":"Hello John"}'),
    }


@pytest.mark.parametrize("status", [StatusCode.APPLICATION_ERROR, StatusCode.DEVELOPER_ERROR, StatusCode.WHISK_ERROR])
def test_error_responses_are_not_successful_and_wrap_the_message(status: StatusCode) -> None:
    doc = ActivationResponse.error(status, "it broke").to_api()
    assert doc["success"] is False
    assert doc["status"] == status.text
    assert doc["result"] == {"error": "it broke"}
    assert "statusCode" not in doc


def test_response_without_result_has_no_size() -> None:
    response = ActivationResponse.of(StatusCode.SUCCESS, None)
    assert response.size is None
    assert response.to_api() == {"status": "success", "success": True, "result": None}


def test_array_result_is_kept_as_is() -> None:
    doc = ActivationResponse.of(StatusCode.SUCCESS, [1, 2, 3]).to_api()
    assert doc["result"] == [1, 2, 3]
    assert doc["size"] == len("[1,2,3]")


# record -----------------------------------------------------------------------------------------


def _record(**overrides: object) -> Activation:
    fields: dict[str, object] = {
        "activationId": "c7bb1339cb4f40e3a6ccead6c99f804e",
        "namespace": "guest",
        "name": "hello",
        "subject": "guest",
        "start": 1_493_327_653_767,
        "end": 1_493_327_653_769,
        "duration": 2,
        "response": ActivationResponse.of(StatusCode.SUCCESS, {"payload": "Hello"}),
        "logs": ["2017-05-02T16:36:07.418786Z    stdout: Hello"],
        "annotations": [KeyValue(key="path", value="guest/hello"), KeyValue(key="waitTime", value=66)],
    }
    fields.update(overrides)
    return Activation.model_validate(fields)


def test_activation_to_api_is_the_extended_record() -> None:
    assert _record().to_api() == {
        "activationId": "c7bb1339cb4f40e3a6ccead6c99f804e",
        "namespace": "guest",
        "name": "hello",
        "subject": "guest",
        "version": "0.0.1",
        "publish": False,
        "start": 1_493_327_653_767,
        "end": 1_493_327_653_769,
        "duration": 2,
        "response": {
            "status": "success",
            "success": True,
            "result": {"payload": "Hello"},
            "size": len('{"payload":"Hello"}'),
        },
        "logs": ["2017-05-02T16:36:07.418786Z    stdout: Hello"],
        "annotations": [{"key": "path", "value": "guest/hello"}, {"key": "waitTime", "value": 66}],
    }


def test_activation_to_api_includes_cause_only_when_set() -> None:
    assert "cause" not in _record().to_api()
    assert _record(cause="a" * 32).to_api()["cause"] == "a" * 32


def test_activation_annotation_lookup() -> None:
    record = _record()
    assert record.annotation("waitTime") == 66
    assert record.annotation("initTime") is None
    assert record.status_code is StatusCode.SUCCESS


def test_summary_of_a_finished_activation_has_end_duration_and_status_code() -> None:
    record = _record(response=ActivationResponse.error(StatusCode.APPLICATION_ERROR, "no"))
    assert record.summary() == {
        "namespace": "guest",
        "name": "hello",
        "version": "0.0.1",
        "publish": False,
        "annotations": [{"key": "path", "value": "guest/hello"}, {"key": "waitTime", "value": 66}],
        "activationId": "c7bb1339cb4f40e3a6ccead6c99f804e",
        "start": 1_493_327_653_767,
        "end": 1_493_327_653_769,
        "duration": 2,
        "statusCode": 1,
    }


def test_summary_without_end_omits_end_duration_and_status_code() -> None:
    summary = _record(end=0, duration=0).summary()
    assert "end" not in summary
    assert "duration" not in summary
    assert "statusCode" not in summary
    assert summary["start"] == 1_493_327_653_767


def test_summary_has_neither_logs_nor_response_but_carries_cause() -> None:
    summary = _record(cause="b" * 32).summary()
    assert "logs" not in summary
    assert "response" not in summary
    assert summary["cause"] == "b" * 32


# log lines --------------------------------------------------------------------------------------


def test_log_line_pads_the_timestamp_to_30_characters() -> None:
    when = datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    line = format_log_line("stdout", "text", when)
    assert line == "2024-01-02T03:04:05.123456Z    stdout: text"
    assert line.index(" stdout") == 30


def test_log_line_keeps_microseconds_when_they_are_zero() -> None:
    when = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert format_log_line("stderr", "x", when) == "2024-01-02T03:04:05.000000Z    stderr: x"


def test_log_line_without_time_uses_now_in_openwhisk_format() -> None:
    assert LOG_LINE.match(format_log_line("stdout", "text"))


# messages ---------------------------------------------------------------------------------------


def test_result_messages_are_openwhisk_texts() -> None:
    assert Messages.timed_out(60000) == "The action exceeded its time limits of 60000 milliseconds."
    assert Messages.invalid_run_response("oops") == (
        "The action did not produce a valid JSON or JSON Array response: oops"
    )
    assert Messages.invalid_init_response("bad") == "The action failed during initialization: bad"
    assert Messages.memory_exhausted == "The action exhausted its memory and was aborted."
    assert Messages.init_exited == "The action did not initialize and exited unexpectedly."
    assert Messages.truncated_logs(100) == (
        "Logs were truncated because the total bytes size exceeds the limit of 100 bytes."
    )
