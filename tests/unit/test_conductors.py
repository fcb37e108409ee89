"""Conductor actions over the in-process platform: the conductor/component loop, its limits and its records.

Follows OpenWhisk's controller/actions/PrimitiveActions.scala (``invokeComposition``, ``invokeConductor``,
``tryInvokeNext``, ``invokeComponent``, ``waitForActivation``, ``completeActivation``), docs/conductors.md,
common/.../http/ErrorResponse.scala (the composition messages) and the cases of
tests/.../controller/test/ConductorsApiTests.scala, whose fake actions ``conductor`` (tests/dat/actions/
conductor.js), ``step`` (step.js) and ``echo`` the executor below plays.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from controller.conductors import COMPOSITION_LOST
from controller.sequence_journal import JOURNAL_NAMESPACE
from pywhisk.entities import Action, Exec, KeyValue, Package
from pywhisk.executor import ProxyResult, RunRequest
from pywhisk.identity import NamespaceLimits
from pywhisk.settings import Settings
from pywhisk.store import ActivationQuery
from pywhisk.store.sqlite import SqliteStore
from tests.doubles import ScriptedExecutor
from tests.inprocess import ACTIONS, ACTIVATIONS, InProcessWhisk, in_process_whisk

pytestmark = pytest.mark.unit

LIMIT = 50  # [OW] actionSequenceLimit
CONDUCTOR: dict[str, Any] = {"annotations": [{"key": "conductor", "value": True}]}
TOO_LONG = "Too many actions in the composition."


class ConductorExecutor(ScriptedExecutor):
    """The ScriptedExecutor, plus OpenWhisk's test actions "conductor" and "step" (ConductorsApiTests)."""

    async def run(self, instance_id: str, request: RunRequest, timeout_ms: int, log_limit_bytes: int) -> ProxyResult:
        code = self._code.get(instance_id)
        args = request.value if isinstance(request.value, dict) else {}
        if code == "conductor":
            result = args if "error" in args else _continuation(args)
        elif code == "step":
            result = {"n": args["n"] + 1} if "n" in args else {"error": "missing parameter"}
        else:
            return await super().run(instance_id, request, timeout_ms, log_limit_bytes)
        self.runs.append(instance_id)
        return ProxyResult(status=200, body=orjson.dumps(result).decode())


def _continuation(args: dict[str, Any]) -> dict[str, Any]:
    # tests/dat/actions/conductor.js: {action, state} passed on, params unwrapped and the rest added to them.
    escaped = {k: v for k, v in args.items() if k not in ("action", "state", "params")}
    result: dict[str, Any] = {"params": {**args.get("params", {}), **escaped}}
    result.update({k: args[k] for k in ("action", "state") if k in args})
    return result


Whisk = InProcessWhisk[SqliteStore, ConductorExecutor]


@pytest.fixture
async def whisk(tmp_path: Path) -> AsyncIterator[Whisk]:
    settings = Settings(data_dir=tmp_path, identity_cache_ttl_s=0)
    async with in_process_whisk(settings, SqliteStore(settings.store_path), ConductorExecutor()) as running:
        yield running


@pytest.fixture
async def steps(whisk: Whisk) -> Whisk:
    await whisk.create("conductor", code="conductor", **CONDUCTOR)
    await whisk.create("step", code="step")
    return whisk


def notes_of(record: dict[str, Any]) -> dict[str, Any]:
    return {pair["key"]: pair["value"] for pair in record["annotations"]}


async def names_of(whisk: Whisk, record: dict[str, Any]) -> list[str]:
    return [(await whisk.record(activation_id))["name"] for activation_id in record["logs"]]


def nested(times: int, make: Any) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for _ in range(times):
        params = make(params)
    return params


# no dynamic steps ([OW] "invoke a conductor action with no dynamic steps") ------------------------------------


async def test_a_conductor_without_an_action_ends_at_once_with_its_result(whisk: Whisk) -> None:
    await whisk.create("echo", code="echo", **CONDUCTOR)

    response = await whisk.invoke("echo", {"payload": "this is a test"})

    assert response.status_code == 200, response.text
    record = response.json()
    assert response.headers["x-openwhisk-activation-id"] == record["activationId"]
    assert record["response"]["result"] == {"payload": "this is a test"}
    assert len(record["logs"]) == 1
    secondary = await whisk.record(record["logs"][0])
    assert record["duration"] == secondary["duration"]


