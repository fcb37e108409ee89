"""Sequences over the in-process platform: creation checks, the run, the records, blocking and not.

Follows OpenWhisk's controller/actions/SequenceActions.scala (the run, ``SequenceAccounting``,
``makeSequenceActivation``), controller/Actions.scala (``checkSequenceActionLimits``, ``makeWhiskAction``:
``_actions``), common/.../http/ErrorResponse.scala (the messages) and the expectations of
tests/.../controller/test/SequenceActionApiTests.scala and system/basic/WskSequenceTests.scala.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from controller.sequence_journal import JOURNAL_NAMESPACE, LOST_MESSAGE, SequenceJournal, lost_response
from pywhisk.activation import Activation, ActivationResponse, StatusCode
from pywhisk.entities import Action, Binding, Exec, KeyValue, Package
from pywhisk.executor import ProxyResult, RunRequest
from pywhisk.identity import NamespaceLimits
from pywhisk.settings import Settings
from pywhisk.store import ActivationQuery
from pywhisk.store.sqlite import SqliteStore
from tests.doubles import ScriptedExecutor
from tests.inprocess import ACTIONS, ACTIVATIONS, InProcessWhisk, in_process_whisk

pytestmark = pytest.mark.unit


class PipelineExecutor(ScriptedExecutor):
    """The ScriptedExecutor, plus "append": the params back with the action's name appended to ``trace``."""

    async def run(self, instance_id: str, request: RunRequest, timeout_ms: int, log_limit_bytes: int) -> ProxyResult:
        if self._code.get(instance_id) == "append" and isinstance(request.value, dict):
            self.runs.append(instance_id)
            value = {**request.value, "trace": [*request.value.get("trace", []), request.action_name]}
            return ProxyResult(status=200, body=orjson.dumps(value).decode())
        return await super().run(instance_id, request, timeout_ms, log_limit_bytes)


Whisk = InProcessWhisk[SqliteStore, PipelineExecutor]


@pytest.fixture
async def whisk(tmp_path: Path) -> AsyncIterator[Whisk]:
    settings = Settings(data_dir=tmp_path)
    async with in_process_whisk(settings, SqliteStore(settings.store_path), PipelineExecutor()) as running:
        yield running


async def create_sequence(whisk: Whisk, name: str, components: list[str], **fields: Any) -> dict[str, Any]:
    response = await put_sequence(whisk, name, components, **fields)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def put_sequence(whisk: Whisk, name: str, components: list[str], overwrite: bool = False, **fields: Any) -> Any:
    query = "?overwrite=true" if overwrite else ""
    body = {"exec": {"kind": "sequence", "components": components}, **fields}
    return await whisk.api.put(f"{ACTIONS}/{name}{query}", json=body)


def notes_of(record: dict[str, Any]) -> dict[str, Any]:
    return {pair["key"]: pair["value"] for pair in record["annotations"]}


async def three_appenders(whisk: Whisk) -> None:
    for name in ("a", "b", "c"):
        await whisk.create(name, code="append", limits={"memory": {"a": 128, "b": 256, "c": 192}[name]})


# creating ---------------------------------------------------------------------------------------------------


async def test_a_sequence_is_stored_with_fully_qualified_components_and_the_actions_parameter(whisk: Whisk) -> None:
    await three_appenders(whisk)

    created = await create_sequence(whisk, "abc", ["/_/a", "b", "/guest/c"])

    components = ["/guest/a", "/guest/b", "/guest/c"]
    assert created["exec"]["kind"] == "sequence"
    assert created["exec"]["components"] == components
    assert "code" not in created["exec"]
    assert created["parameters"] == [{"key": "_actions", "value": components}]
    assert notes_of(created)["exec"] == "sequence"
    fetched = (await whisk.api.get(f"{ACTIONS}/abc")).json()
    assert fetched["exec"]["components"] == components


async def test_updating_a_sequence_without_exec_keeps_its_components_as_parameters(whisk: Whisk) -> None:
    await three_appenders(whisk)
    await create_sequence(whisk, "abc", ["a", "b"])

    response = await whisk.api.put(
        f"{ACTIONS}/abc?overwrite=true", json={"parameters": [{"key": "x", "value": 1}], "version": "1.0.0"}
    )

    assert response.status_code == 200, response.text
    assert response.json()["parameters"] == [{"key": "_actions", "value": ["/guest/a", "/guest/b"]}]
    assert response.json()["version"] == "1.0.0"


