"""Unit tests of the WASM executor's pure parts: log collection, result extraction, code decoding."""

from __future__ import annotations

import base64
import io
import re
import zipfile
from datetime import UTC, datetime

import pytest

from executor_wasm.cache import InvalidModule, describe_error
from executor_wasm.executor import decode_module
from executor_wasm.runner import deadline_ticks
from executor_wasm.stdio import collect_logs, take_result
from pywhisk.activation import Messages, format_log_line

pytestmark = pytest.mark.unit

TRUNCATED = Messages.truncated_logs


def text(logs: list[str]) -> list[str]:
    """The ``stream: line`` part of formatted log lines (the timestamp varies)."""
    return [line[31:] for line in logs]


def test_log_lines_carry_openwhisk_format_stdout_first() -> None:
    logs = collect_logs(b"out 1\nout 2\n", b"err 1\n", 1000)
    assert text(logs) == ["stdout: out 1", "stdout: out 2", "stderr: err 1"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z {4}stdout: out 1", logs[0])


def test_log_prefix_is_exactly_format_log_line() -> None:
    when = datetime.now(UTC)
    prefix = format_log_line("stderr", "", when)
    assert prefix + "some line" == format_log_line("stderr", "some line", when)


def test_logs_fit_exactly_at_the_limit_counting_newlines() -> None:
    # "aaaa\n" and "bb\n" cost 5 + 3 = 8 bytes.
    assert text(collect_logs(b"aaaa\n", b"bb\n", 8)) == ["stdout: aaaa", "stderr: bb"]


def test_logs_over_the_limit_end_with_the_truncation_notice() -> None:
    logs = collect_logs(b"aaaa\nbbbb\n", b"cc\n", 7)
    assert text(logs) == ["stdout: aaaa", f"stderr: {TRUNCATED(7)}"]


def test_stderr_is_cut_by_what_stdout_used() -> None:
    logs = collect_logs(b"1234567\n", b"x\ny\n", 10)
    assert text(logs) == ["stdout: 1234567", "stderr: x", f"stderr: {TRUNCATED(10)}"]


def test_a_final_line_without_newline_costs_only_its_bytes() -> None:
    assert text(collect_logs(b"abcd", b"", 4)) == ["stdout: abcd"]
    assert text(collect_logs(b"abcde", b"", 4)) == [f"stderr: {TRUNCATED(4)}"]


def test_a_flood_of_output_yields_at_most_the_limit_of_lines() -> None:
    flood = b"x\n" * 1_000_000
    logs = collect_logs(flood, flood, 100)
    assert len(logs) == 51
    assert logs[-1].endswith(TRUNCATED(100))


def test_zero_limit_keeps_no_lines() -> None:
    assert text(collect_logs(b"a\n", b"", 0)) == [f"stderr: {TRUNCATED(0)}"]
    assert collect_logs(b"", b"", 0) == []


def test_empty_lines_and_crlf_and_bad_utf8_are_logged_readably() -> None:
    assert text(collect_logs(b"a\r\n\n\xffb\n", b"", 100)) == ["stdout: a", "stdout: ", "stdout: \ufffdb"]


def test_result_is_the_last_non_blank_line() -> None:
    assert take_result(b'log 1\n{"a": 1}\n\n  \n') == ('{"a": 1}', b"log 1\n")
    assert take_result(b'{"a": 1}') == ('{"a": 1}', b"")
    assert take_result(b"log\r\n[1, 2]\r\n") == ("[1, 2]", b"log\r\n")


def test_result_without_output_is_empty() -> None:
    assert take_result(b"") == ("", b"")
    assert take_result(b"\n \n") == ("", b"")


def test_result_keeps_a_raw_line_separator_inside_json() -> None:
    line = '{"s": "a\u2028b"}'
    assert take_result(line.encode() + b"\n") == (line, b"")


def test_deadline_ticks_round_up_and_add_one() -> None:
    assert deadline_ticks(300) == 31
    assert deadline_ticks(301) == 32
    assert deadline_ticks(1) == 2


def test_trap_messages_are_reduced_to_their_cause() -> None:
    trap = (
        "error while executing at wasm backtrace:\n    0:     0x2c - <unknown>!<wasm function 0>\n\n"
        "Caused by:\n    0: memory fault at wasm address 0x11170 in linear memory of size 0x10000\n"
        "    1: wasm trap: out of bounds memory access\n"
    )
    assert describe_error(Exception(trap)) == (
        "memory fault at wasm address 0x11170 in linear memory of size 0x10000: wasm trap: out of bounds memory access"
    )
    compile_error = "failed to parse WebAssembly module\n\nCaused by:\n    unexpected end-of-file (at offset 0xa)\n"
    assert describe_error(Exception(compile_error)) == (
        "failed to parse WebAssembly module: unexpected end-of-file (at offset 0xa)"
    )
    assert describe_error(Exception("unknown import: `env::f` has not been defined")) == (
        "unknown import: `env::f` has not been defined"
    )


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def zipped(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_decode_takes_raw_wasm_and_tolerates_line_breaks_in_base64() -> None:
    module = b"\0asm\x01\0\0\0"
    encoded = b64(module)
    assert decode_module(encoded[:4] + "\n" + encoded[4:]) == module


def test_decode_picks_the_single_wasm_member_of_a_zip() -> None:
    module = b"\0asm\x01\0\0\0"
    archive = zipped({"README.md": b"hi", "dir/action.wasm": module})
    assert decode_module(b64(archive)) == module


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("not base64!", "not valid base64"),
        (b64(zipped({"a.wasm": b"\0asm", "b.wasm": b"\0asm"})), "exactly one .wasm file (found: a.wasm, b.wasm)"),
        (b64(zipped({"main.py": b"print()"})), "exactly one .wasm file (found: none)"),
        (b64(b"PK\x03\x04 truncated zip"), "bad zip archive"),
    ],
)
def test_decode_rejects_bad_code_with_a_reason(code: str, reason: str) -> None:
    with pytest.raises(InvalidModule, match=re.escape(reason)):
        decode_module(code)