async def test_the_composition_record_has_openwhisks_annotations_and_its_steps_name_their_cause(
    whisk: Whisk,
) -> None:
    await whisk.create("echo", code="echo", limits={"timeout": 5000, "memory": 128, "logs": 5}, **CONDUCTOR)

    record = (await whisk.invoke("echo", {"payload": 1})).json()

    assert record["name"] == "echo" and record["namespace"] == "guest" and record["subject"] == "guest"
    assert record.get("cause") is None
    assert [pair["key"] for pair in record["annotations"]] == ["topmost", "path", "kind", "conductor", "limits"]
    notes = notes_of(record)
    assert notes["topmost"] is True and notes["path"] == "guest/echo"
    assert notes["kind"] == "sequence" and notes["conductor"] is True
    assert notes["limits"] == {"timeout": 5000, "memory": 128, "logs": 5, "concurrency": 1}
    secondary = await whisk.record(record["logs"][0])
    assert secondary["name"] == "echo" and secondary["cause"] == record["activationId"]
    assert notes_of(secondary)["causedBy"] == "sequence"
    assert "conductor" not in notes_of(secondary)
    assert record["start"] <= secondary["start"] and secondary["end"] <= record["end"]
    assert await whisk.record(record["activationId"]) == record


async def test_an_error_result_of_the_conductor_ends_the_composition_as_an_application_error(whisk: Whisk) -> None:
    await whisk.create("echo", code="echo", **CONDUCTOR)

    response = await whisk.invoke("echo", {"error": "this is a test"})

    assert response.status_code == 502
    record = response.json()
    assert record["response"]["status"] == "application error"
    assert record["response"]["result"] == {"error": "this is a test"}
    assert len(record["logs"]) == 1


async def test_a_wrapped_result_is_unwrapped(whisk: Whisk) -> None:
    await whisk.create("echo", code="echo", **CONDUCTOR)

    response = await whisk.invoke("echo", {"params": {"payload": "this is a test"}})

    assert response.status_code == 200
    assert response.json()["response"]["result"] == {"payload": "this is a test"}


async def test_params_that_are_no_object_are_boxed_as_value(whisk: Whisk) -> None:
    await whisk.create("echo", code="echo", **CONDUCTOR)

    response = await whisk.invoke("echo", {"params": 42})

    assert response.json()["response"]["result"] == {"value": 42}


@pytest.mark.parametrize(
    ("action", "message"),
    [
        ("invalid#Action", 'Failed to parse action name from json value "invalid#Action" during composition.'),
        (42, "Failed to parse action name from json value 42 during composition."),
        ("/a/b/c/d", 'Failed to parse action name from json value "/a/b/c/d" during composition.'),
        ("missingAction", "Failed to resolve action with name 'guest/missingAction' during composition."),
        ("/_/pkg/missing", "Failed to resolve action with name 'guest/pkg/missing' during composition."),
    ],
)
async def test_a_component_that_cannot_be_parsed_or_resolved_goes_back_to_the_conductor_as_an_error(
    whisk: Whisk, action: Any, message: str
) -> None:
    await whisk.create("echo", code="echo", **CONDUCTOR)

    response = await whisk.invoke("echo", {"payload": "this is a test", "action": action})

    assert response.status_code == 502, response.text
    record = response.json()
    assert record["response"]["status"] == "application error"
    assert record["response"]["result"] == {"error": message}
    assert await names_of(whisk, record) == ["echo", "echo"]  # run again on the error, which it echoes


# dynamic steps ([OW] "invoke a conductor action with dynamic steps") -------------------------------------------


async def test_the_conductor_runs_a_step_and_ends_with_its_result(steps: Whisk) -> None:
    response = await steps.invoke("conductor", {"action": "step", "params": {"n": 1}})

    assert response.status_code == 200, response.text
    record = response.json()
    assert record["response"]["result"] == {"n": 2}
    assert await names_of(steps, record) == ["conductor", "step", "conductor"]
    derived = [await steps.record(i) for i in record["logs"]]
    assert record["duration"] == sum(d["duration"] for d in derived)
    assert all(d["cause"] == record["activationId"] for d in derived)
    assert all(notes_of(d)["causedBy"] == "sequence" for d in derived)


