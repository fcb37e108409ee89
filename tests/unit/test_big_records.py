"""Big activation records (an action at its 10 MB log limit): cut once, serialised once, kept off the bus, read
back in slices, and every answer the same as the plain path's (invoker/results.py ``bound_logs``,
``Activation.document``/``from_json``, invoker/invoker.py ``_finish``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from invoker.results import LINES_PER_SLICE, RECORD_RESERVE_BYTES, bound_logs, bound_record
from pywhisk.activation import BIG_RECORD_BYTES, Activation, ActivationResponse, Messages, StatusCode, format_log_line
from pywhisk.entities import KeyValue
from pywhisk.executor import ProxyResult, RunRequest
from pywhisk.messages import CompletionMessage
from pywhisk.settings import Settings
from pywhisk.store.sqlite import SqliteStore
from tests.doubles import ScriptedExecutor
from tests.inprocess import ACTIVATIONS, InProcessWhisk, in_process_whisk

pytestmark = pytest.mark.unit

SMALLEST_BOUND = 1_048_576 + 262_144  # Settings.activation_max_bytes' minimum


def record(logs: list[str], result: object = None, **fields: object) -> Activation:
    return Activation(
        activationId="0" * 32,
        namespace="guest",
        name="logs",
        subject="guest",
        start=1,
        end=2,
        duration=1,
        response=ActivationResponse.of(StatusCode.SUCCESS, result if result is not None else {"lines": len(logs)}),
        logs=logs,
        **fields,  # type: ignore[arg-type]
    )


def lines(count: int, text: str = "line") -> list[str]:
    return [format_log_line("stdout" if n % 2 else "stderr", f"{text} {n}") for n in range(1, count + 1)]


def cut_line_by_line(logs: list[str], response: ActivationResponse, max_bytes: int) -> list[str]:
    """The rule, one line at a time: a line is kept while what is left after its JSON and a comma is not negative."""
    notice = format_log_line("stderr", Messages.truncated_logs(max_bytes))
    response_bytes = len(orjson.dumps(response.model_dump(mode="json")))
    left = max_bytes - RECORD_RESERVE_BYTES - response_bytes - len(orjson.dumps(notice)) - 1
    kept: list[str] = []
    for line in logs:
        left -= len(orjson.dumps(line)) + 1
        if left < 0:
            return [*kept, notice]
        kept.append(line)
    return kept


# cutting ----------------------------------------------------------------------------------------


def test_logs_are_cut_where_the_line_by_line_rule_cuts_them() -> None:
    logs = lines(40_000)
    response = ActivationResponse.of(StatusCode.SUCCESS, {"lines": len(logs)})

    bounded = bound_logs(logs, response, SMALLEST_BOUND)
    expected = cut_line_by_line(logs, response, SMALLEST_BOUND)
    assert bounded.logs[:-1] == expected[:-1]
    assert bounded.logs[-1].endswith(f"stderr: {Messages.truncated_logs(SMALLEST_BOUND)}")
    assert bounded.logs_json == orjson.dumps(bounded.logs)


EDGE = 3 * LINES_PER_SLICE


@pytest.mark.parametrize(("slack", "kept"), [(-1, EDGE - 1), (0, EDGE), (1, EDGE)])
def test_a_cut_on_a_slice_edge_keeps_what_the_line_by_line_rule_keeps(slack: int, kept: int) -> None:
    line = format_log_line("stdout", "x" * 40, datetime(2026, 1, 1, tzinfo=UTC))
    logs = [line] * (4 * LINES_PER_SLICE)
    response = ActivationResponse.of(StatusCode.SUCCESS, {"lines": len(logs)})
    notice_bytes = len(orjson.dumps(format_log_line("stderr", Messages.truncated_logs(9_999_999))))
    overhead = RECORD_RESERVE_BYTES + len(orjson.dumps(response.model_dump(mode="json"))) + notice_bytes + 1
    max_bytes = EDGE * (len(orjson.dumps(line)) + 1) + slack + overhead
    assert len(str(max_bytes)) == 7, "the notice was measured for a 7-digit bound"

    bounded = bound_logs(logs, response, max_bytes)
    assert bounded.logs[:-1] == logs[:kept] == cut_line_by_line(logs, response, max_bytes)[:-1]
    assert bounded.logs_json == orjson.dumps(bounded.logs)


def test_logs_that_fit_are_kept_whole_and_not_serialised() -> None:
    logs = lines(1000)
    bounded = bound_logs(logs, ActivationResponse.of(StatusCode.SUCCESS, {}), SMALLEST_BOUND)
    assert bounded.logs is logs
    assert bounded.logs_json is None
    # unless asked for (a record built on a thread): then made a slice at a time
    serialised = bound_logs(logs * 9, ActivationResponse.of(StatusCode.SUCCESS, {}), SMALLEST_BOUND, serialise=True)
    assert serialised.logs_json == orjson.dumps(logs * 9)


def test_lines_that_grow_when_escaped_are_cut_by_their_escaped_size() -> None:
    logs = ["\x01" * 1000] * 1000 + lines(10)  # 6,000 bytes of JSON a line
    response = ActivationResponse.of(StatusCode.SUCCESS, {})
    bounded = bound_logs(logs, response, SMALLEST_BOUND)
    assert bounded.logs[:-1] == cut_line_by_line(logs, response, SMALLEST_BOUND)[:-1]
    assert len(orjson.dumps(record(bounded.logs).document())) <= SMALLEST_BOUND


# serialising once -------------------------------------------------------------------------------


def test_a_cut_record_serialises_to_the_same_bytes_with_its_kept_json() -> None:
    cut = bound_record(record(lines(40_000)), SMALLEST_BOUND)

    for mode in ("python", "json"):
        assert orjson.dumps(cut.document(mode=mode)) == orjson.dumps(cut.model_dump(mode=mode))
    assert orjson.dumps(cut.to_api()) == orjson.dumps(
        record(cut.logs).model_copy(update={"response": cut.response}).to_api()
    )
    assert len(orjson.dumps(cut.document())) <= SMALLEST_BOUND


def test_kept_json_is_ignored_once_the_logs_change() -> None:
    cut = bound_record(record(lines(40_000)), SMALLEST_BOUND)

    cut.logs.append("one more")
    assert orjson.loads(orjson.dumps(cut.document()))["logs"][-1] == "one more"
    other = cut.model_copy(update={"logs": ["other"]})
    assert orjson.loads(orjson.dumps(other.document()))["logs"] == ["other"]


def test_kept_json_does_not_make_two_records_unequal() -> None:
    cut = bound_record(record(lines(40_000)), SMALLEST_BOUND)
    plain = Activation.model_validate_json(orjson.dumps(cut.model_dump()))

    assert cut == plain
    assert plain == cut
    assert cut != plain.model_copy(update={"logs": []})


# reading back -----------------------------------------------------------------------------------

AWKWARD = ['"', "\\", '","', '\\","', '\\\\","', '"logs":[', '],"annotations":[', "é", "\x01", "\\" * 70 + '","']


@pytest.mark.parametrize(
    "result",
    [{"lines": 1}, {"logs": ["x"], "annotations": []}, {"text": '],"annotations":[' * 30_000}],
    ids=["plain", "logs-in-result", "big-result"],
)
def test_a_big_record_reads_back_as_the_plain_parser_reads_it(result: object) -> None:
    logs = [f"{AWKWARD[n % len(AWKWARD)]} {n} {AWKWARD[(n * 7) % len(AWKWARD)]}" for n in range(30_000)]
    annotations = [KeyValue(key="path", value="guest/logs"), KeyValue(key="x", value={"logs": [], "a": ["],"]})]
    data = orjson.dumps(record(logs, result, annotations=annotations).model_dump())
    assert len(data) >= BIG_RECORD_BYTES

    read = Activation.from_json(data)
    assert read == Activation.model_validate_json(data)
    assert orjson.dumps(read.to_api()) == orjson.dumps(Activation.model_validate_json(data).to_api())
    assert orjson.dumps(read.document()) == data


def test_a_big_record_with_empty_logs_and_lookalikes_elsewhere_reads_back_whole() -> None:
    annotations = [KeyValue(key="x", value={"logs": ["not", "these"], "annotations": []})]
    data = orjson.dumps(record([], {"text": "x" * BIG_RECORD_BYTES}, annotations=annotations).model_dump())

    read = Activation.from_json(data)
    assert read == Activation.model_validate_json(data)
    assert read.logs == []


def test_a_document_another_serialiser_wrote_is_parsed_whole() -> None:
    data = orjson.dumps(record(lines(20_000)).model_dump(), option=orjson.OPT_INDENT_2)
    assert Activation.from_json(data) == Activation.model_validate_json(data)


# through the platform ---------------------------------------------------------------------------


class LoggingExecutor(ScriptedExecutor):
    """The ScriptedExecutor; code ``logs:N`` prints N lines (a fresh list each run, as a real executor's)."""

    async def run(self, instance_id: str, request: RunRequest, timeout_ms: int, log_limit_bytes: int) -> ProxyResult:
        code = self._code[instance_id]
        if code.startswith("logs:"):
            count = int(code.split(":")[1])
            return ProxyResult(status=200, body=f'{{"lines": {count}}}', logs=lines(count))
        return await super().run(instance_id, request, timeout_ms, log_limit_bytes)


Whisk = InProcessWhisk[SqliteStore, LoggingExecutor]


@pytest.fixture
async def whisk(tmp_path: Path) -> AsyncIterator[Whisk]:
    settings = Settings(data_dir=tmp_path, activation_max_bytes=SMALLEST_BOUND)
    async with in_process_whisk(settings, SqliteStore(settings.store_path), LoggingExecutor()) as running:
        yield running


def completions(whisk: Whisk, refuse_over: int | None = None) -> list[CompletionMessage]:
    """Every completion the invoker sends from now on; ``refuse_over`` bytes makes the bus refuse bigger ones."""
    sent: list[CompletionMessage] = []
    send = whisk.bus.send

    async def recording(topic: str, value: bytes) -> None:
        if topic.startswith("completed"):
            if refuse_over is not None and len(value) > refuse_over:
                raise RuntimeError(f"message of {len(value)} bytes is too large")
            sent.append(CompletionMessage.model_validate_json(value))
        await send(topic, value)

    whisk.bus.send = recording  # type: ignore[method-assign]
    return sent


async def test_a_blocking_invoke_of_a_record_cut_at_the_bound_is_answered_whole_from_the_store(whisk: Whisk) -> None:
    await whisk.create("big", code="logs:40000")
    sent = completions(whisk)

    answer = await whisk.invoke("big")
    assert answer.status_code == 200
    record_ = answer.json()
    assert record_["logs"][0].endswith("stdout: line 1")
    assert record_["logs"][-1].endswith(f"stderr: {Messages.truncated_logs(SMALLEST_BOUND)}")
    assert len(answer.content) <= SMALLEST_BOUND
    assert [c.response for c in sent] == [None]  # the completion did not carry it
    again = await whisk.api.get(f"{ACTIVATIONS}/{answer.headers['x-openwhisk-activation-id']}")
    assert again.content == answer.content


async def test_a_record_with_many_lines_that_fit_is_kept_whole_and_off_the_bus(whisk: Whisk) -> None:
    await whisk.create("many", code="logs:12000")  # ~770 KB: under the bound, over the line count
    sent = completions(whisk)

    answer = await whisk.invoke("many")
    assert answer.status_code == 200
    assert len(answer.json()["logs"]) == 12000
    assert [c.response for c in sent] == [None]


async def test_a_small_record_still_travels_with_its_completion(whisk: Whisk) -> None:
    await whisk.create("small", code="logs:3")
    sent = completions(whisk)

    answer = await whisk.invoke("small")
    assert answer.status_code == 200
    assert [c.response.activationId if c.response else None for c in sent] == [answer.json()["activationId"]]


async def test_a_completion_the_bus_refuses_is_sent_again_without_its_record(whisk: Whisk) -> None:
    await whisk.create("medium", code="logs:2000")  # ~130 KB of logs: carried, unless the bus refuses it
    sent = completions(whisk, refuse_over=64 * 1024)

    answer = await whisk.invoke("medium")
    assert answer.status_code == 200
    assert len(answer.json()["logs"]) == 2000
    assert [c.response for c in sent] == [None]


@pytest.mark.parametrize("count", [1, LINES_PER_SLICE, LINES_PER_SLICE + 1, 3 * LINES_PER_SLICE + 7])
def test_the_logs_json_kept_is_the_json_of_the_lines_kept_at_every_slice_boundary(count: int) -> None:
    # The JSON is assembled from slices with one copy (invoker/results.py _array): the same bytes as orjson's.
    logs = lines(count)
    response = ActivationResponse.of(StatusCode.SUCCESS, {})
    for max_bytes in (64 << 20, SMALLEST_BOUND):
        bounded = bound_logs(logs, response, max_bytes, serialise=True)
        assert bounded.logs_json == orjson.dumps(bounded.logs)
