"""Activation logs from a container's attach stream (executor_docker/logs.py), on recorded Docker bytes.

``RECORDED`` is what dockerd 20.10 sent on the attach stream of an action-proxy container for an init
that printed one line and two runs of an action writing to both streams (a UTF-8 line, a CRLF line
and an unterminated line just before the sentinel). Docker packed several writes into each frame.
"""

from __future__ import annotations

import asyncio
import struct
from datetime import UTC, datetime

import pytest

from executor_docker.logs import SENTINEL, AttachProtocol, FrameDecoder, LogCollector
from pywhisk.activation import Messages, format_log_line

pytestmark = pytest.mark.unit

RECORDED = (
    b"\x01\x00\x00\x00\x00\x00\x00\x0emodule loaded\n"
    b"\x02\x00\x00\x00\x00\x00\x008h\xc3\xa9llo w\xc3\xb6rld \xe2\x9c\x93\nXXX_THE_END_OF_A_WHISK_ACTIVATION_XXX\n"
    b"\x01\x00\x00\x00\x00\x00\x00Shello one\nwindows line\r\nno newline at the end"
    b"XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX\n"
    b"\x02\x00\x00\x00\x00\x00\x008h\xc3\xa9llo w\xc3\xb6rld \xe2\x9c\x93\nXXX_THE_END_OF_A_WHISK_ACTIVATION_XXX\n"
    b"\x01\x00\x00\x00\x00\x00\x00Shello two\nwindows line\r\nno newline at the end"
    b"XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX\n"
)
WHEN = datetime(2026, 11, 24, 0, 23, 54, 123456, tzinfo=UTC)
END = SENTINEL + b"\n"


def frame(stream: int, payload: bytes) -> bytes:
    return struct.pack(">BxxxL", stream, len(payload)) + payload


def out(text: str) -> str:
    return format_log_line("stdout", text, WHEN)


def err(text: str) -> str:
    return format_log_line("stderr", text, WHEN)


def collector(data: bytes = b"", limit: int = 1_048_576) -> LogCollector:
    logs = LogCollector(limit)
    logs.feed(data, WHEN)
    return logs


def texts(lines: list[str]) -> list[str]:
    """The lines without their timestamps."""
    return [line[31:] for line in lines]


def test_recorded_stream_splits_into_activations_without_sentinels() -> None:
    logs = collector(RECORDED)
    assert logs.complete
    first = logs.take()
    assert first == [
        out("module loaded"),  # printed by the init, reported with the first run as OpenWhisk does
        err("héllo wörld ✓"),
        out("hello one"),
        out("windows line"),
        out("no newline at the end"),
    ]
    assert logs.complete  # the second run's sentinels are already there
    assert texts(logs.take()) == [
        "stderr: héllo wörld ✓",
        "stdout: hello two",
        "stdout: windows line",
        "stdout: no newline at the end",
    ]
    assert not logs.complete
    assert logs.take() == []


@pytest.mark.parametrize("chunk", [1, 7, 8, 9, 64])
def test_frames_split_across_reads_give_the_same_logs(chunk: int) -> None:
    logs = LogCollector()
    for offset in range(0, len(RECORDED), chunk):
        logs.feed(RECORDED[offset : offset + chunk], WHEN)
    assert logs.take() == collector(RECORDED).take()


def test_frame_decoder_keeps_an_incomplete_frame_for_the_next_read() -> None:
    decoder = FrameDecoder()
    data = frame(1, b"abc") + frame(2, b"defg")
    assert decoder.feed(data[:5]) == []
    assert decoder.feed(data[5:13]) == [(1, b"abc")]
    assert decoder.feed(data[13:]) == [(2, b"defg")]
    assert decoder.feed(frame(1, b"")) == [(1, b"")]


def test_an_activation_is_complete_only_with_both_sentinels() -> None:
    logs = collector(frame(1, b"one\n" + END))
    assert not logs.complete
    logs.feed(frame(2, b"two\n"), WHEN)
    assert not logs.complete
    logs.feed(frame(2, END), WHEN)
    assert logs.complete
    assert logs.take() == [out("one"), err("two")]


def test_output_after_a_streams_sentinel_belongs_to_the_next_activation() -> None:
    logs = collector(frame(1, b"first\n" + END + b"second\n") + frame(2, END))
    assert logs.take() == [out("first")]
    logs.feed(frame(1, END) + frame(2, END), WHEN)
    assert logs.take() == [out("second")]


def test_lines_keep_their_order_of_arrival_across_streams() -> None:
    logs = collector(frame(2, b"e1\n") + frame(1, b"o1\n") + frame(2, b"e2\n" + END) + frame(1, END))
    assert texts(logs.take()) == ["stderr: e1", "stdout: o1", "stderr: e2"]