async def test_an_error_of_a_step_goes_back_to_the_conductor_which_ends_with_it(steps: Whisk) -> None:
    response = await steps.invoke("conductor", {"action": "step"})

    assert response.status_code == 502
    record = response.json()
    assert record["response"]["status"] == "application error"
    assert record["response"]["result"] == {"error": "missing parameter"}
    assert len(record["logs"]) == 3


async def test_the_state_is_laid_over_the_steps_result_for_the_next_conductor_step(steps: Whisk) -> None:
    response = await steps.invoke("conductor", {"action": "step", "state": {"witness": 42}, "n": 1})

    assert response.json()["response"]["result"] == {"n": 2, "witness": 42}
    assert len(response.json()["logs"]) == 3


async def test_state_that_is_no_object_is_boxed_as_state(steps: Whisk) -> None:
    response = await steps.invoke("conductor", {"action": "step", "state": 7, "n": 1})

    record = response.json()
    assert record["response"]["result"] == {"n": 2}
    # The second conductor step was given {n: 2, state: 7}; conductor.js hands "state" back as its state.
    second = await steps.record(record["logs"][2])
    assert second["response"]["result"] == {"params": {"n": 2}, "state": 7}


async def test_the_state_can_name_the_next_step(steps: Whisk) -> None:
    response = await steps.invoke("conductor", {"action": "step", "state": {"action": "step"}, "n": 1})

    record = response.json()
    assert record["response"]["result"] == {"n": 3}
    assert await names_of(steps, record) == ["conductor", "step", "conductor", "step", "conductor"]


async def test_an_action_of_another_namespace_fails_the_entitlement_check(steps: Whisk) -> None:
    other = Action(namespace="other", name="step", exec=Exec(kind="script:1", code="step"))
    await steps.store.put_action(other, expected_rev=None)

    response = await steps.invoke("conductor", {"action": "/other/step"})

    assert response.status_code == 502
    record = response.json()
    assert record["response"]["result"] == {
        "error": "Failed entitlement check for action with name 'other/step' during composition."
    }
    assert len(record["logs"]) == 2


async def test_a_nested_conductor_is_one_entry_of_the_logs_with_a_record_of_its_own(steps: Whisk) -> None:
    response = await steps.invoke("conductor", {"action": "conductor", "params": {"action": "step"}, "n": 1})

    outer = response.json()
    assert outer["response"]["result"] == {"n": 2}
    assert await names_of(steps, outer) == ["conductor", "conductor", "conductor"]
    inner = await steps.record(outer["logs"][1])
    assert inner["cause"] == outer["activationId"]
    notes = notes_of(inner)
    assert notes["topmost"] is False and notes["conductor"] is True and notes["causedBy"] == "sequence"
    assert [pair["key"] for pair in inner["annotations"]] == [
        "topmost",
        "path",
        "kind",
        "conductor",
        "causedBy",
        "limits",
    ]
    assert await names_of(steps, inner) == ["conductor", "step", "conductor"]
    # The nested composition's duration is that of its own steps; the outer adds it as one ([OW] 5 x 42).
    first, last = [await steps.record(outer["logs"][i]) for i in (0, 2)]
    assert outer["duration"] == first["duration"] + inner["duration"] + last["duration"]


async def test_two_levels_of_nesting_run_three_steps(steps: Whisk) -> None:
    params = {
        "action": "conductor",
        "state": {"action": "step"},
        "params": {"action": "conductor", "state": {"action": "step"}, "params": {"action": "step"}},
        "n": 1,
    }

    response = await steps.invoke("conductor", params)

    assert response.json()["response"]["result"] == {"n": 4}
    assert len(response.json()["logs"]) == 5


async def test_the_limits_annotation_has_the_largest_memory_of_the_conductor_and_its_components(
    whisk: Whisk,
) -> None:
    await whisk.create("conductor", code="conductor", limits={"memory": 128}, **CONDUCTOR)
    await whisk.create("big", code="step", limits={"memory": 512})

    record = (await whisk.invoke("conductor", {"action": "big", "n": 0})).json()

    assert notes_of(record)["limits"]["memory"] == 512


