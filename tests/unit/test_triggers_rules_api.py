"""Triggers, rules and fires over the API, in one process (controller → memory bus → invoker → scripted executor).

Follows OpenWhisk's ``core/controller/.../controller/Triggers.scala`` (``activate``, ``activateRules``,
``RuleActivationResult``) and ``Rules.scala`` (``create``, ``update``, ``activate``, ``remove``, ``getStatus``,
``checkTriggerAndActionExist``), ``entitlement/Entitlement.scala`` (``triggerRateThrottler``), the messages of
``http/ErrorResponse.scala``, and the cases of ``TriggersApiTests.scala`` and ``RulesApiTests.scala``.
One platform for the module; every test names its own entities, so none depends on another's.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest

from controller.throttles import Throttles
from pywhisk.identity import AuthKey, Identity, Namespace, NamespaceLimits
from pywhisk.settings import Settings
from pywhisk.store.sqlite import SqliteStore
from pywhisk.tenancy import create_user, set_limits
from tests.doubles import ScriptedExecutor
from tests.inprocess import InProcessWhisk, in_process_whisk

pytestmark = pytest.mark.unit

NS = "/api/v1/namespaces/_"
TRIGGERS = f"{NS}/triggers"
RULES = f"{NS}/rules"
ACTIONS = f"{NS}/actions"
PACKAGES = f"{NS}/packages"
_names = itertools.count()


@dataclass
class Platform:
    whisk: InProcessWhisk[SqliteStore, ScriptedExecutor]
    guest: httpx.AsyncClient
    alice: httpx.AsyncClient  # a second subject, namespace "alice"
    capped: httpx.AsyncClient  # namespace "capped": firesPerMinute 0


@pytest.fixture(scope="module")
async def platform(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Platform]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("triggers"))
    async with in_process_whisk(settings, SqliteStore(settings.store_path), ScriptedExecutor()) as whisk:
        alice_key = await create_user(whisk.store, "alice-subject", "alice")
        capped_key = await create_user(whisk.store, "capped-subject", "capped")
        await set_limits(whisk.store, "capped", fires_per_minute=0)
        transport = httpx.ASGITransport(app=whisk.app)
        async with (
            httpx.AsyncClient(
                transport=transport, base_url="http://whisk.test", auth=(alice_key.uuid, alice_key.key)
            ) as alice,
            httpx.AsyncClient(
                transport=transport, base_url="http://whisk.test", auth=(capped_key.uuid, capped_key.key)
            ) as capped,
        ):
            yield Platform(whisk, whisk.api, alice, capped)


def name(prefix: str) -> str:
    return f"{prefix}{next(_names)}"


def pairs(values: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": v} for k, v in values.items()]


def assert_error(response: httpx.Response, status: int, message: str | None = None) -> None:
    assert response.status_code == status, response.text
    if message is not None:
        assert response.json()["error"] == message, response.text


async def ok(response_awaitable: Any) -> dict[str, Any]:
    response: httpx.Response = await response_awaitable
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def put_trigger(api: httpx.AsyncClient, trigger: str, query: str = "", **body: Any) -> dict[str, Any]:
    return await ok(api.put(f"{TRIGGERS}/{trigger}{query}", json=body))


async def put_rule(api: httpx.AsyncClient, rule: str, trigger: str, action: str, query: str = "") -> dict[str, Any]:
    return await ok(api.put(f"{RULES}/{rule}{query}", json={"trigger": trigger, "action": action}))


async def wired(platform: Platform, params: dict[str, Any] | None = None) -> tuple[str, str, str]:
    """A trigger, an echo action and an active rule between them: (trigger, action, rule)."""
    trigger, action, rule = name("t"), name("a"), name("r")
    await put_trigger(platform.guest, trigger, parameters=pairs(params or {}))
    await platform.whisk.create(action)
    await put_rule(platform.guest, rule, f"/_/{trigger}", f"/_/{action}")
    return trigger, action, rule


async def fire(api: httpx.AsyncClient, trigger: str, payload: Any = None) -> httpx.Response:
    return await api.post(f"{TRIGGERS}/{trigger}", json=payload)


def log_lines(record: dict[str, Any]) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in record["logs"]]


# --- triggers ------------------------------------------------------------------------------------------


async def test_create_answers_the_trigger_without_rules_and_a_second_create_is_409(platform: Platform) -> None:
    trigger = name("t")
    created = await put_trigger(
        platform.guest, trigger, parameters=pairs({"x": "b"}), annotations=pairs({"feed": "/whisk.system/alarms/alarm"})
    )

    again = await platform.guest.put(f"{TRIGGERS}/{trigger}", json={})

    assert created["namespace"] == "guest" and created["name"] == trigger
    assert created["version"] == "0.0.1" and created["publish"] is False and created["limits"] == {}
    assert created["parameters"] == pairs({"x": "b"})
    assert created["annotations"] == pairs({"feed": "/whisk.system/alarms/alarm"})
    assert "rules" not in created
    assert_error(again, 409, "resource already exists")


async def test_update_replaces_given_fields_bumps_the_version_and_keeps_the_rules(platform: Platform) -> None:
    trigger, _, rule = await wired(platform, {"x": 1})

    updated = await put_trigger(platform.guest, trigger, "?overwrite=true", annotations=pairs({"n": 1}))

    assert updated["version"] == "0.0.2"
    assert updated["parameters"] == pairs({"x": 1})  # not given: kept
    assert updated["annotations"] == pairs({"n": 1})
    assert updated["rules"][f"guest/{rule}"]["status"] == "active"


@pytest.mark.parametrize("feed", ["", "a,b", 3])
async def test_a_created_trigger_with_a_feed_annotation_that_names_nothing_is_400(
    platform: Platform, feed: Any
) -> None:
    response = await platform.guest.put(f"{TRIGGERS}/{name('t')}", json={"annotations": pairs({"feed": feed})})

    assert_error(response, 400, "Feed name is not valid")


async def test_get_shows_the_linked_rules_with_their_action_and_status(platform: Platform) -> None:
    trigger, action, rule = await wired(platform)

    body = await ok(platform.guest.get(f"{TRIGGERS}/{trigger}"))

    assert body["rules"] == {f"guest/{rule}": {"action": {"path": "guest", "name": action}, "status": "active"}}


async def test_missing_trigger_is_404_another_collections_name_409_another_namespace_403(platform: Platform) -> None:
    action = name("a")
    await platform.whisk.create(action)

    for method in ("GET", "DELETE", "POST"):
        assert_error(
            await platform.guest.request(method, f"{TRIGGERS}/nothing"), 404, "The requested resource does not exist."
        )
        assert_error(
            await platform.guest.request(method, f"{TRIGGERS}/{action}"),
            409,
            "Resource by this name exists but is not in this collection.",
        )
        assert_error(await platform.alice.request(method, "/api/v1/namespaces/guest/triggers/x"), 403)
    taken = await platform.guest.put(f"{TRIGGERS}/{action}", json={})
    assert_error(taken, 409, "Resource by this name exists but is not in this collection.")


async def test_list_count_limit_and_skip(platform: Platform) -> None:
    api = platform.alice  # a namespace of its own: the counts are this test's
    for n in range(3):
        await put_trigger(api, f"lt{n}")

    listed = (await api.get(TRIGGERS)).json()
    page = (await api.get(f"{TRIGGERS}?limit=1&skip=1")).json()
    count = (await api.get(f"{TRIGGERS}?count=true")).json()
    slash = await api.get(f"{TRIGGERS}/")

    assert {row["name"] for row in listed} == {"lt0", "lt1", "lt2"}
    assert set(listed[0]) == {"namespace", "name", "version", "publish", "annotations", "updated"}
    assert len(page) == 1 and page[0]["name"] == listed[1]["name"]
    assert count == {"triggers": 3}
    assert slash.status_code == 200
    assert_error(
        await api.get(f"{TRIGGERS}?limit=201"), 400, "The value '201' is not in the range of 0 to 200 for triggers."
    )
    for n in range(3):
        assert (await api.delete(f"{TRIGGERS}/lt{n}")).status_code == 200


async def test_delete_answers_the_trigger_and_leaves_its_rules_reporting_inactive(platform: Platform) -> None:
    trigger, _, rule = await wired(platform)

    deleted = await ok(platform.guest.delete(f"{TRIGGERS}/{trigger}"))
    orphan = await ok(platform.guest.get(f"{RULES}/{rule}"))
    enable = await platform.guest.post(f"{RULES}/{rule}", json={"status": "active"})
    disable = await platform.guest.post(f"{RULES}/{rule}", json={"status": "inactive"})

    assert deleted["name"] == trigger and f"guest/{rule}" in deleted["rules"]
    assert orphan["status"] == "inactive"
    assert_error(enable, 404, "Only rules with existing triggers can be activated")
    assert disable.status_code == 200  # already inactive: nothing to do


# --- rules ---------------------------------------------------------------------------------------------


async def test_create_rule_stores_fully_qualified_names_and_answers_it_active(platform: Platform) -> None:
    trigger, action = name("t"), name("a")
    await put_trigger(platform.guest, trigger)
    await platform.whisk.create(action)

    created = await put_rule(platform.guest, rule := name("r"), f"/_/{trigger}", f"guest/{action}")
    fetched = await ok(platform.guest.get(f"{RULES}/{rule}"))

    assert created["status"] == "active" and fetched == created
    assert created["trigger"] == {"path": "guest", "name": trigger}
    assert created["action"] == {"path": "guest", "name": action}
    assert created["version"] == "0.0.1" and created["publish"] is False and created["annotations"] == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"trigger": "/_/t"}, "rule requires a valid trigger and a valid action"),
        (
            {"trigger": "t", "action": "/_/a"},
            "The request content was malformed:\nrequirement failed: The fully qualified name of the entity must "
            "contain at least the namespace and the name of the entity.",
        ),
        ({"trigger": "/_/nothing", "action": "/_/nothing"}, "trigger /guest/nothing does not exist"),
    ],
)
async def test_bad_rule_bodies_are_400_with_openwhisks_messages(
    platform: Platform, body: dict[str, Any], message: str
) -> None:
    assert_error(await platform.guest.put(f"{RULES}/{name('r')}", json=body), 400, message)


async def test_a_rule_to_a_missing_trigger_or_action_is_400_naming_it(platform: Platform) -> None:
    trigger, action = name("t"), name("a")
    await put_trigger(platform.guest, trigger)
    await platform.whisk.create(action)

    no_trigger = await platform.guest.put(f"{RULES}/{name('r')}", json={"trigger": "/_/gone", "action": f"/_/{action}"})
    no_action = await platform.guest.put(f"{RULES}/{name('r')}", json={"trigger": f"/_/{trigger}", "action": "/_/gone"})
    no_package = await platform.guest.put(
        f"{RULES}/{name('r')}", json={"trigger": f"/_/{trigger}", "action": "/_/nopkg/gone"}
    )

    assert_error(no_trigger, 400, "trigger /guest/gone does not exist")
    assert_error(no_action, 400, "action /guest/gone does not exist")
    assert_error(no_package, 400, "action /guest/nopkg/gone does not exist")
    assert (await ok(platform.guest.get(f"{TRIGGERS}/{trigger}"))).get("rules") is None


async def test_rules_reach_only_what_the_caller_may_read(platform: Platform) -> None:
    trigger = name("t")
    await put_trigger(platform.guest, trigger)
    await put_trigger(platform.alice, "alices")

    their_trigger = await platform.guest.put(
        f"{RULES}/{name('r')}", json={"trigger": "/alice/alices", "action": f"/_/{trigger}"}
    )
    their_action = await platform.guest.put(
        f"{RULES}/{name('r')}", json={"trigger": f"/_/{trigger}", "action": "/alice/private"}
    )

    assert_error(their_trigger, 403, "The supplied authentication is not authorized to access 'alice/alices'.")
    assert_error(their_action, 403, "The supplied authentication is not authorized to access 'alice/private'.")
    assert (await platform.alice.delete(f"{TRIGGERS}/alices")).status_code == 200


async def test_enable_and_disable_answer_200_ok_changed_or_not_and_get_shows_the_status(platform: Platform) -> None:
    trigger, _, rule = await wired(platform)

    answers = []
    for status in ("inactive", "inactive", "active", "active"):
        response = await platform.guest.post(f"{RULES}/{rule}", json={"status": status})
        answers.append((response.status_code, response.text))
        assert (await ok(platform.guest.get(f"{RULES}/{rule}")))["status"] == status
        stored = await ok(platform.guest.get(f"{TRIGGERS}/{trigger}"))
        assert stored["rules"][f"guest/{rule}"]["status"] == status

    assert answers == [(200, "OK")] * 4


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (None, "The request content was malformed:\nkey not found: status"),
        ({"state": "active"}, "The request content was malformed:\nkey not found: status"),
        (
            {"status": "xxx"},
            "The request content was malformed:\nrequirement failed: xxx is not a recognized rule state",
        ),
    ],
)
async def test_a_status_change_needs_active_or_inactive_checked_before_the_rule(
    platform: Platform, body: Any, message: str
) -> None:
    assert_error(await platform.guest.post(f"{RULES}/nosuchrule", json=body), 400, message)


async def test_update_moves_the_entry_to_the_new_trigger_keeping_the_status(platform: Platform) -> None:
    old_trigger, _, rule = await wired(platform)
    await platform.guest.post(f"{RULES}/{rule}", json={"status": "inactive"})
    new_trigger, new_action = name("t"), name("a")
    await put_trigger(platform.guest, new_trigger)
    await platform.whisk.create(new_action)

    updated = await ok(
        platform.guest.put(
            f"{RULES}/{rule}?overwrite=true", json={"trigger": f"/_/{new_trigger}", "action": f"/_/{new_action}"}
        )
    )
    old = await ok(platform.guest.get(f"{TRIGGERS}/{old_trigger}"))
    new = await ok(platform.guest.get(f"{TRIGGERS}/{new_trigger}"))

    assert updated["version"] == "0.0.2" and updated["status"] == "inactive"
    assert updated["trigger"]["name"] == new_trigger and updated["action"]["name"] == new_action
    assert old["rules"] == {}
    assert new["rules"] == {f"guest/{rule}": {"action": {"path": "guest", "name": new_action}, "status": "inactive"}}
    assert_error(await platform.guest.put(f"{RULES}/{rule}", json={}), 409, "resource already exists")


async def test_updating_a_rule_whose_trigger_is_gone_is_400(platform: Platform) -> None:
    trigger, _, rule = await wired(platform)
    await platform.guest.delete(f"{TRIGGERS}/{trigger}")

    response = await platform.guest.put(f"{RULES}/{rule}?overwrite=true", json={})

    assert_error(response, 400, f"trigger /guest/{trigger} does not exist")


async def test_deleting_an_active_rule_unlinks_it_and_answers_it_inactive(platform: Platform) -> None:
    trigger, _, rule = await wired(platform)

    deleted = await ok(platform.guest.delete(f"{RULES}/{rule}"))

    assert deleted["status"] == "inactive" and deleted["name"] == rule
    assert (await ok(platform.guest.get(f"{TRIGGERS}/{trigger}")))["rules"] == {}
    assert_error(await platform.guest.get(f"{RULES}/{rule}"), 404, "The requested resource does not exist.")
    assert (await fire(platform.guest, trigger)).status_code == 204


async def test_rule_list_rows_are_whole_documents_without_status_and_count(platform: Platform) -> None:
    api = platform.alice
    await put_trigger(api, "lrt")
    await api.put(f"{ACTIONS}/lra", json={"exec": {"kind": "script:1", "code": "echo"}})
    for n in range(2):
        await put_rule(api, f"lr{n}", "/_/lrt", "/_/lra")

    rows = (await api.get(RULES)).json()
    count = (await api.get(f"{RULES}?count=true")).json()

    assert {row["name"] for row in rows} == {"lr0", "lr1"}
    assert rows[0]["trigger"] == {"path": "alice", "name": "lrt"} and "status" not in rows[0]
    assert count == {"rules": 2}
    assert_error(await platform.guest.get("/api/v1/namespaces/alice/rules"), 403)


# --- fire ----------------------------------------------------------------------------------------------


async def test_a_trigger_without_an_active_rule_answers_204_and_records_nothing(platform: Platform) -> None:
    bare, (disabled, _, rule) = name("t"), await wired(platform)
    await put_trigger(platform.guest, bare)
    await platform.guest.post(f"{RULES}/{rule}", json={"status": "inactive"})
    before = (await platform.guest.get(f"{NS}/activations?count=true")).json()["activations"]

    answers = [await fire(platform.guest, bare, {"a": 1}), await fire(platform.guest, disabled)]

    assert [(r.status_code, r.content) for r in answers] == [(204, b"")] * 2
    assert (await platform.guest.get(f"{NS}/activations?count=true")).json()["activations"] == before


async def test_fire_with_one_rule_records_the_trigger_and_invokes_the_action_with_merged_params(
    platform: Platform,
) -> None:
    trigger, action, rule = await wired(platform, {"x": "trigger", "y": "trigger"})

    response = await fire(platform.guest, trigger, {"y": "fire"})

    assert response.status_code == 202, response.text
    trigger_id = response.json()["activationId"]
    assert response.headers["x-openwhisk-activation-id"] == trigger_id
    record = await platform.whisk.record(trigger_id)
    assert record["name"] == trigger and record["namespace"] == "guest" and record["subject"] == "guest"
    assert record["end"] == 0 and record["annotations"] == []
    assert record["response"]["result"] == {"y": "fire"}  # the payload only, as OpenWhisk
    assert record["response"]["success"] is True
    [line] = log_lines(record)
    assert line == {
        "statusCode": 0,
        "success": True,
        "activationId": line["activationId"],
        "rule": f"guest/{rule}",
        "action": f"guest/{action}",
    }
    fired = await platform.whisk.record(line["activationId"])
    assert fired["name"] == action and fired["response"]["result"] == {"x": "trigger", "y": "fire"}
    assert "cause" not in fired  # OpenWhisk invokes a rule's action as any invoke: no cause


async def test_fire_with_two_rules_logs_both_and_an_inactive_rule_as_not_activated(platform: Platform) -> None:
    trigger, _, one = await wired(platform)
    second, off = name("a"), name("r")
    await platform.whisk.create(second)
    await put_rule(platform.guest, two := name("r"), f"/_/{trigger}", f"/_/{second}")
    await put_rule(platform.guest, off, f"/_/{trigger}", f"/_/{second}")
    await platform.guest.post(f"{RULES}/{off}", json={"status": "inactive"})

    record = await platform.whisk.record((await fire(platform.guest, trigger, {"n": 1})).json()["activationId"])

    lines = {line["rule"]: line for line in log_lines(record)}
    assert set(lines) == {f"guest/{r}" for r in (one, two, off)}
    assert lines[f"guest/{off}"] == {
        "statusCode": 1,
        "success": False,
        "error": f"Rule 'guest/{off}' is inactive, action 'guest/{second}' was not activated.",
        "rule": f"guest/{off}",
        "action": f"guest/{second}",
    }
    for rule_name in (f"guest/{one}", f"guest/{two}"):
        fired = await platform.whisk.record(lines[rule_name]["activationId"])
        assert fired["response"]["result"] == {"n": 1}


async def test_a_rule_whose_action_was_deleted_enables_and_its_fire_logs_the_404(platform: Platform) -> None:
    trigger, action, rule = await wired(platform)
    await platform.guest.post(f"{RULES}/{rule}", json={"status": "inactive"})
    await platform.guest.delete(f"{ACTIONS}/{action}")

    enabled = await platform.guest.post(f"{RULES}/{rule}", json={"status": "active"})
    record = await platform.whisk.record((await fire(platform.guest, trigger)).json()["activationId"])

    assert enabled.status_code == 200  # [OW] the action is checked when the trigger fires, not here
    assert log_lines(record) == [
        {
            "statusCode": 1,
            "success": False,
            "error": "The requested resource does not exist.",
            "rule": f"guest/{rule}",
            "action": f"guest/{action}",
        }
    ]
    assert record["response"]["result"] == {}


async def test_a_rule_reaches_another_namespaces_shared_package_action_through_a_binding(platform: Platform) -> None:
    await ok(platform.alice.put(f"{PACKAGES}/shared", json={"publish": True, "parameters": pairs({"p": "package"})}))
    await ok(platform.alice.put(f"{ACTIONS}/shared/echo", json={"exec": {"kind": "script:1", "code": "echo"}}))
    binding = name("b")
    await ok(platform.guest.put(f"{PACKAGES}/{binding}", json={"binding": {"namespace": "alice", "name": "shared"}}))
    trigger = name("t")
    await put_trigger(platform.guest, trigger, parameters=pairs({"t": 1}))

    rule = await put_rule(platform.guest, name("r"), f"/_/{trigger}", f"/_/{binding}/echo")
    record = await platform.whisk.record((await fire(platform.guest, trigger)).json()["activationId"])

    assert rule["action"] == {"path": f"guest/{binding}", "name": "echo"}  # stored as given, as OpenWhisk
    [line] = log_lines(record)
    assert line["success"] is True and line["action"] == f"guest/{binding}/echo"
    fired = await platform.whisk.record(line["activationId"])
    assert fired["response"]["result"] == {"p": "package", "t": 1}


async def test_a_rule_to_a_sequence_runs_the_sequence(platform: Platform) -> None:
    trigger, component, sequence = name("t"), name("a"), name("s")
    await put_trigger(platform.guest, trigger)
    await platform.whisk.create(component)
    await ok(
        platform.guest.put(
            f"{ACTIONS}/{sequence}", json={"exec": {"kind": "sequence", "components": [f"/_/{component}"]}}
        )
    )
    await put_rule(platform.guest, name("r"), f"/_/{trigger}", f"/_/{sequence}")

    record = await platform.whisk.record((await fire(platform.guest, trigger, {"k": "v"})).json()["activationId"])

    [line] = log_lines(record)
    fired = await platform.whisk.record(line["activationId"])
    assert fired["name"] == sequence and fired["response"]["result"] == {"k": "v"}
    assert len(fired["logs"]) == 1  # the component's activation id


async def test_fire_payload_must_be_an_object(platform: Platform) -> None:
    trigger, _, _ = await wired(platform)

    assert_error(await fire(platform.guest, trigger, [1, 2]), 400)


async def test_over_fires_per_minute_is_429_with_openwhisks_message(platform: Platform) -> None:
    await put_trigger(platform.capped, "t")

    response = await platform.capped.post(f"{TRIGGERS}/t")
    unknown = await platform.capped.post(f"{TRIGGERS}/nothing")  # counted before the trigger is read

    assert_error(response, 429, "Too many requests in the last minute (count: 1, allowed: 0).")
    assert_error(unknown, 429, "Too many requests in the last minute (count: 2, allowed: 0).")
    limits = (await platform.capped.get("/api/v1/namespaces/_/limits")).json()
    assert limits["firesPerMinute"] == 0


def test_fires_per_minute_counts_calendar_minutes_apart_from_invokes() -> None:
    now = [120.0]
    throttles = Throttles(Settings(fires_per_minute=2), _NoBooks(), clock=lambda: now[0])
    identity = Identity(
        subject="s",
        namespace=Namespace(name="ns", uuid="u"),
        authkey=AuthKey(uuid="u", key="k"),
        limits=NamespaceLimits(),
    )

    throttles.check_fires(identity)
    throttles.check_fires(identity)
    throttles.check_rate(identity)  # invokes have books of their own
    with pytest.raises(Exception, match=r"count: 3, allowed: 2"):
        throttles.check_fires(identity)
    now[0] = 180.0  # the next calendar minute
    throttles.check_fires(identity)
    own = identity.model_copy(update={"limits": NamespaceLimits(firesPerMinute=5)})
    assert throttles.fires_per_minute(own) == 5


class _NoBooks:
    def active_activations(self, namespace: str) -> int:
        return 0