def test_each_line_is_stamped_with_its_arrival() -> None:
    later = datetime(2026, 11, 24, 0, 23, 55, tzinfo=UTC)
    logs = collector(frame(1, b"early\n"))
    logs.feed(frame(1, b"late\n" + END) + frame(2, END), later)
    assert logs.take() == [out("early"), format_log_line("stdout", "late", later)]


def test_logs_past_the_limit_end_with_the_truncation_notice() -> None:
    lines = b"".join(b"line %03d\n" % i for i in range(100))  # 9 bytes each
    logs = collector(frame(1, lines + END) + frame(2, b"after\n" + END), limit=95)
    taken = logs.take()
    assert taken[:10] == [out(f"line {i:03d}") for i in range(10)]  # 10 * 9 bytes fit in 95
    assert texts(taken[10:]) == [f"stderr: {Messages.truncated_logs(95)}"]
    assert logs.take() == []


def test_a_line_exactly_at_the_limit_fits() -> None:
    logs = collector(frame(1, b"12345\n" + END) + frame(2, END), limit=6)
    assert logs.take() == [out("12345")]


def test_a_flood_is_not_kept_in_memory_past_the_limit() -> None:
    logs = collector(limit=1000)
    for _ in range(100):
        logs.feed(frame(1, b"x" * 10_000 + b"\n" + b"y" * 50_000), WHEN)
    logs.feed(frame(1, b"\n" + END) + frame(2, END), WHEN)
    stored = sum(len(entry.text) for entry in logs._entries) + sum(map(len, logs._partial.values()))
    assert stored < 1000
    assert texts(logs.take()) == [f"stderr: {Messages.truncated_logs(1000)}"]


def test_a_sentinel_split_across_frames_is_found_while_skipping() -> None:
    logs = collector(frame(1, b"z" * 50 + b"\n"), limit=10)
    logs.feed(frame(1, b"more\n" + SENTINEL[:11]) + frame(1, SENTINEL[11:] + b"\n") + frame(2, END), WHEN)
    assert logs.complete
    assert texts(logs.take()) == [f"stderr: {Messages.truncated_logs(10)}"]


def test_the_next_activation_has_a_fresh_budget_after_truncation() -> None:
    logs = collector(frame(1, b"a" * 20 + b"\n" + END) + frame(2, END), limit=10)
    assert len(logs.take()) == 1
    logs.feed(frame(1, b"fits\n" + END) + frame(2, END), WHEN)
    assert logs.take() == [out("fits")]


def test_incomplete_take_flushes_partial_lines_and_says_logs_might_be_missing() -> None:
    logs = collector(frame(1, b"done\nhalf a li") + frame(2, b"Traceback\n"))
    taken = logs.take(complete=False)
    assert texts(taken) == [
        "stdout: done",
        "stderr: Traceback",
        "stdout: half a li",
        f"stderr: {Messages.logs_missing}",
    ]


def test_incomplete_take_drops_sentinels_and_keeps_everything_else() -> None:
    logs = collector(frame(1, b"a\n" + END + b"b\n") + frame(2, b"c\n"))
    assert texts(logs.take(complete=False)) == [
        "stdout: a",
        "stdout: b",
        "stderr: c",
        f"stderr: {Messages.logs_missing}",
    ]


def test_invalid_utf8_is_replaced_not_fatal() -> None:
    logs = collector(frame(1, b"bad \xff byte\n" + END) + frame(2, END))
    assert texts(logs.take()) == ["stdout: bad \ufffd byte"]


def test_stdin_and_daemon_frames_are_ignored() -> None:
    logs = collector(frame(0, b"stdin?\n") + frame(3, b"daemon error\n") + frame(1, END) + frame(2, END))
    assert logs.take() == []


async def test_wait_returns_when_both_sentinels_arrive() -> None:
    logs = LogCollector()
    waiting = asyncio.create_task(logs.wait(5.0))
    await asyncio.sleep(0)
    logs.feed(frame(1, b"x\n" + END), WHEN)
    await asyncio.sleep(0)
    assert not waiting.done()
    logs.feed(frame(2, END), WHEN)
    assert await asyncio.wait_for(waiting, 1.0) is True


async def test_wait_gives_up_after_its_timeout_or_at_the_end_of_the_stream() -> None:
    logs = collector(frame(1, END))
    assert await logs.wait(0.01) is False
    logs.close()
    assert await asyncio.wait_for(logs.wait(60.0), 1.0) is False


async def test_attach_protocol_feeds_the_collector_and_closes_it_at_eof() -> None:
    logs = LogCollector()
    protocol = AttachProtocol(logs)
    protocol.data_received(frame(1, b"hi\n" + END) + frame(2, END))
    assert logs.complete
    assert protocol.eof_received() is False
    assert logs.closed


def test_incomplete_take_cuts_a_sentinel_from_an_unterminated_last_line() -> None:
    logs = collector(frame(1, b"last words" + SENTINEL))
    assert texts(logs.take(complete=False)) == ["stdout: last words", f"stderr: {Messages.logs_missing}"]