async def test_every_conductor_step_and_component_gets_its_own_default_parameters(whisk: Whisk) -> None:
    await whisk.create("conductor", code="conductor", parameters=[{"key": "own", "value": "conductor's"}], **CONDUCTOR)
    await whisk.create("echo", code="echo", parameters=[{"key": "mine", "value": "echo's"}])

    record = (await whisk.invoke("conductor", {"action": "echo", "params": {"x": 1}})).json()

    # conductor(own) -> echo(mine, x + own via params) -> conductor(own over the echo's result)
    assert record["response"]["result"] == {"x": 1, "own": "conductor's", "mine": "echo's"}


# limits ([OW] "abort if composition is too long") --------------------------------------------------------------


def _steps_in_state(times: int) -> dict[str, Any]:
    return nested(times, lambda params: {"action": "step", "state": params})


async def test_fifty_steps_are_allowed(steps: Whisk) -> None:
    response = await steps.invoke("conductor", {**_steps_in_state(LIMIT), "n": 0})

    assert response.status_code == 200, response.text
    assert response.json()["response"]["result"] == {"n": LIMIT}
    assert len(response.json()["logs"]) == 2 * LIMIT + 1


async def test_one_step_more_is_refused_to_the_conductor_as_too_many_actions(steps: Whisk) -> None:
    response = await steps.invoke("conductor", {"action": "step", "state": _steps_in_state(LIMIT), "n": 0})

    assert response.status_code == 502
    record = response.json()
    assert record["response"]["status"] == "application error"
    assert record["response"]["result"] == {"error": TOO_LONG}
    assert len(record["logs"]) == 2 * LIMIT + 2  # the last conductor step ran on the error


async def test_nesting_a_composition_at_the_limit_is_allowed_and_beyond_is_too_long(steps: Whisk) -> None:
    at_limit = await steps.invoke("conductor", {"action": "conductor", "params": _steps_in_state(LIMIT), "n": 0})
    beyond = await steps.invoke(
        "conductor",
        {"action": "conductor", "params": {"action": "step", "state": _steps_in_state(LIMIT)}, "n": 0},
    )

    assert at_limit.json()["response"]["result"] == {"n": LIMIT}
    assert beyond.status_code == 502
    assert beyond.json()["response"]["result"] == {"error": TOO_LONG}


async def test_recursing_at_the_limit_is_allowed_and_beyond_is_too_long(steps: Whisk) -> None:
    recursion = nested(LIMIT, lambda params: {"action": "conductor", "params": params})

    at_limit = await steps.invoke("conductor", {**recursion, "n": 0})
    beyond = await steps.invoke("conductor", {"action": "conductor", "params": recursion, "n": 0})

    assert at_limit.status_code == 200, at_limit.text
    assert at_limit.json()["response"]["result"] == {"n": 0}
    assert beyond.status_code == 502
    assert beyond.json()["response"]["result"] == {"error": TOO_LONG}
    # The 2n + 2nd conductor step (back in the composition one level down) was refused, and so was the next:
    # neither ran its conductor again.
    outer = beyond.json()
    one_down = await steps.record(outer["logs"][1])
    assert len(outer["logs"]) == 2 and len(one_down["logs"]) == 2
    assert one_down["response"]["result"] == {"error": TOO_LONG}


# which actions are conductors --------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [True, "true", 1, "no", {"x": 1}])
async def test_a_truthy_annotation_makes_a_conductor(whisk: Whisk, value: Any) -> None:
    await whisk.create("echo", code="echo", annotations=[{"key": "conductor", "value": value}])

    record = (await whisk.invoke("echo", {"x": 1})).json()

    assert notes_of(record).get("conductor") is True and len(record["logs"]) == 1


@pytest.mark.parametrize("value", [False, 0, "", None])
async def test_a_falsy_annotation_makes_an_ordinary_action(whisk: Whisk, value: Any) -> None:
    await whisk.create("echo", code="echo", annotations=[{"key": "conductor", "value": value}])

    record = (await whisk.invoke("echo", {"x": 1})).json()

    notes = notes_of(record)
    assert "conductor" not in notes and notes["kind"] == "script:1"


