"""A big record's work on a worker thread lets go of the GIL between its slices (issue 12, records class).

Formatting and bounding a 10 MB log is ~70 slices of C calls on a worker thread (the WASM executor's, a
``to_thread``); between two of them the thread sleeps for a moment (``pywhisk.activation.between_slices``) so that
the event loop, waiting for the GIL with another namespace's hello, takes it at once instead of after the
interpreter's 5 ms switch interval. On the event loop's own thread nothing sleeps.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from executor_wasm import stdio
from invoker import proxy, results
from pywhisk import activation
from pywhisk.activation import ActivationResponse, StatusCode

pytestmark = pytest.mark.unit

LIMIT = 10 * 1024 * 1024


def _output(lines: int) -> bytes:
    return b"".join(b"line %d\n" % i for i in range(lines))


def _pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every ``time.sleep`` of at most a millisecond from now on (the pauses), recorded, not slept."""
    pauses: list[float] = []
    sleep = time.sleep

    def recording(seconds: float) -> None:
        if seconds <= 0.001:
            pauses.append(seconds)
        else:
            sleep(seconds)

    monkeypatch.setattr(time, "sleep", recording)
    return pauses


def _untimed(lines: list[str]) -> list[str]:
    return [line[31:] for line in lines]  # without the timestamp of the run


def _on_thread(fn: Callable[[], Any]) -> Any:
    box: list[Any] = []
    worker = threading.Thread(target=lambda: box.append(fn()))
    worker.start()
    worker.join()
    return box[0]


def test_collect_logs_pauses_between_slices_on_a_worker_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    stdout = _output(60_000)  # ~600 KB: 9-10 slices of 64 KiB
    expected = stdio.collect_logs(stdout, b"", LIMIT)
    pauses = _pauses(monkeypatch)
    slices = -(-len(stdout) // stdio.SLICE_BYTES)
    logs = _on_thread(lambda: stdio.collect_logs(stdout, b"", LIMIT))
    assert _untimed(logs) == _untimed(expected)
    assert slices - 1 <= len(pauses) <= slices  # one between each two slices (a slice ends at a newline)
    assert all(0 < p <= 0.001 for p in pauses)


def test_small_logs_never_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    pauses = _pauses(monkeypatch)
    logs = _on_thread(lambda: stdio.collect_logs(_output(100), _output(100), LIMIT))
    response = ActivationResponse.of(StatusCode.SUCCESS, {"ok": True})
    _on_thread(lambda: results.bound_logs(logs, response, 1_000_000, serialise=True))
    assert pauses == []


def test_bound_logs_pauses_between_slices_on_a_worker_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    logs = [f"2026-12-07T03:00:00.000000Z stdout: line {i}" for i in range(10 * results.LINES_PER_SLICE)]
    response = ActivationResponse.of(StatusCode.SUCCESS, {"ok": True})
    expected_cut = results.bound_logs(logs, response, 600_000)
    expected_fit = results.bound_logs(logs, response, 8_000_000, serialise=True)
    pauses = _pauses(monkeypatch)
    cut = _on_thread(lambda: results.bound_logs(logs, response, 600_000))
    assert cut.logs[:-1] == expected_cut.logs[:-1] and len(cut.logs) < len(logs)  # cut: a few slices, the notice
    assert len(pauses) == 2  # slices 0 and 1 fit, slice 2 is cut line by line
    pauses.clear()
    fit = _on_thread(lambda: results.bound_logs(logs, response, 8_000_000, serialise=True))
    assert fit == expected_fit and fit.logs_json is not None
    assert len(pauses) == 10 - 1  # the JSON of logs that fit, made a slice at a time


def test_nothing_pauses_on_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    stdout = _output(60_000)
    logs = [f"line {i}" for i in range(10 * results.LINES_PER_SLICE)]
    response = ActivationResponse.of(StatusCode.SUCCESS, {"ok": True})
    pauses = _pauses(monkeypatch)

    async def on_loop() -> None:
        stdio.collect_logs(stdout, b"", LIMIT)
        results.bound_logs(logs, response, 8_000_000, serialise=True)

    asyncio.run(on_loop())
    assert pauses == []


def test_a_big_records_logs_are_read_with_pauses_between_slices_on_a_worker_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Activation.from_json of a stored big record (pywhisk/activation.py _load_lines): ~64 KiB of JSON a slice.
    logs = [f"2026-12-07T03:00:00.000000Z stdout: line {i}" for i in range(20_000)]  # ~900 KB: ~14 slices
    logs_json = orjson.dumps(logs)
    pauses = _pauses(monkeypatch)
    assert _on_thread(lambda: activation._load_lines(logs_json)) == logs
    assert len(logs_json) // (64 * 1024) - 1 <= len(pauses) <= len(logs_json) // (64 * 1024) + 1
    pauses.clear()

    async def on_loop() -> list[str]:
        return activation._load_lines(logs_json)

    assert asyncio.run(on_loop()) == logs and pauses == []


def test_freeing_a_cut_records_lines_pauses_between_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    # invoker/proxy.py _free, on a thread after a big record was cut: 4,096 lines a slice.
    lines = [f"line {i}" for i in range(10 * results.LINES_PER_SLICE)]
    more = [f"more {i}" for i in range(results.LINES_PER_SLICE // 2)]
    pauses = _pauses(monkeypatch)
    _on_thread(lambda: proxy._free(lines, more))
    assert lines == [] and more == []
    assert len(pauses) == 10 - 1  # between the slices of a list, none after its last
