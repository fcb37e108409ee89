"""From what an executor answered (/init, /run) to the activation response a user sees."""

from __future__ import annotations

import pytest

from invoker.results import MAX_RESULT_BYTES, init_failure, run_response, whisk_error
from pywhisk.activation import StatusCode
from pywhisk.executor import ProxyResult

pytestmark = pytest.mark.unit

TIMEOUT_MS = 60_000


def _run(status: int | None, body: str = "", **flags: bool) -> dict[str, object]:
    response = run_response(ProxyResult(status=status, body=body, **flags), TIMEOUT_MS)
    return {"statusCode": response.statusCode, "result": response.result}


def _init(status: int | None, body: str = "", **flags: bool) -> dict[str, object] | None:
    response = init_failure(ProxyResult(status=status, body=body, **flags), TIMEOUT_MS)
    return None if response is None else {"statusCode": response.statusCode, "result": response.result}


# /init ------------------------------------------------------------------------------------------


def test_init_200_is_not_a_failure() -> None:
    assert _init(200, '{"ok": true}') is None


def test_init_200_with_any_body_is_not_a_failure() -> None:
    assert _init(200, "not json") is None


def test_init_error_body_becomes_the_developer_error() -> None:
    assert _init(502, '{"error": "bad module"}') == {"statusCode": 2, "result": {"error": "bad module"}}


def test_init_error_keeps_structured_error_values() -> None:
    assert _init(400, '{"error": {"line": 3}}') == {"statusCode": 2, "result": {"error": {"line": 3}}}


def test_init_non_json_failure_quotes_the_raw_body() -> None:
    assert _init(500, "Traceback ...") == {
        "statusCode": 2,
        "result": {"error": "The action failed during initialization: Traceback ..."},
    }


def test_init_object_without_error_quotes_the_raw_body() -> None:
    assert _init(403, '{"message": "no"}') == {
        "statusCode": 2,
        "result": {"error": 'The action failed during initialization: {"message": "no"}'},
    }


def test_init_timeout_names_the_limit_and_initialization() -> None:
    assert _init(None, timed_out=True) == {
        "statusCode": 2,
        "result": {"error": "The action exceeded its time limits of 60000 milliseconds during initialization."},
    }


def test_init_memory_exhausted() -> None:
    assert _init(None, memory_exhausted=True) == {
        "statusCode": 2,
        "result": {"error": "The action exhausted its memory and was aborted."},
    }


def test_init_without_answer_is_an_unexpected_exit() -> None:
    assert _init(None, exited=True) == {
        "statusCode": 2,
        "result": {"error": "The action did not initialize and exited unexpectedly."},
    }


# /run -------------------------------------------------------------------------------------------


def test_run_200_object_is_success() -> None:
    assert _run(200, '{"payload": "Hello"}') == {"statusCode": 0, "result": {"payload": "Hello"}}


def test_run_200_empty_object_is_success() -> None:
    assert _run(200, "{}") == {"statusCode": 0, "result": {}}


def test_run_200_object_with_error_is_application_error_with_only_the_error() -> None:
    assert _run(200, '{"error": "nope", "extra": 1}') == {"statusCode": 1, "result": {"error": "nope"}}


def test_run_200_array_is_success_as_is() -> None:
    assert _run(200, '[1, {"a": 2}]') == {"statusCode": 0, "result": [1, {"a": 2}]}


@pytest.mark.parametrize("body", ["hello", "42", '"a string"', "null", "true", "{truncated"])
def test_run_200_that_is_not_an_object_or_array_is_developer_error_quoting_it(body: str) -> None:
    assert _run(200, body) == {
        "statusCode": 2,
        "result": {"error": f"The action did not produce a valid JSON or JSON Array response: {body}"},
    }