async def test_an_action_made_a_sequence_and_back_drops_the_actions_parameter(whisk: Whisk) -> None:
    await three_appenders(whisk)
    await create_sequence(whisk, "s", ["a"])

    response = await whisk.api.put(f"{ACTIONS}/s?overwrite=true", json={"exec": {"kind": "script:1", "code": "echo"}})

    assert response.status_code == 200, response.text
    assert response.json()["parameters"] == []


@pytest.mark.parametrize(
    ("components", "message"),
    [
        (["a", "nope"], "Sequence component does not exist."),
        (["/guest/missing/a"], "Sequence component does not exist."),
        ([], "No component specified for the sequence."),
        (["a"] * 51, "Too many actions in the sequence."),
        (["a", "bad name!"], "The fully qualified name 'bad name!' is not valid."),
    ],
)
async def test_a_sequence_that_cannot_be_made_is_400_with_openwhisks_message(
    whisk: Whisk, components: list[str], message: str
) -> None:
    await whisk.create("a", code="append")

    response = await put_sequence(whisk, "s", components)

    assert response.status_code == 400, response.text
    assert response.json()["error"] == message
    assert (await whisk.api.get(f"{ACTIONS}/s")).status_code == 404


async def test_fifty_components_are_allowed(whisk: Whisk) -> None:
    await whisk.create("a", code="append")

    response = await put_sequence(whisk, "s", ["a"] * 50)

    assert response.status_code == 200, response.text


async def test_a_sequence_of_sequences_counts_inlined_atomic_actions(whisk: Whisk) -> None:
    await whisk.create("a", code="append")
    await create_sequence(whisk, "thirty", ["a"] * 30)

    response = await put_sequence(whisk, "sixty", ["thirty", "thirty"])

    assert response.status_code == 400
    assert response.json()["error"] == "Too many actions in the sequence."


async def test_a_sequence_may_not_contain_itself(whisk: Whisk) -> None:
    await whisk.create("a", code="append")

    directly = await put_sequence(whisk, "a", ["a"], overwrite=True)

    assert directly.status_code == 400
    assert directly.json()["error"] == "Sequence may not refer to itself."
    assert (await whisk.api.get(f"{ACTIONS}/a")).json()["exec"]["kind"] == "script:1"


async def test_a_sequence_may_not_contain_itself_through_another_sequence(whisk: Whisk) -> None:
    await whisk.create("a", code="append")
    await create_sequence(whisk, "outer", ["a"])
    await create_sequence(whisk, "inner", ["a", "outer"])

    response = await put_sequence(whisk, "outer", ["inner"], overwrite=True)

    assert response.status_code == 400
    assert response.json()["error"] == "Sequence may not refer to itself."


async def test_an_existing_sequence_needs_overwrite(whisk: Whisk) -> None:
    await whisk.create("a", code="append")
    await create_sequence(whisk, "s", ["a"])

    response = await put_sequence(whisk, "s", ["a", "a"])

    assert response.status_code == 409


async def test_a_component_of_another_namespace_not_shared_is_403(whisk: Whisk) -> None:
    await whisk.store.put_package(Package(namespace="other", name="private"), expected_rev=None)
    await whisk.store.put_action(
        Action(namespace="other/private", name="x", exec=Exec(kind="script:1", code="echo")), expected_rev=None
    )

    response = await put_sequence(whisk, "s", ["/other/private/x"])

    assert response.status_code == 403, response.text


# running ----------------------------------------------------------------------------------------------------


async def test_components_run_in_order_each_result_the_params_of_the_next(whisk: Whisk) -> None:
    await three_appenders(whisk)
    await create_sequence(whisk, "abc", ["a", "b", "c"])

    response = await whisk.invoke("abc", {"trace": ["start"], "name": "Ada"})

    assert response.status_code == 200, response.text
    record = response.json()
    assert record["response"]["result"] == {"trace": ["start", "/guest/a", "/guest/b", "/guest/c"], "name": "Ada"}
    assert record["response"]["status"] == "success"


