"""The WASM executor's log lines (executor_wasm/stdio.py ``collect_logs``): formatted a slice at a time and only
as far as a record can keep, and every record the same as if each line of the output had been formatted."""

from __future__ import annotations

import functools
import random
from datetime import UTC, datetime

import pytest

import executor_wasm.stdio as stdio
import pywhisk.activation as activation
from executor_wasm.stdio import RECORD_BOUND_BYTES, collect_logs
from invoker.results import bound_logs
from pywhisk.activation import ActivationResponse, Messages, StatusCode, format_log_line
from pywhisk.settings import Settings

pytestmark = pytest.mark.unit

WHEN = datetime(2026, 12, 6, 13, 43, 0, 123456, tzinfo=UTC)
LOG_LIMIT = 10 * 1_048_576


class _Clock(datetime):
    @classmethod
    def now(cls, tz: object = None) -> datetime:  # type: ignore[override]
        return WHEN


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stdio, "datetime", _Clock)
    monkeypatch.setattr(activation, "datetime", _Clock)  # the invoker's truncation notice


def every_line(stdout: bytes, stderr: bytes, limit: int) -> list[str]:
    """collect_logs as it was before it stopped at the record bound: every line split and formatted."""
    logs: list[str] = []
    budget = limit
    for stream, data in (("stdout", stdout), ("stderr", stderr)):
        lines = data[: budget + 1].split(b"\n")
        unterminated = lines.pop()
        costs = [len(line) + 1 for line in lines]
        if unterminated:
            lines.append(unterminated)
            costs.append(len(unterminated))
        for line, cost in zip(lines, costs, strict=True):
            budget -= cost
            if budget < 0:
                logs.append(format_log_line("stderr", Messages.truncated_logs(limit), WHEN))
                return logs
            text = (line[:-1] if line.endswith(b"\r") else line).decode("utf-8", "replace")
            logs.append(format_log_line(stream, text, WHEN))
    return logs


FLOOD = b"0123456789\n" * (LOG_LIMIT // 11 + 1000)


@functools.cache
def _flood_lines() -> list[str]:
    return every_line(FLOOD, b"late\n", LOG_LIMIT)


def record_of(logs: list[str], max_bytes: int) -> tuple[list[str], bytes | None]:
    response = ActivationResponse.of(StatusCode.SUCCESS, {"n": 1})
    bounded = bound_logs(logs, response, max_bytes, serialise=True)
    return bounded.logs, bounded.logs_json


def test_the_record_bound_is_at_least_any_record_bound() -> None:
    assert Settings.model_fields["activation_max_bytes"].metadata  # validated
    with pytest.raises(ValueError):
        Settings(activation_max_bytes=RECORD_BOUND_BYTES + 1)


@pytest.mark.parametrize("max_bytes", [1_048_576 + 262_144, 7_000_000, RECORD_BOUND_BYTES])
def test_ten_megabytes_of_short_lines_give_the_record_every_line_would(max_bytes: int) -> None:
    logs = collect_logs(FLOOD, b"late\n", LOG_LIMIT)
    everything = _flood_lines()
    assert len(logs) < len(everything) // 5  # ~150,000 lines formatted of ~950,000
    assert logs == everything[: len(logs)]
    assert record_of(logs, max_bytes) == record_of(everything, max_bytes)
    kept, _ = record_of(logs, max_bytes)
    assert kept[-1].endswith(f"stderr: {Messages.truncated_logs(max_bytes)}")


def test_output_within_the_record_bound_is_formatted_whole() -> None:
    stdout = b"a\r\nb\n\nc\xff\xfe\xe2\x82\n\xe2\x82\xac\r\rtail\r"
    stderr = b"oops\n" * 20_000
    assert collect_logs(stdout, stderr, LOG_LIMIT) == every_line(stdout, stderr, LOG_LIMIT)


def _noise(rng: random.Random) -> bytes:
    pieces = [
        b"\n",
        b"\r\n",
        b"\r",
        b"x",
        b"yy",
        b"\xff",
        b"\xe2\x82",
        b"\xe2\x82\xac",
        b"\xf0\x9f",
        b"\x00",
        b"\\",
        b'"',
    ]
    return b"".join(rng.choice(pieces) * rng.randint(1, 40) for _ in range(rng.randint(0, 200)))


def test_random_output_is_split_as_every_line_would_be_in_slices_of_any_size(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(12)
    for _ in range(400):
        monkeypatch.setattr(stdio, "SLICE_BYTES", rng.randint(1, 64))
        stdout, stderr = _noise(rng), _noise(rng)
        limit = rng.randint(0, len(stdout) + len(stderr) + 5)
        assert collect_logs(stdout, stderr, limit) == every_line(stdout, stderr, limit)


def test_lines_stop_one_past_the_record_bound_and_bound_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(13)
    for _ in range(300):
        bound = rng.randint(0, 3000)
        monkeypatch.setattr(stdio, "SLICE_BYTES", rng.randint(1, 300))
        monkeypatch.setattr(stdio, "RECORD_BOUND_BYTES", bound)
        stdout, stderr = _noise(rng) * 3, _noise(rng) * 3
        limit = rng.randint(0, len(stdout) + len(stderr) + 5)
        logs = collect_logs(stdout, stderr, limit)
        everything = every_line(stdout, stderr, limit)
        assert logs == everything[: len(logs)]
        costs = [len(line) + 3 for line in logs]
        if len(logs) < len(everything):  # stopped: at the first line that passes the bound, and only there
            assert sum(costs) > bound >= sum(costs[:-1])
        else:
            assert sum(costs[:-1]) <= bound or not logs