async def test_the_conductor_annotation_on_a_sequence_has_no_effect(steps: Whisk) -> None:
    body = {"exec": {"kind": "sequence", "components": ["step"]}, **CONDUCTOR}
    assert (await steps.api.put(f"{ACTIONS}/seq", json=body)).status_code == 200

    record = (await steps.invoke("seq", {"n": 1})).json()

    assert record["response"]["result"] == {"n": 2}
    assert "conductor" not in notes_of(record)


# compositions and sequences ------------------------------------------------------------------------------------


async def test_a_sequence_component_runs_inline_as_one_component_caused_by_the_composition(steps: Whisk) -> None:
    body = {"exec": {"kind": "sequence", "components": ["step", "step"]}}
    assert (await steps.api.put(f"{ACTIONS}/twice", json=body)).status_code == 200

    record = (await steps.invoke("conductor", {"action": "twice", "n": 1})).json()

    assert record["response"]["result"] == {"n": 3}
    assert await names_of(steps, record) == ["conductor", "twice", "conductor"]
    sequence = await steps.record(record["logs"][1])
    assert sequence["cause"] == record["activationId"]
    assert notes_of(sequence)["topmost"] is False and notes_of(sequence)["causedBy"] == "sequence"
    assert await names_of(steps, sequence) == ["step", "step"]


async def test_a_conductor_in_a_sequence_runs_a_composition_caused_by_the_sequence(steps: Whisk) -> None:
    body = {"exec": {"kind": "sequence", "components": ["step", "conductor"]}}
    assert (await steps.api.put(f"{ACTIONS}/seq", json=body)).status_code == 200

    record = (await steps.invoke("seq", {"n": 1, "action": "step"})).json()

    assert record["response"]["result"] == {"n": 2}  # step drops "action": the conductor just ends
    composition = await steps.record(record["logs"][1])
    assert composition["cause"] == record["activationId"]
    assert notes_of(composition)["conductor"] is True and notes_of(composition)["topmost"] is False


# invoking ------------------------------------------------------------------------------------------------------


async def test_result_true_answers_the_compositions_result_only(steps: Whisk) -> None:
    response = await steps.invoke("conductor", {"action": "step", "n": 1}, query="blocking=true&result=true")

    assert response.status_code == 200
    assert response.json() == {"n": 2}


async def test_a_non_blocking_invoke_answers_202_at_once_and_the_composition_records_itself(whisk: Whisk) -> None:
    await whisk.create("conductor", code="conductor", **CONDUCTOR)
    await whisk.create("slow", code="slow:200")

    started = time.monotonic()
    response = await whisk.invoke("conductor", {"action": "slow", "x": 1}, query="blocking=false")

    assert response.status_code == 202
    assert time.monotonic() - started < 0.2
    composition_id = response.json()["activationId"]
    assert response.headers["x-openwhisk-activation-id"] == composition_id
    record = await whisk.record(composition_id)
    assert record["response"]["result"] == {"x": 1} and len(record["logs"]) == 3


async def test_a_blocking_caller_whose_wait_runs_out_gets_202_and_the_composition_goes_on(whisk: Whisk) -> None:
    await whisk.create("conductor", code="conductor", **CONDUCTOR)
    await whisk.create("slow", code="slow:300")

    response = await whisk.invoke("conductor", {"action": "slow", "x": 1}, query="blocking=true&timeout=100")

    assert response.status_code == 202
    record = await whisk.record(response.json()["activationId"])
    assert record["response"]["status"] == "success" and len(record["logs"]) == 3


async def test_a_conductor_can_be_a_web_action(steps: Whisk) -> None:
    notes = [{"key": "conductor", "value": True}, {"key": "web-export", "value": True}]
    await steps.create("webconductor", code="conductor", annotations=notes)

    response = await steps.api.post("/api/v1/web/guest/default/webconductor.json", json={"action": "step", "n": 1})

    assert response.status_code == 200, response.text
    assert response.json() == {"n": 2}
    record = await steps.record(response.headers["x-openwhisk-activation-id"])
    assert notes_of(record)["conductor"] is True and len(record["logs"]) == 3