async def test_the_sequence_record_has_openwhisks_fields(whisk: Whisk) -> None:
    await three_appenders(whisk)
    await create_sequence(whisk, "abc", ["a", "b", "c"], limits={"timeout": 5000, "logs": 5})

    response = await whisk.invoke("abc", {"trace": []})

    record = response.json()
    sequence_id = record["activationId"]
    assert response.headers["x-openwhisk-activation-id"] == sequence_id
    assert record["name"] == "abc" and record["namespace"] == "guest" and record["subject"] == "guest"
    assert "cause" not in record or record["cause"] is None
    assert [pair["key"] for pair in record["annotations"]] == ["topmost", "path", "kind", "waitTime", "limits"]
    notes = notes_of(record)
    assert notes["topmost"] is True and notes["path"] == "guest/abc" and notes["kind"] == "sequence"
    assert 0 <= notes["waitTime"] < 1000
    # The sequence's limits, with the largest memory of its components ([OW] makeSequenceActivation).
    assert notes["limits"] == {"timeout": 5000, "memory": 256, "logs": 5, "concurrency": 1}
    assert len(record["logs"]) == 3
    components = [await whisk.record(activation_id) for activation_id in record["logs"]]
    assert [c["name"] for c in components] == ["a", "b", "c"]
    assert record["duration"] == sum(c["duration"] for c in components)
    assert record["start"] <= components[0]["start"] and components[-1]["end"] <= record["end"]
    for component in components:
        assert component["cause"] == sequence_id
        assert notes_of(component)["causedBy"] == "sequence"
        assert "waitTime" not in notes_of(component)
    assert await whisk.record(sequence_id) == record


async def test_the_sequences_own_parameters_are_not_passed_to_the_first_component(whisk: Whisk) -> None:
    await whisk.create("a", code="echo", parameters=[{"key": "own", "value": "a's"}])
    await create_sequence(whisk, "s", ["a"])

    response = await whisk.invoke("s", {"given": 1})

    assert response.json()["response"]["result"] == {"own": "a's", "given": 1}


async def test_result_true_answers_the_last_result_only(whisk: Whisk) -> None:
    await three_appenders(whisk)
    await create_sequence(whisk, "abc", ["a", "b", "c"])

    response = await whisk.invoke("abc", {"trace": []}, query="blocking=true&result=true")

    assert response.status_code == 200
    assert response.json() == {"trace": ["/guest/a", "/guest/b", "/guest/c"]}


async def test_an_application_error_stops_the_sequence_and_is_its_response(whisk: Whisk) -> None:
    await three_appenders(whisk)
    await whisk.create("fails", code="error")
    await create_sequence(whisk, "s", ["a", "fails", "c"])

    response = await whisk.invoke("s", {"trace": []})

    assert response.status_code == 502, response.text
    record = response.json()
    assert record["response"] == {
        "status": "application error",
        "success": False,
        "result": {"error": "nope"},
        "size": 16,
    }
    assert len(record["logs"]) == 2  # c never ran
    assert [(await whisk.record(i))["name"] for i in record["logs"]] == ["a", "fails"]


async def test_a_developer_error_stops_the_sequence_with_its_status(whisk: Whisk) -> None:
    await whisk.create("a", code="append")
    await whisk.create("crashes", code="crash")
    await create_sequence(whisk, "s", ["crashes", "a"])

    response = await whisk.invoke("s", {"trace": []})

    assert response.status_code == 502
    assert response.json()["response"]["status"] == "action developer error"
    assert len(response.json()["logs"]) == 1


async def test_a_component_deleted_after_creation_ends_the_sequence_with_openwhisks_error(whisk: Whisk) -> None:
    await three_appenders(whisk)
    await create_sequence(whisk, "abc", ["a", "b", "c"])
    assert (await whisk.api.delete(f"{ACTIONS}/b")).status_code == 200

    response = await whisk.invoke("abc", {"trace": []})

    assert response.status_code == 502
    record = response.json()
    assert record["response"]["status"] == "application error"
    assert record["response"]["result"] == {"error": "Sequence component does not exist."}
    assert len(record["logs"]) == 1


async def test_components_in_a_binding_run_the_bound_packages_action_with_the_bindings_parameters(
    whisk: Whisk,
) -> None:
    store = whisk.store
    params = [KeyValue(key="greeting", value="hello"), KeyValue(key="who", value="package")]
    await store.put_package(Package(namespace="guest", name="lib", parameters=params), expected_rev=None)
    binding = Package(
        namespace="guest",
        name="mylib",
        binding=Binding(namespace="guest", name="lib"),
        parameters=[KeyValue(key="who", value="binding")],
    )
    await store.put_package(binding, expected_rev=None)
    await store.put_action(
        Action(namespace="guest/lib", name="echo", exec=Exec(kind="script:1", code="echo")), expected_rev=None
    )
    await whisk.create("a", code="append")

    await create_sequence(whisk, "s", ["/guest/mylib/echo", "a"])
    response = await whisk.invoke("s", {"given": True})

    assert response.status_code == 200, response.text
    assert response.json()["response"]["result"] == {
        "greeting": "hello",
        "who": "binding",
        "given": True,
        "trace": ["/guest/a"],
    }
    first = await whisk.record(response.json()["logs"][0])
    assert notes_of(first)["path"] == "guest/lib/echo"


