"""Invoking actions end to end in one process: controller → memory bus → invoker → ScriptedExecutor.

Over 400 lines because every activation outcome (success, error classes, timings, records) shares one fixture.

The platform is standalone from the composition root with test doubles (``tests/inprocess.py``); its
manifest adds the non-binary kind ``script:1``, whose code names the ScriptedExecutor's behaviour.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from launcher.compose import build_invoker
from pywhisk.activation import new_activation_id
from pywhisk.bus.memory import MemoryBus
from pywhisk.executor import InitRequest, ProxyResult, RunRequest
from pywhisk.identity import GUEST_KEY, GUEST_UUID, guest_identity
from pywhisk.messages import ActionRef, ActivationMessage, ControllerInstance, invoker_topic
from pywhisk.settings import Settings
from pywhisk.store import ActivationQuery
from pywhisk.store.sqlite import SqliteStore
from tests.doubles import ScriptedExecutor
from tests.inprocess import ACTIONS, ACTIVATIONS, MANIFEST, InProcessWhisk, in_process_whisk

pytestmark = pytest.mark.unit

LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z\s+ stdout: running /guest/\S+$")


class RecordingExecutor(ScriptedExecutor):
    """The ScriptedExecutor, also keeping every /init and /run request it was sent."""

    def __init__(self) -> None:
        super().__init__()
        self.init_requests: list[InitRequest] = []
        self.run_requests: list[RunRequest] = []

    async def init(self, instance_id: str, request: InitRequest, timeout_ms: int, log_limit_bytes: int) -> ProxyResult:
        self.init_requests.append(request)
        return await super().init(instance_id, request, timeout_ms, log_limit_bytes)

    async def run(self, instance_id: str, request: RunRequest, timeout_ms: int, log_limit_bytes: int) -> ProxyResult:
        self.run_requests.append(request)
        return await super().run(instance_id, request, timeout_ms, log_limit_bytes)


Whisk = InProcessWhisk[SqliteStore, RecordingExecutor]


@pytest.fixture
async def whisk(tmp_path: Path) -> AsyncIterator[Whisk]:
    settings = Settings(data_dir=tmp_path)
    async with in_process_whisk(settings, SqliteStore(settings.store_path), RecordingExecutor()) as running:
        yield running


def annotations(record: dict[str, Any]) -> dict[str, Any]:
    return {pair["key"]: pair["value"] for pair in record["annotations"]}


# blocking success -------------------------------------------------------------------------------


async def test_blocking_invoke_returns_200_with_the_full_record(whisk: Whisk) -> None:
    await whisk.create("hello")

    response = await whisk.invoke("hello", {"name": "Ada"})

    assert response.status_code == 200
    record = response.json()
    assert re.fullmatch(r"[0-9a-f]{32}", record["activationId"])
    assert response.headers["x-openwhisk-activation-id"] == record["activationId"]
    assert record["namespace"] == "guest"
    assert record["name"] == "hello"
    assert record["subject"] == "guest"
    assert record["version"] == "0.0.1"
    assert record["publish"] is False
    assert record["response"] == {"status": "success", "success": True, "result": {"name": "Ada"}, "size": 14}
    assert record["start"] <= record["end"]
    assert record["duration"] == record["end"] - record["start"]
    assert len(record["logs"]) == 1 and LOG_LINE.match(record["logs"][0])
    assert "code" not in record


async def test_cold_invoke_record_has_openwhisk_annotations_including_init_time(whisk: Whisk) -> None:
    await whisk.create("hello", limits={"memory": 128, "timeout": 5000})

    record = (await whisk.invoke("hello")).json()

    notes = annotations(record)
    assert notes["path"] == "guest/hello"
    assert notes["kind"] == "script:1"
    assert notes["timeout"] is False
    assert notes["limits"] == {"timeout": 5000, "memory": 128, "logs": 10, "concurrency": 1}
    assert isinstance(notes["waitTime"], int) and notes["waitTime"] >= 0
    assert isinstance(notes["initTime"], int) and notes["initTime"] >= 0


async def test_an_inits_wait_inside_the_executor_is_its_wait_time_not_its_init_time(whisk: Whisk) -> None:
    # An executor that queued the init for 250 ms of its 300 (the WASM executor's compute slots, issue 12) says
    # so in queued_ms: the record counts it in waitTime, as a run's queue, and initTime is the /init's own
    # ([OW] core/invoker/.../containerpool/ContainerProxy.scala constructWhiskActivation: initTime is the /init
    # call's interval, waitTime from the transaction's start to the init's start).
    queue_ms = 250

    async def queued_init(instance_id: str, request: InitRequest, timeout_ms: int, log_limit: int) -> ProxyResult:
        await asyncio.sleep(0.3)  # the executor's work, 250 ms of it waiting: not synchronisation
        result = await RecordingExecutor.init(whisk.executor, instance_id, request, timeout_ms, log_limit)
        result.queued_ms = queue_ms
        return result

    whisk.executor.init = queued_init  # type: ignore[method-assign]
    await whisk.create("hello")
    record = (await whisk.invoke("hello")).json()

    notes = annotations(record)
    assert notes["waitTime"] >= queue_ms, notes
    assert notes["initTime"] < 300 - queue_ms + 100, notes
    assert record["duration"] < 300 - queue_ms + 100, record["duration"]


async def test_second_invoke_is_warm_and_has_no_init_time(whisk: Whisk) -> None:
    await whisk.create("hello")

    cold = (await whisk.invoke("hello")).json()
    warm = (await whisk.invoke("hello")).json()

    assert "initTime" in annotations(cold)
    assert "initTime" not in annotations(warm)
    assert "waitTime" in annotations(warm)
    assert len(whisk.executor.created) == 1
    assert len(whisk.executor.inits) == 1
    assert whisk.executor.runs == whisk.executor.created * 2


async def test_updated_action_runs_on_a_new_instance(whisk: Whisk) -> None:
    await whisk.create("hello")
    await whisk.invoke("hello")
    await whisk.api.put(f"{ACTIONS}/hello?overwrite=true", json={"parameters": [{"key": "v", "value": 2}]})

    record = (await whisk.invoke("hello")).json()

    assert record["version"] == "0.0.2"
    assert record["response"]["result"] == {"v": 2}
    assert "initTime" in annotations(record)
    assert len(whisk.executor.created) == 2


async def test_result_true_returns_only_the_result(whisk: Whisk) -> None:
    await whisk.create("hello")
    response = await whisk.invoke("hello", {"name": "Bob"}, "blocking=true&result=true")
    assert response.status_code == 200
    assert response.json() == {"name": "Bob"}


async def test_array_params_come_back_as_an_array_result(whisk: Whisk) -> None:
    await whisk.create("hello", parameters=[{"key": "ignored", "value": 1}])
    response = await whisk.invoke("hello", [1, "two", {"three": 3}], "blocking=true&result=true")
    assert response.status_code == 200
    assert response.json() == [1, "two", {"three": 3}]


async def test_invoke_without_a_body_runs_with_the_action_defaults(whisk: Whisk) -> None:
    await whisk.create("hello", parameters=[{"key": "name", "value": "World"}])
    response = await whisk.api.post(f"{ACTIONS}/hello?blocking=true&result=true")
    assert response.json() == {"name": "World"}


@pytest.mark.parametrize("body", [b"42", b'"text"', b"true"])
async def test_params_that_are_not_an_object_or_array_are_400(whisk: Whisk, body: bytes) -> None:
    await whisk.create("hello")
    response = await whisk.api.post(f"{ACTIONS}/hello?blocking=true", content=body)
    assert response.status_code == 400
    assert set(response.json()) == {"error", "code"}


async def test_json_null_params_are_like_no_params(whisk: Whisk) -> None:
    await whisk.create("hello", parameters=[{"key": "name", "value": "World"}])
    response = await whisk.api.post(f"{ACTIONS}/hello?blocking=true&result=true", content=b"null")
    assert response.status_code == 200
    assert response.json() == {"name": "World"}


# errors of the action ---------------------------------------------------------------------------


async def test_application_error_is_502_with_the_record_and_no_top_level_code(whisk: Whisk) -> None:
    await whisk.create("fails", code="error")

    response = await whisk.invoke("fails")

    assert response.status_code == 502
    record = response.json()
    assert "code" not in record  # the client reads a 502 without `code` as an activation
    assert record["response"]["status"] == "application error"
    assert record["response"]["success"] is False
    assert record["response"]["result"] == {"error": "nope"}
    assert annotations(record)["timeout"] is False


async def test_application_error_keeps_the_instance_warm(whisk: Whisk) -> None:
    await whisk.create("fails", code="error")
    await whisk.invoke("fails")
    second = await whisk.invoke("fails")
    assert "initTime" not in annotations(second.json())
    assert whisk.executor.destroyed == []
    assert len(whisk.executor.created) == 1


async def test_application_error_with_result_true_is_502_with_the_error(whisk: Whisk) -> None:
    await whisk.create("fails", code="error")
    response = await whisk.invoke("fails", None, "blocking=true&result=true")
    assert response.status_code == 502
    assert response.json() == {"error": "nope"}


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("timeout", "The action exceeded its time limits of 60000 milliseconds."),
        ("oom", "The action exhausted its memory and was aborted."),
        ("crash", "The action did not produce a valid response and exited unexpectedly."),
    ],
)
async def test_developer_error_is_502_and_destroys_the_instance(whisk: Whisk, code: str, message: str) -> None:
    await whisk.create("broken", code=code)

    response = await whisk.invoke("broken")

    assert response.status_code == 502
    record = response.json()
    assert "code" not in record
    assert record["response"]["status"] == "action developer error"
    assert record["response"]["result"] == {"error": message}
    assert record["logs"]  # what the action wrote before it failed is kept
    assert await whisk.destroyed(whisk.executor.created[0])


async def test_timeout_names_the_action_limit_and_is_annotated(whisk: Whisk) -> None:
    await whisk.create("sleepy", code="timeout", limits={"timeout": 1000})
    record = (await whisk.invoke("sleepy")).json()
    assert record["response"]["result"] == {"error": "The action exceeded its time limits of 1000 milliseconds."}
    assert annotations(record)["timeout"] is True


async def test_next_invoke_after_a_developer_error_is_cold_again(whisk: Whisk) -> None:
    await whisk.create("broken", code="crash")
    await whisk.invoke("broken")
    second = (await whisk.invoke("broken")).json()
    assert "initTime" in annotations(second)
    assert len(whisk.executor.created) == 2


async def test_failed_init_is_502_developer_error_and_destroys_the_instance(whisk: Whisk) -> None:
    await whisk.create("badinit", code="fail-init")

    response = await whisk.invoke("badinit")

    assert response.status_code == 502
    record = response.json()
    assert record["response"]["status"] == "action developer error"
    assert record["response"]["result"] == {"error": "bad module"}
    assert "initTime" in annotations(record)
    assert whisk.executor.runs == []
    assert await whisk.destroyed(whisk.executor.created[0])


async def test_failed_init_with_result_true_is_502_with_the_error(whisk: Whisk) -> None:
    await whisk.create("badinit", code="fail-init")
    response = await whisk.invoke("badinit", None, "blocking=true&result=true")
    assert response.status_code == 502
    assert response.json() == {"error": "bad module"}


async def test_action_without_an_executor_on_the_invoker_is_500_whisk_error(whisk: Whisk) -> None:
    await whisk.create("nowhere", kind="elsewhere:1")

    response = await whisk.invoke("nowhere")

    assert response.status_code == 500
    record = response.json()
    assert record["response"]["status"] == "whisk internal error"
    assert "elsewhere:1" in record["response"]["result"]["error"]
    assert whisk.executor.created == []


# non-blocking and blocking timeouts -------------------------------------------------------------


async def test_non_blocking_invoke_is_202_with_only_the_id_and_the_record_appears_later(whisk: Whisk) -> None:
    await whisk.create("hello")

    response = await whisk.invoke("hello", {"n": 1}, "blocking=false")

    assert response.status_code == 202
    assert set(response.json()) == {"activationId"}
    activation_id = response.json()["activationId"]
    assert response.headers["x-openwhisk-activation-id"] == activation_id
    record = await whisk.record(activation_id)
    assert record["response"]["result"] == {"n": 1}


async def test_invoke_is_non_blocking_by_default(whisk: Whisk) -> None:
    await whisk.create("hello")
    response = await whisk.api.post(f"{ACTIONS}/hello", json={})
    assert response.status_code == 202
    await whisk.record(response.json()["activationId"])


async def test_blocking_invoke_that_outlasts_its_timeout_is_202_and_completes_later(whisk: Whisk) -> None:
    await whisk.create("slow", code="slow:500")

    started = time.monotonic()
    response = await whisk.invoke("slow", {"x": 1}, "blocking=true&timeout=100")
    waited = time.monotonic() - started

    assert response.status_code == 202
    assert set(response.json()) == {"activationId"}
    assert waited < 0.45
    record = await whisk.record(response.json()["activationId"])
    assert record["response"]["success"] is True
    assert record["response"]["result"] == {"x": 1}


@pytest.mark.parametrize("wait_ms", ["0", "-5", "abc", "1.5", "60001", ""])
async def test_bad_blocking_timeout_is_400(whisk: Whisk, wait_ms: str) -> None:
    await whisk.create("hello")
    response = await whisk.invoke("hello", {}, f"blocking=true&timeout={wait_ms}")
    assert response.status_code == 400
    assert response.json()["error"] == "Timeout must be number of milliseconds up to 60000."


async def test_blocking_timeout_of_60000_is_allowed(whisk: Whisk) -> None:
    await whisk.create("hello")
    response = await whisk.invoke("hello", {}, "blocking=true&timeout=60000")
    assert response.status_code == 200


# parameters -------------------------------------------------------------------------------------


async def test_invoke_params_override_action_defaults(whisk: Whisk) -> None:
    await whisk.create("hello", parameters=[{"key": "name", "value": "World"}, {"key": "greeting", "value": "Hello"}])
    response = await whisk.invoke("hello", {"name": "Ada", "extra": True}, "blocking=true&result=true")
    assert response.json() == {"name": "Ada", "greeting": "Hello", "extra": True}


async def test_overriding_a_param_of_a_final_action_is_400(whisk: Whisk) -> None:
    await whisk.create(
        "locked",
        parameters=[{"key": "name", "value": "World"}],
        annotations=[{"key": "final", "value": True}],
    )

    refused = await whisk.invoke("locked", {"name": "Mallory"})
    allowed = await whisk.invoke("locked", {"other": 1}, "blocking=true&result=true")

    assert refused.status_code == 400
    assert refused.json()["error"] == "Request defines parameters that are not allowed (e.g., reserved properties)."
    assert allowed.status_code == 200
    assert allowed.json() == {"name": "World", "other": 1}


async def test_init_params_go_to_init_env_and_not_to_run(whisk: Whisk) -> None:
    await whisk.create(
        "hello",
        parameters=[{"key": "secret", "value": "s3cr3t", "init": True}, {"key": "plain", "value": {"n": 1}}],
    )

    result = (await whisk.invoke("hello", {}, "blocking=true&result=true")).json()

    assert result == {"plain": {"n": 1}}
    init = whisk.executor.init_requests[0]
    assert init.env["secret"] == "s3cr3t"
    assert "plain" not in init.env
    assert init.env["__OW_NAMESPACE"] == "guest"
    assert init.env["__OW_ACTION_NAME"] == "/guest/hello"
    assert init.name == "hello"
    assert init.code == "echo"


async def test_run_request_carries_openwhisk_context(whisk: Whisk) -> None:
    await whisk.create("hello")
    record = (await whisk.invoke("hello", {"a": 1})).json()

    run = whisk.executor.run_requests[0]
    assert run.value == {"a": 1}
    assert run.namespace == "guest"
    assert run.action_name == "/guest/hello"
    assert run.action_version == "0.0.1"
    assert run.activation_id == record["activationId"]
    assert int(run.deadline) > time.time() * 1000
    assert run.api_key is None  # created without provide-api-key, so the server set it false


async def test_api_key_is_passed_when_the_action_asks_for_it(whisk: Whisk) -> None:
    await whisk.create("hello", annotations=[{"key": "provide-api-key", "value": True}])
    await whisk.invoke("hello")
    assert whisk.executor.run_requests[0].api_key == f"{GUEST_UUID}:{GUEST_KEY}"


# records ----------------------------------------------------------------------------------------


async def test_every_activation_has_exactly_one_record(whisk: Whisk) -> None:
    for name, code in [("ok", "echo"), ("bad", "error"), ("dead", "crash"), ("init", "fail-init")]:
        await whisk.create(name, code=code)
    ids: list[str] = []
    for name in ["ok", "bad", "dead", "init"] * 2:
        for query in ("blocking=true", "blocking=false"):
            response = await whisk.invoke(name, {}, query)
            assert response.status_code in (200, 202, 502)
            ids.append(response.headers["x-openwhisk-activation-id"])

    for activation_id in ids:
        await whisk.record(activation_id)

    assert len(set(ids)) == len(ids) == 16
    assert await whisk.store.count_activations(ActivationQuery(namespace="guest")) == 16


async def test_activation_list_rows_are_summaries_newest_first(whisk: Whisk) -> None:
    await whisk.create("hello")
    ids = [(await whisk.invoke("hello", {"n": n})).json()["activationId"] for n in range(3)]

    response = await whisk.api.get(ACTIVATIONS)

    assert response.status_code == 200
    rows = response.json()
    assert {row["activationId"] for row in rows} == set(ids)
    starts = [row["start"] for row in rows]
    assert starts == sorted(starts, reverse=True)
    row = rows[0]
    assert set(row) == {
        "namespace",
        "name",
        "version",
        "publish",
        "annotations",
        "activationId",
        "start",
        "end",
        "duration",
        "statusCode",
    }
    assert row["statusCode"] == 0


async def test_activation_list_docs_count_and_name_filter(whisk: Whisk) -> None:
    await whisk.create("hello")
    await whisk.create("other")
    await whisk.invoke("hello")
    await whisk.invoke("hello")
    await whisk.invoke("other")

    docs = (await whisk.api.get(f"{ACTIVATIONS}?docs=true&name=hello")).json()
    count = (await whisk.api.get(f"{ACTIVATIONS}?count=true")).json()
    named = (await whisk.api.get(f"{ACTIVATIONS}?count=true&name=other")).json()
    limited = (await whisk.api.get(f"{ACTIVATIONS}?limit=1")).json()

    assert len(docs) == 2
    assert all(doc["name"] == "hello" and "response" in doc and "logs" in doc for doc in docs)
    assert count == {"activations": 3}
    assert named == {"activations": 1}
    assert len(limited) == 1 and limited[0]["name"] == "other"


async def test_activation_list_since_and_upto(whisk: Whisk) -> None:
    await whisk.create("hello")
    first = (await whisk.invoke("hello")).json()
    await asyncio.sleep(0.01)
    second = (await whisk.invoke("hello")).json()

    since = (await whisk.api.get(f"{ACTIVATIONS}?since={second['start']}")).json()
    upto = (await whisk.api.get(f"{ACTIVATIONS}?upto={first['start']}")).json()

    assert [row["activationId"] for row in since] == [second["activationId"]]
    assert [row["activationId"] for row in upto] == [first["activationId"]]


async def test_get_activation_result_and_logs(whisk: Whisk) -> None:
    await whisk.create("hello")
    record = (await whisk.invoke("hello", {"name": "Ada"})).json()
    activation_id = record["activationId"]

    fetched = await whisk.api.get(f"{ACTIVATIONS}/{activation_id}")
    result = await whisk.api.get(f"{ACTIVATIONS}/{activation_id}/result")
    logs = await whisk.api.get(f"{ACTIVATIONS}/{activation_id}/logs")

    assert fetched.status_code == 200
    assert fetched.json() == record
    assert result.status_code == 200
    assert result.json() == {"status": "success", "success": True, "result": {"name": "Ada"}, "size": 14}
    assert logs.status_code == 200
    assert logs.json() == {"logs": record["logs"]}
    assert all(LOG_LINE.match(line) for line in logs.json()["logs"])


async def test_failed_activation_result_endpoint_shows_the_error(whisk: Whisk) -> None:
    await whisk.create("fails", code="error")
    activation_id = (await whisk.invoke("fails")).json()["activationId"]
    result = (await whisk.api.get(f"{ACTIVATIONS}/{activation_id}/result")).json()
    assert result == {"status": "application error", "success": False, "result": {"error": "nope"}, "size": 16}


# shutdown ---------------------------------------------------------------------------------------


async def test_invoker_close_returns_even_if_an_activation_arrives_at_that_moment(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    store, bus = SqliteStore(settings.store_path), MemoryBus()
    invoker = build_invoker(settings, store=store, bus=bus, executors={"wasm": ScriptedExecutor()}, manifest=MANIFEST)
    await store.start()
    await invoker.start()
    await asyncio.sleep(0.01)  # the consume loop is waiting for work
    message = ActivationMessage(
        transid=["tid", time.time() * 1000],
        action=ActionRef(path="guest", name="missing", version="0.0.1"),
        user=guest_identity(),
        activationId=new_activation_id(),
        rootControllerIndex=ControllerInstance(asString="0"),
        blocking=False,
    )

    await bus.send(invoker_topic(0), message.serialize())
    closing = asyncio.ensure_future(invoker.close())
    done, _ = await asyncio.wait({closing}, timeout=1.0)

    try:
        assert closing in done, "Invoker.close() did not return"
    finally:
        if not done:  # unstick the loop so the session can go on: a second cancel is not swallowed
            for task in invoker._tasks:
                task.cancel()
            await asyncio.wait_for(closing, 5)
        await store.close()