@pytest.mark.parametrize("body", ["", "   \n"])
def test_run_200_with_empty_body_is_developer_error(body: str) -> None:
    assert _run(200, body) == {
        "statusCode": 2,
        "result": {"error": f"The action did not produce a valid JSON or JSON Array response: {body}"},
    }


def test_run_non_200_with_error_is_developer_error_with_that_error() -> None:
    assert _run(502, '{"error": "The action did not return a dictionary or array."}') == {
        "statusCode": 2,
        "result": {"error": "The action did not return a dictionary or array."},
    }


def test_run_non_200_non_json_is_developer_error_quoting_the_body() -> None:
    assert _run(500, "Internal Server Error") == {
        "statusCode": 2,
        "result": {"error": "The action did not produce a valid JSON or JSON Array response: Internal Server Error"},
    }


def test_run_non_200_array_is_developer_error() -> None:
    assert _run(500, "[1]")["statusCode"] == StatusCode.DEVELOPER_ERROR


def test_run_non_200_object_without_error_is_developer_error() -> None:
    outcome = _run(500, '{"a": 1}')
    assert outcome["statusCode"] == StatusCode.DEVELOPER_ERROR
    assert isinstance(outcome["result"], dict)
    assert set(outcome["result"]) == {"error"}


def test_run_timeout_names_the_action_time_limit() -> None:
    response = run_response(ProxyResult(status=None, timed_out=True), 1234)
    assert response.statusCode == StatusCode.DEVELOPER_ERROR
    assert response.result == {"error": "The action exceeded its time limits of 1234 milliseconds."}


def test_run_timeout_wins_over_a_partial_answer() -> None:
    assert _run(200, '{"late": true}', timed_out=True)["result"] == {
        "error": "The action exceeded its time limits of 60000 milliseconds."
    }


def test_run_memory_exhausted() -> None:
    assert _run(None, memory_exhausted=True) == {
        "statusCode": 2,
        "result": {"error": "The action exhausted its memory and was aborted."},
    }


def test_run_without_answer_is_developer_error() -> None:
    assert _run(None, exited=True) == {
        "statusCode": 2,
        "result": {"error": "The action did not produce a valid response and exited unexpectedly."},
    }


def test_run_result_over_1_mb_is_truncated_to_an_application_error() -> None:
    body = '{"big": "' + "x" * MAX_RESULT_BYTES + '"}'
    response = run_response(ProxyResult(status=200, body=body), TIMEOUT_MS)
    assert response.statusCode == StatusCode.APPLICATION_ERROR
    # OpenWhisk's text, with the first 1 MB of the response appended ([OW] Messages.truncatedResponse).
    assert response.result == {
        "error": f"The action produced a response that exceeded the allowed length: {len(body)} > 1048576 bytes. "
        f"The truncated response was: {body[:MAX_RESULT_BYTES]}"
    }


def test_run_result_of_exactly_1_mb_is_kept() -> None:
    body = '{"big": "' + "x" * (MAX_RESULT_BYTES - len('{"big": ""}')) + '"}'
    assert len(body) == MAX_RESULT_BYTES
    assert run_response(ProxyResult(status=200, body=body), TIMEOUT_MS).statusCode == StatusCode.SUCCESS


def test_result_size_counts_bytes_not_characters() -> None:
    # 400k three-byte characters: 1.2 MB of UTF-8 but well under a million characters.
    body = '{"s": "' + "\u20ac" * 400_000 + '"}'
    assert run_response(ProxyResult(status=200, body=body), TIMEOUT_MS).statusCode == StatusCode.APPLICATION_ERROR


def test_successful_response_records_its_serialised_size() -> None:
    response = run_response(ProxyResult(status=200, body='{"a": 1}'), TIMEOUT_MS)
    assert response.size == len('{"a":1}')


def test_whisk_error_is_status_3_with_the_message() -> None:
    response = whisk_error("The action could not be found.")
    assert response.statusCode == StatusCode.WHISK_ERROR
    assert response.result == {"error": "The action could not be found."}