async def test_a_sequence_inside_a_sequence_runs_inline_and_records_its_cause(whisk: Whisk) -> None:
    await three_appenders(whisk)
    await create_sequence(whisk, "bc", ["b", "c"])
    await create_sequence(whisk, "abc", ["a", "bc"])

    response = await whisk.invoke("abc", {"trace": []})

    outer = response.json()
    assert outer["response"]["result"] == {"trace": ["/guest/a", "/guest/b", "/guest/c"]}
    assert len(outer["logs"]) == 2
    inner = await whisk.record(outer["logs"][1])
    assert inner["name"] == "bc" and inner["cause"] == outer["activationId"]
    notes = notes_of(inner)
    assert notes["topmost"] is False and notes["causedBy"] == "sequence" and notes["kind"] == "sequence"
    assert [pair["key"] for pair in inner["annotations"]] == [
        "topmost",
        "path",
        "kind",
        "causedBy",
        "waitTime",
        "limits",
    ]
    assert len(inner["logs"]) == 2
    for component_id in inner["logs"]:
        assert (await whisk.record(component_id))["cause"] == inner["activationId"]
    assert outer["duration"] == (await whisk.record(outer["logs"][0]))["duration"] + inner["duration"]


async def test_a_non_blocking_invoke_answers_202_at_once_and_the_sequence_records_itself(whisk: Whisk) -> None:
    await whisk.create("slow", code="slow:200")
    await create_sequence(whisk, "s", ["slow", "slow"])

    started = time.monotonic()
    response = await whisk.invoke("s", {"x": 1}, query="blocking=false")

    assert response.status_code == 202
    assert time.monotonic() - started < 0.2
    sequence_id = response.json()["activationId"]
    assert response.headers["x-openwhisk-activation-id"] == sequence_id
    record = await whisk.record(sequence_id)
    assert record["response"]["result"] == {"x": 1} and len(record["logs"]) == 2


async def test_a_blocking_caller_whose_wait_runs_out_gets_202_and_the_sequence_goes_on(whisk: Whisk) -> None:
    await whisk.create("slow", code="slow:300")
    await create_sequence(whisk, "s", ["slow", "slow"])

    response = await whisk.invoke("s", {"x": 1}, query="blocking=true&timeout=100")

    assert response.status_code == 202
    record = await whisk.record(response.json()["activationId"])
    assert record["response"]["status"] == "success" and len(record["logs"]) == 2


async def test_the_sequence_is_listed_among_the_activations(whisk: Whisk) -> None:
    await whisk.create("a", code="append")
    await create_sequence(whisk, "s", ["a"])

    sequence_id = (await whisk.invoke("s", {"trace": []})).json()["activationId"]

    listed = (await whisk.api.get(f"{ACTIVATIONS}?name=s")).json()
    assert [row["activationId"] for row in listed] == [sequence_id]


async def test_final_parameters_of_a_sequence_cannot_be_overridden(whisk: Whisk) -> None:
    await whisk.create("a", code="append")
    await create_sequence(whisk, "s", ["a"], annotations=[{"key": "final", "value": True}])

    response = await whisk.invoke("s", {"_actions": []})

    assert response.status_code == 400
    assert response.json()["error"] == "Request defines parameters that are not allowed (e.g., reserved properties)."


# throttles and shutdown ---------------------------------------------------------------------------------


async def test_a_sequence_counts_once_against_the_rate_and_concurrency_throttles(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, identity_cache_ttl_s=0)
    async with in_process_whisk(settings, SqliteStore(settings.store_path), PipelineExecutor()) as whisk:
        await whisk.store.put_limits("guest", NamespaceLimits(invocationsPerMinute=2, concurrentInvocations=1))
        await three_appenders(whisk)
        await create_sequence(whisk, "abc", ["a", "b", "c"])

        first = await whisk.invoke("abc", {"trace": []})
        second = await whisk.invoke("abc", {"trace": []})
        third = await whisk.invoke("abc", {"trace": []})

    assert first.status_code == 200 and second.status_code == 200, (first.text, second.text)
    assert third.status_code == 429
    assert third.json()["error"] == "Too many requests in the last minute (count: 3, allowed: 2)."