async def test_final_parameters_of_a_conductor_cannot_be_overridden(whisk: Whisk) -> None:
    await whisk.create(
        "echo",
        code="echo",
        parameters=[{"key": "fixed", "value": 1}],
        annotations=[{"key": "conductor", "value": True}, {"key": "final", "value": True}],
    )

    response = await whisk.invoke("echo", {"fixed": 2})

    assert response.status_code == 400
    assert response.json()["error"] == "Request defines parameters that are not allowed (e.g., reserved properties)."


async def test_a_composition_counts_once_against_the_concurrency_throttle(steps: Whisk) -> None:
    await steps.store.put_limits("guest", NamespaceLimits(concurrentInvocations=1))
    await steps.create("slow", code="slow:300")

    busy = await steps.invoke("slow", query="blocking=false")
    refused = await steps.invoke("conductor", {"action": "step", "n": 1})
    await steps.record(busy.json()["activationId"])
    accepted = await steps.invoke("conductor", {"action": "step", "state": {"action": "step"}, "n": 1})

    assert refused.status_code == 429, refused.text
    assert accepted.status_code == 200, accepted.text  # five activations, one slot
    assert accepted.json()["response"]["result"] == {"n": 3}


# nothing lost ------------------------------------------------------------------------------------------------


async def test_a_composition_is_journalled_with_the_record_it_gets_if_lost(steps: Whisk) -> None:
    composition_id = (await steps.invoke("conductor", {"n": 1})).json()["activationId"]

    entries = await steps.store.list_activations(ActivationQuery(namespace=JOURNAL_NAMESPACE))
    assert len(entries) == 1
    lost = entries[0].annotation("record")
    assert lost["activationId"] == composition_id and lost["name"] == "conductor"
    assert lost["response"] == {
        "statusCode": 3,
        "result": {"error": COMPOSITION_LOST},
        "size": lost["response"]["size"],
    }
    assert {pair["key"]: pair["value"] for pair in lost["annotations"]}["conductor"] is True
    assert entries[0].start > lost["start"]
    # Its own record came first: the journal's lost record is never written for it.
    assert (await steps.store.get_activation("guest", composition_id)).response.statusCode == 0  # type: ignore[union-attr]


async def test_closing_the_controller_records_a_running_composition_as_a_whisk_error(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    async with in_process_whisk(settings, SqliteStore(settings.store_path), ConductorExecutor()) as whisk:
        await whisk.create("conductor", code="conductor", **CONDUCTOR)
        await whisk.create("slow", code="slow:300")
        response = await whisk.invoke("conductor", {"action": "slow"}, query="blocking=false")
        composition_id = response.json()["activationId"]
        deadline = time.monotonic() + 5
        while len(whisk.executor.runs) < 2:  # the conductor ran, and the slow component is running
            assert time.monotonic() < deadline
            await asyncio.sleep(0.005)

    store = SqliteStore(settings.store_path)
    await store.start()
    try:
        record = await store.get_activation("guest", composition_id)
    finally:
        await store.close()
    assert record is not None
    assert record.response.statusCode == 3
    assert record.response.result == {"error": "Activation failure during composition."}
    assert len(record.logs) == 1  # the conductor step; the component never ended


async def test_a_composition_is_listed_among_the_activations_with_its_steps(steps: Whisk) -> None:
    record = (await steps.invoke("conductor", {"action": "step", "n": 1})).json()

    listed = (await steps.api.get(f"{ACTIVATIONS}?name=conductor")).json()
    ids = [row["activationId"] for row in listed]
    assert record["activationId"] in ids and set(record["logs"]) - {record["logs"][1]} <= set(ids)
    assert len(ids) == 3  # the composition and its two conductor steps


async def test_a_component_in_a_shared_package_of_another_namespace_is_reachable(steps: Whisk) -> None:
    await steps.store.put_package(Package(namespace="other", name="lib", publish=True), expected_rev=None)
    params = [KeyValue(key="n", value=10)]
    lib_step = Action(namespace="other/lib", name="step", exec=Exec(kind="script:1", code="step"), parameters=params)
    await steps.store.put_action(lib_step, expected_rev=None)

    record = (await steps.invoke("conductor", {"action": "/other/lib/step"})).json()

    assert record["response"]["result"] == {"n": 11}
    assert notes_of(await steps.record(record["logs"][1]))["path"] == "other/lib/step"