async def test_a_sequence_is_refused_while_its_namespace_is_at_its_concurrency_limit(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, identity_cache_ttl_s=0)
    async with in_process_whisk(settings, SqliteStore(settings.store_path), PipelineExecutor()) as whisk:
        await whisk.store.put_limits("guest", NamespaceLimits(concurrentInvocations=1))
        await whisk.create("slow", code="slow:300")
        await whisk.create("a", code="append")
        await create_sequence(whisk, "s", ["a"])
        busy = await whisk.invoke("slow", query="blocking=false")

        refused = await whisk.invoke("s", {"trace": []})

        assert busy.status_code == 202
        assert refused.status_code == 429, refused.text
        await whisk.record(busy.json()["activationId"])


async def test_closing_the_controller_records_a_running_sequence_as_a_whisk_error(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    async with in_process_whisk(settings, SqliteStore(settings.store_path), PipelineExecutor()) as whisk:
        await whisk.create("slow", code="slow:300")
        await create_sequence(whisk, "s", ["slow", "slow", "slow"])
        sequence_id = (await whisk.invoke("s", query="blocking=false")).json()["activationId"]
        deadline = time.monotonic() + 5
        while not whisk.executor.runs:  # the first component is running
            assert time.monotonic() < deadline
            await asyncio.sleep(0.005)

    store = SqliteStore(settings.store_path)
    await store.start()
    try:
        record = await store.get_activation("guest", sequence_id)
    finally:
        await store.close()
    assert record is not None
    assert record.response.statusCode == 3
    assert record.response.result == {"error": "Sequence failed."}


# nothing lost -----------------------------------------------------------------------------------------------


def _lost_record(sequence_id: str, start_ms: int) -> Activation:
    return Activation(
        activationId=sequence_id,
        namespace="guest",
        name="s",
        subject="guest",
        start=start_ms,
        end=start_ms,
        duration=0,
        response=lost_response(),
        annotations=[KeyValue(key="topmost", value=True), KeyValue(key="path", value="guest/s")],
    )


async def _journal_sees(store: SqliteStore, namespace: str, activation_id: str) -> Activation:
    deadline = time.monotonic() + 5
    while (record := await store.get_activation(namespace, activation_id)) is None:
        assert time.monotonic() < deadline, f"no record for {activation_id}"
        await asyncio.sleep(0.01)
    return record


async def test_a_journalled_sequence_without_a_record_past_its_deadline_is_recorded_by_the_next_controller(
    tmp_path: Path,
) -> None:
    store = SqliteStore(tmp_path / "store.db")
    await store.start()
    try:
        now = int(time.time() * 1000)
        dead = SequenceJournal(store)  # the controller that died: it journalled, then never recorded
        await dead.begin(_lost_record("d" * 32, now - 5000), deadline_ms=now - 1000)
        await dead.begin(_lost_record("e" * 32, now), deadline_ms=now + 600_000)  # still within its deadline
        ended = _lost_record("f" * 32, now - 5000).model_copy(
            update={"response": ActivationResponse.of(StatusCode.SUCCESS, {"ok": True})}
        )
        await dead.begin(_lost_record("f" * 32, now - 5000), deadline_ms=now - 1000)
        await store.put_activation(ended)  # this one ended and recorded itself

        peer = SequenceJournal(store, period_s=60)
        await peer.start()  # looks at once
        try:
            lost = await _journal_sees(store, "guest", "d" * 32)
        finally:
            await peer.close()

        assert lost.response.statusCode == 3
        assert lost.response.result == {"error": LOST_MESSAGE}
        assert lost.name == "s" and lost.start == now - 5000 and lost.end >= lost.start
        assert await store.get_activation("guest", "e" * 32) is None
        assert await store.get_activation("guest", "f" * 32) == ended
    finally:
        await store.close()


async def test_a_sequence_is_journalled_with_its_deadline_before_it_runs(whisk: Whisk) -> None:
    await whisk.create("a", code="append", limits={"timeout": 1000})
    await whisk.create("b", code="append", limits={"timeout": 60_000})
    await create_sequence(whisk, "s", ["a", "b"])

    sequence_id = (await whisk.invoke("s", {"trace": []})).json()["activationId"]

    entries = await whisk.store.list_activations(ActivationQuery(namespace=JOURNAL_NAMESPACE))
    assert len(entries) == 1
    lost = entries[0].annotation("record")
    assert lost["activationId"] == sequence_id and lost["response"]["result"] == {"error": LOST_MESSAGE}
    assert entries[0].start - lost["start"] == (1000 + 60_000) + (60_000 + 60_000) + 60_000
    # Its own record came first: the journal's lost record is never written for it.
    assert (await whisk.store.get_activation("guest", sequence_id)).response.statusCode == 0  # type: ignore[union-attr]
