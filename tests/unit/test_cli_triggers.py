"""pywsk's triggers, rules and the client side of feeds against an in-memory fake of the REST API.

Followed: apache/openwhisk-cli commands/trigger.go (`Trigger.Create`, `Update`, `configureFeed`, `deleteTrigger`,
`triggerFireCmd`'s 204 message), commands/rule.go, commands/namespace.go (rule statuses, #312), commands/util.go
(`printTriggerSummary`, `printRuleSummary`), wski18n/resources/en_US.all.json (`FEED_CONFIGURATION_FAILURE`);
apache/openwhisk-client-go whisk/trigger.go, whisk/rule.go (`ToSummaryRowString`, `SetState`), whisk/client.go
(`getApplicationErrorMessage`); the server's shapes from apache/openwhisk Triggers.scala and Rules.scala (a
rule listing has no status; a fire without an active rule answers 204) and docs/feeds.md (the feed protocol).

Each test runs the CLI through typer's CliRunner with an `httpx.MockTransport` and checks what a user sees
(stdout, stderr, exit status) and what went over the wire.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from pywsk.commands_trigger import application_error
from pywsk.context import Config
from pywsk.main import app

pytestmark = pytest.mark.unit

OWN = "guest"
AUTH = "uuid-1:key-1"
NOT_FOUND = "The requested resource does not exist."
FIRE_ID = "f" * 32
FEED_ID = "e" * 32
INTERVAL = "/whisk.system/alarms/interval"

FeedScript = Callable[[dict[str, Any]], httpx.Response]


def error(status: int, message: str) -> httpx.Response:
    return httpx.Response(status, json={"error": message, "code": "c0de"})


def feed_record(params: dict[str, Any], *, success: bool = True, result: Any = None) -> dict[str, Any]:
    status = "success" if success else "application error"
    return {"activationId": FEED_ID, "namespace": "whisk.system", "name": "interval",
            "response": {"status": status, "success": success, "result": result if result is not None else {}},
            "logs": [], "annotations": [], "event": params["lifecycleEvent"]}  # fmt: skip


def feed_succeeds(params: dict[str, Any]) -> httpx.Response:
    return httpx.Response(200, json=feed_record(params, result={"status": "ok", "event": params["lifecycleEvent"]}))


@dataclass
class EventWhisk:
    """Triggers, rules and feed actions answered in OpenWhisk's shapes (`_` is the caller's namespace `guest`).

    A rule's status is kept by its trigger, as OpenWhisk does, so the rule listing carries none. Feed actions are
    scripted per name (`feeds`), and every invocation's parameters are recorded in `feed_calls`.
    """

    triggers: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    rules: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    feeds: dict[str, FeedScript] = field(default_factory=lambda: {"alarms/interval": feed_succeeds})
    feed_calls: list[dict[str, Any]] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path.removeprefix("/api/v1/namespaces/")
        namespace, _, rest = path.partition("/")
        namespace = OWN if namespace == "_" else namespace
        collection, _, entity = rest.partition("/")
        if collection == "triggers":
            return self._triggers(request, namespace, entity)
        if collection == "rules":
            return self._rules(request, namespace, entity)
        if collection == "actions" and request.method == "POST" and namespace == "whisk.system":
            return self._feed(request, entity)
        if collection in ("packages", "actions") and not entity:
            return httpx.Response(200, json=[])
        return error(404, NOT_FOUND)

    def add_trigger(self, name: str, namespace: str = OWN, **fields: Any) -> dict[str, Any]:
        doc = {"namespace": namespace, "name": name, "version": "0.0.1", "publish": False, "annotations": [],
               "parameters": [], "limits": {}, **fields}  # fmt: skip
        self.triggers[(namespace, name)] = doc
        return doc

    def add_rule(self, name: str, trigger: str, action: str, status: str = "active") -> dict[str, Any]:
        doc = {"namespace": OWN, "name": name, "version": "0.0.1", "publish": False, "status": status,
               "trigger": {"path": OWN, "name": trigger}, "action": {"path": OWN, "name": action}}  # fmt: skip
        self.rules[(OWN, name)] = doc
        return doc

    def sent(self, method: str, collection: str) -> list[httpx.Request]:
        return [r for r in self.requests if r.method == method and f"/{collection}" in r.url.path]

    def _triggers(self, request: httpx.Request, namespace: str, name: str) -> httpx.Response:
        if not name:
            return httpx.Response(200, json=[{k: v for k, v in doc.items() if k != "parameters"}
                                             for (ns, _), doc in self.triggers.items() if ns == namespace])  # fmt: skip
        key = (namespace, name)
        if request.method == "PUT":
            if key in self.triggers and request.url.params["overwrite"] == "false":
                return error(409, "resource already exists")
            body = json.loads(request.content)
            fields = {k: body[k] for k in ("annotations", "parameters") if k in body}
            return httpx.Response(200, json=self.add_trigger(name, namespace, **fields))
        doc = self.triggers.get(key)
        if doc is None:
            return error(404, NOT_FOUND)
        if request.method == "DELETE":
            return httpx.Response(200, json=self.triggers.pop(key))
        if request.method == "POST":
            active = [r for r in self.rules.values() if r["trigger"]["name"] == name and r["status"] == "active"]
            return httpx.Response(202, json={"activationId": FIRE_ID}) if active else httpx.Response(204)
        return httpx.Response(200, json=doc)

    def _rules(self, request: httpx.Request, namespace: str, name: str) -> httpx.Response:
        if not name:
            return httpx.Response(200, json=[{k: v for k, v in doc.items() if k != "status"}
                                             for (ns, _), doc in self.rules.items() if ns == namespace])  # fmt: skip
        key = (namespace, name)
        if request.method == "PUT":
            if key in self.rules and request.url.params["overwrite"] == "false":
                return error(409, "resource already exists")
            body = json.loads(request.content)
            trigger = body["trigger"].rsplit("/", 1)[1]
            if (OWN, trigger) not in self.triggers:
                return error(404, NOT_FOUND)
            return httpx.Response(200, json=self.add_rule(name, trigger, body["action"].rsplit("/", 1)[1]))
        doc = self.rules.get(key)
        if doc is None:
            return error(404, NOT_FOUND)
        if request.method == "DELETE":
            return httpx.Response(200, json=self.rules.pop(key))
        if request.method == "POST":
            doc["status"] = json.loads(request.content)["status"]
            return httpx.Response(200)
        return httpx.Response(200, json=doc)

    def _feed(self, request: httpx.Request, entity: str) -> httpx.Response:
        script = self.feeds.get(entity)
        if script is None:
            return error(404, NOT_FOUND)
        assert dict(request.url.params) == {"blocking": "true", "result": "false"}, "feeds are invoked blocking"
        params = json.loads(request.content)
        self.feed_calls.append(params)
        return script(params)


@pytest.fixture(autouse=True)
def props_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "wskprops"
    path.write_text(f"AUTH={AUTH}\n")
    monkeypatch.setenv("WSK_CONFIG_FILE", str(path))
    return path


@pytest.fixture
def whisk() -> EventWhisk:
    return EventWhisk()


@pytest.fixture
def run(whisk: EventWhisk) -> Callable[..., Result]:
    def invoke(*args: str) -> Result:
        return CliRunner().invoke(app, list(args), obj=Config(transport=httpx.MockTransport(whisk.handle)))

    return invoke


def body(request: httpx.Request) -> Any:
    return json.loads(request.content)


def json_blocks(text: str) -> list[Any]:
    """The JSON documents printed between `ok:` lines."""
    decoder, found, index = json.JSONDecoder(), [], 0
    while (start := text.find("{", index)) != -1:
        value, index = decoder.raw_decode(text, start)
        found.append(value)
    return found


# -- trigger create / update -------------------------------------------------------------------------------------


def test_trigger_create_sends_the_go_clients_body(
    run: Callable[..., Result], whisk: EventWhisk, tmp_path: Path
) -> None:
    (tmp_path / "params.json").write_text('{"from_file": 1, "place": "file"}')

    result = run("trigger", "create", "locationUpdate", "-p", "place", "Paris", "-P", str(tmp_path / "params.json"),
                 "-a", "description", "Where I am")  # fmt: skip

    assert (result.exit_code, result.stdout) == (0, "ok: created trigger locationUpdate\n")
    [put] = whisk.requests
    assert (put.url.path, dict(put.url.params)) == (
        "/api/v1/namespaces/_/triggers/locationUpdate",
        {"overwrite": "false"},
    )
    assert body(put) == {
        "name": "locationUpdate",
        "annotations": [{"key": "description", "value": "Where I am"}],
        "parameters": [{"key": "from_file", "value": 1}, {"key": "place", "value": "Paris"}],
    }


def test_trigger_create_without_flags_sends_only_the_name(run: Callable[..., Result], whisk: EventWhisk) -> None:
    run("trigger", "create", "/other/t")

    [put] = whisk.requests
    assert (put.url.path, body(put)) == ("/api/v1/namespaces/other/triggers/t", {"name": "t"})


def test_trigger_create_of_an_existing_trigger_exits_153(run: Callable[..., Result], whisk: EventWhisk) -> None:
    whisk.add_trigger("t")

    result = run("trigger", "create", "t")

    assert (result.exit_code, result.stderr) == (
        409 - 256,
        "error: Unable to create trigger 't': resource already exists (code c0de)\n",
    )


def test_trigger_create_with_a_pair_missing_its_value_sends_nothing(
    run: Callable[..., Result], whisk: EventWhisk
) -> None:
    result = run("trigger", "create", "t", "-p", "lonely")

    assert (result.exit_code, result.stderr) == (1, "error: Arguments for '-p' must be a KEY VALUE pair.\n")
    assert whisk.requests == []


def test_trigger_update_puts_with_overwrite(run: Callable[..., Result], whisk: EventWhisk) -> None:
    whisk.add_trigger("t", parameters=[{"key": "old", "value": 1}])

    result = run("trigger", "update", "t", "-p", "new", "2")

    assert (result.exit_code, result.stdout) == (0, "ok: updated trigger t\n")
    [put] = whisk.sent("PUT", "triggers")
    assert dict(put.url.params) == {"overwrite": "true"}
    assert body(put) == {"name": "t", "parameters": [{"key": "new", "value": 2}]}


def test_trigger_update_of_a_missing_trigger_creates_it(run: Callable[..., Result], whisk: EventWhisk) -> None:
    result = run("trigger", "update", "fresh")

    assert (result.exit_code, result.stdout) == (0, "ok: created trigger fresh\n")
    [put] = whisk.sent("PUT", "triggers")
    assert dict(put.url.params) == {"overwrite": "false"}
    assert (OWN, "fresh") in whisk.triggers


# -- feeds ------------------------------------------------------------------------------------------------------


def test_trigger_create_with_a_feed_annotates_the_trigger_and_tells_the_feed_create(
    run: Callable[..., Result], whisk: EventWhisk
) -> None:
    result = run("trigger", "create", "everyMinute", "--feed", INTERVAL, "-p", "minutes", "1")

    assert result.exit_code == 0, result.output
    [put] = whisk.sent("PUT", "triggers")
    # The parameters configure the feed, not the trigger.
    assert body(put) == {"name": "everyMinute", "annotations": [{"key": "feed", "value": INTERVAL}]}
    [feed] = whisk.sent("POST", "actions")
    assert feed.url.path == "/api/v1/namespaces/whisk.system/actions/alarms/interval"
    assert whisk.feed_calls == [
        {"minutes": 1, "lifecycleEvent": "CREATE", "triggerName": "/_/everyMinute", "authKey": AUTH}
    ]
    lines = result.stdout.splitlines()
    assert lines[0] == f"ok: invoked {INTERVAL} with id {FEED_ID}"
    assert lines[-1] == "ok: created trigger everyMinute"
    assert json_blocks(result.stdout)[0]["activationId"] == FEED_ID


def test_a_failing_feed_deletes_the_trigger_again_with_wsks_message(
    run: Callable[..., Result], whisk: EventWhisk
) -> None:
    def refuses_create(params: dict[str, Any]) -> httpx.Response:
        if params["lifecycleEvent"] == "CREATE":
            return httpx.Response(502, json=feed_record(params, success=False, result={"error": "minutes must be > 0"}))
        return feed_succeeds(params)

    whisk.feeds["alarms/interval"] = refuses_create

    result = run("trigger", "create", "t", "--feed", INTERVAL, "-p", "minutes", "0")

    assert result.exit_code == 502 - 256
    assert whisk.triggers == {}
    # wsk's rollback is `trigger delete`, which tells the feed DELETE before deleting the trigger.
    assert [call["lifecycleEvent"] for call in whisk.feed_calls] == ["CREATE", "DELETE"]
    assert result.stderr.endswith(
        "error: Unable to create trigger 't': Unable to configure feed '/whisk.system/alarms/interval': "
        "The following application error was received: minutes must be > 0\n"
    )
    assert json_blocks(result.stderr)[0]["response"]["success"] is False  # the failed activation, on stderr
    assert result.stdout.splitlines()[-1] == "ok: deleted trigger t"
    assert "created trigger" not in result.stdout


def test_a_missing_feed_action_leaves_no_trigger(run: Callable[..., Result], whisk: EventWhisk) -> None:
    result = run("trigger", "create", "t", "--feed", "/whisk.system/alarms/nope")

    assert result.exit_code == 404 - 256
    assert result.stderr.splitlines()[-1] == (
        "error: Unable to create trigger 't': Unable to configure feed '/whisk.system/alarms/nope': "
        f"{NOT_FOUND} (code c0de)"
    )
    assert whisk.triggers == {}


def test_trigger_get_of_a_feed_trigger_shows_the_feeds_read(run: Callable[..., Result], whisk: EventWhisk) -> None:
    whisk.add_trigger("t", annotations=[{"key": "feed", "value": INTERVAL}])

    result = run("trigger", "get", "t")

    assert result.exit_code == 0
    assert whisk.feed_calls == [{"lifecycleEvent": "READ", "triggerName": "/_/t", "authKey": AUTH}]
    # wsk prints the READ activation (no `ok:` header) instead of the trigger.
    [record] = json_blocks(result.stdout)
    assert (record["activationId"], record["response"]["result"]["event"]) == (FEED_ID, "READ")


def test_trigger_update_of_a_feed_trigger_tells_the_feed_update_instead_of_a_put(
    run: Callable[..., Result], whisk: EventWhisk
) -> None:
    whisk.add_trigger("t", annotations=[{"key": "feed", "value": INTERVAL}])

    result = run("trigger", "update", "t", "-p", "minutes", "5")

    assert (result.exit_code, result.stdout.splitlines()[-1]) == (0, "ok: updated trigger t")
    assert whisk.sent("PUT", "triggers") == []
    assert whisk.feed_calls == [{"minutes": 5, "lifecycleEvent": "UPDATE", "triggerName": "/_/t", "authKey": AUTH}]


def test_trigger_update_of_a_feed_trigger_whose_feed_fails_reports_it(
    run: Callable[..., Result], whisk: EventWhisk
) -> None:
    whisk.add_trigger("t", annotations=[{"key": "feed", "value": "/whisk.system/alarms/gone"}])

    result = run("trigger", "update", "t", "-p", "minutes", "5")

    assert (result.exit_code, result.stderr) == (
        404 - 256,
        "error: Unable to create trigger 't': Unable to configure feed '/whisk.system/alarms/gone': "
        f"{NOT_FOUND} (code c0de)\n",
    )


def test_trigger_delete_of_a_feed_trigger_tells_the_feed_delete_first(
    run: Callable[..., Result], whisk: EventWhisk
) -> None:
    whisk.add_trigger("t", annotations=[{"key": "feed", "value": INTERVAL}])

    result = run("trigger", "delete", "t")

    assert result.exit_code == 0
    assert whisk.feed_calls == [{"lifecycleEvent": "DELETE", "triggerName": "/_/t", "authKey": AUTH}]
    assert [r.method for r in whisk.requests] == ["GET", "POST", "DELETE"]
    assert result.stdout.splitlines()[-1] == "ok: deleted trigger t"
    assert whisk.triggers == {}


def test_trigger_delete_goes_on_when_the_feed_cannot_forget_the_trigger(
    run: Callable[..., Result], whisk: EventWhisk
) -> None:
    whisk.add_trigger("t", annotations=[{"key": "feed", "value": "/whisk.system/alarms/gone"}])

    result = run("trigger", "delete", "t")

    assert (result.exit_code, result.stdout) == (0, "ok: deleted trigger t\n")
    assert whisk.triggers == {}


@pytest.mark.parametrize(
    ("result", "text"),
    [
        ({"error": "plain"}, "plain"),
        ({"error": {"message": "m", "code": 7}}, "m"),
        ({"error": {"nested": {"x": 1}}}, '{"nested":{"x":1}}'),
        ({"other": 1}, "{'other': 1}"),
    ],
)
def test_application_error_text_is_the_go_clients(result: Any, text: str) -> None:
    assert application_error(result) == text


# -- trigger get / list / delete / fire ---------------------------------------------------------------------------


def test_trigger_get_prints_the_trigger(run: Callable[..., Result], whisk: EventWhisk) -> None:
    doc = whisk.add_trigger("t", parameters=[{"key": "a", "value": 1}])

    result = run("trigger", "get", "t")

    assert result.exit_code == 0
    assert result.stdout == "ok: got trigger t\n" + json.dumps(doc, indent=4) + "\n"


def test_trigger_get_field_and_summary(run: Callable[..., Result], whisk: EventWhisk) -> None:
    whisk.add_trigger("t", parameters=[{"key": "b", "value": 1}, {"key": "a", "value": 2}],
                      annotations=[{"key": "description", "value": "Ticks"}])  # fmt: skip

    field_result = run("trigger", "get", "t", "parameters")
    summary_result = run("trigger", "get", "t", "--summary")

    assert field_result.stdout.startswith("ok: got trigger t, displaying field parameters\n[")
    assert summary_result.stdout == "trigger /guest/t: Ticks\n   (parameters: *a, *b)\n"


def test_trigger_get_refuses_an_unknown_field_before_asking(run: Callable[..., Result], whisk: EventWhisk) -> None:
    result = run("trigger", "get", "t", "colour")

    assert (result.exit_code, result.stderr) == (1, "error: Invalid field filter 'colour'.\n")
    assert whisk.requests == []


@pytest.mark.parametrize("command", ["get", "delete"])
def test_trigger_get_or_delete_of_a_missing_trigger_exits_148(run: Callable[..., Result], command: str) -> None:
    result = run("trigger", command, "nope")

    assert (result.exit_code, result.stderr) == (
        404 - 256,
        f"error: Unable to get trigger 'nope': {NOT_FOUND} (code c0de)\n",
    )


def test_trigger_list_rows_and_name_sort(run: Callable[..., Result], whisk: EventWhisk) -> None:
    whisk.add_trigger("zeta", publish=True)
    whisk.add_trigger("Alpha")

    result = run("trigger", "list", "-n", "-l", "5", "-s", "1")

    assert result.stdout == f"triggers\n{'/guest/Alpha':<70} private\n{'/guest/zeta':<70} private\n"
    [listing] = whisk.requests
    assert dict(listing.url.params) == {"limit": "5", "skip": "1"}


def test_trigger_list_of_an_empty_namespace_prints_the_header(run: Callable[..., Result]) -> None:
    assert run("trigger", "list", "/guest").stdout == "triggers\n"


def test_trigger_fire_with_an_active_rule_prints_the_activation_id(
    run: Callable[..., Result], whisk: EventWhisk
) -> None:
    whisk.add_trigger("t")
    whisk.add_rule("r", "t", "hello")

    result = run("trigger", "fire", "t", "-p", "name", "Ada")

    assert (result.exit_code, result.stdout) == (0, f"ok: triggered /_/t with id {FIRE_ID}\n")
    [post] = whisk.sent("POST", "triggers")
    assert body(post) == {"name": "Ada"}


def test_trigger_fire_without_an_active_rule_says_it_did_not_fire(
    run: Callable[..., Result], whisk: EventWhisk
) -> None:
    whisk.add_trigger("t")
    whisk.add_rule("r", "t", "hello", status="inactive")

    result = run("trigger", "fire", "/guest/t")

    assert (result.exit_code, result.stdout) == (
        0,
        "trigger /guest/t did not fire as it is not associated with an active rule\n",
    )


def test_trigger_fire_of_a_missing_trigger_exits_148(run: Callable[..., Result]) -> None:
    result = run("trigger", "fire", "nope")

    assert (result.exit_code, result.stderr) == (
        404 - 256,
        f"error: Unable to fire trigger 'nope': {NOT_FOUND} (code c0de)\n",
    )


def test_trigger_fire_of_a_throttled_namespace_exits_173(run: Callable[..., Result]) -> None:
    def throttled(request: httpx.Request) -> httpx.Response:
        return error(429, "Too many requests in the last minute (count: 61, allowed: 60).")

    result = CliRunner().invoke(app, ["trigger", "fire", "t"], obj=Config(transport=httpx.MockTransport(throttled)))

    assert result.exit_code == 429 - 256
    assert result.stderr.startswith("error: Unable to fire trigger 't': Too many requests in the last minute")


# -- rules ------------------------------------------------------------------------------------------------------


def test_rule_create_sends_fully_qualified_trigger_and_action(run: Callable[..., Result], whisk: EventWhisk) -> None:
    whisk.add_trigger("t")

    result = run("rule", "create", "r", "t", "demo/hello")

    assert (result.exit_code, result.stdout) == (0, "ok: created rule r\n")
    [put] = whisk.sent("PUT", "rules")
    assert (put.url.path, dict(put.url.params)) == ("/api/v1/namespaces/_/rules/r", {"overwrite": "false"})
    assert body(put) == {"name": "r", "status": "", "trigger": "/_/t", "action": "/_/demo/hello"}


def test_rule_create_for_a_missing_trigger_reports_the_servers_answer(run: Callable[..., Result]) -> None:
    result = run("rule", "create", "r", "nope", "/whisk.system/utils/echo")

    assert (result.exit_code, result.stderr) == (
        404 - 256,
        f"error: Unable to create rule 'r': {NOT_FOUND} (code c0de)\n",
    )


def test_rule_update_overwrites(run: Callable[..., Result], whisk: EventWhisk) -> None:
    whisk.add_trigger("t")
    whisk.add_rule("r", "t", "old")

    result = run("rule", "update", "r", "/guest/t", "new")

    assert (result.exit_code, result.stdout) == (0, "ok: updated rule r\n")
    [put] = whisk.sent("PUT", "rules")
    assert dict(put.url.params) == {"overwrite": "true"}
    assert body(put)["trigger"] == "/guest/t"


def test_rule_enable_disable_and_status(run: Callable[..., Result], whisk: EventWhisk) -> None:
    whisk.add_trigger("t")
    whisk.add_rule("r", "t", "hello")

    disabled = run("rule", "disable", "r")
    status_off = run("rule", "status", "r")
    enabled = run("rule", "enable", "r")
    status_on = run("rule", "status", "r")

    assert [disabled.stdout, status_off.stdout, enabled.stdout, status_on.stdout] == [
        "ok: disabled rule r\n",
        "ok: rule r is inactive\n",
        "ok: enabled rule r\n",
        "ok: rule r is active\n",
    ]
    assert [body(r) for r in whisk.sent("POST", "rules")] == [{"status": "inactive"}, {"status": "active"}]


@pytest.mark.parametrize(
    ("command", "failure"),
    [
        ("enable", "Unable to enable rule 'nope'"),
        ("disable", "Unable to disable rule 'nope'"),
        ("status", "Unable to get status of rule 'nope'"),
        ("get", "Unable to get rule 'nope'"),
        ("delete", "Unable to delete rule 'nope'"),
    ],
)
def test_rule_commands_on_a_missing_rule_exit_148(run: Callable[..., Result], command: str, failure: str) -> None:
    result = run("rule", command, "nope")

    assert (result.exit_code, result.stderr) == (404 - 256, f"error: {failure}: {NOT_FOUND} (code c0de)\n")


def test_rule_get_full_field_and_summary(run: Callable[..., Result], whisk: EventWhisk) -> None:
    whisk.add_trigger("t")
    doc = whisk.add_rule("r", "t", "hello")

    full = run("rule", "get", "r")
    status_field = run("rule", "get", "r", "status")
    summary = run("rule", "get", "r", "-s")
    bad = run("rule", "get", "r", "colour")

    assert full.stdout == "ok: got rule r\n" + json.dumps(doc, indent=4) + "\n"
    assert status_field.stdout == 'ok: got rule r, displaying field status\n"active"\n'
    assert summary.stdout == "rule /guest/r\n   (status: active)\n"
    assert (bad.exit_code, bad.stderr) == (1, "error: Invalid field filter 'colour'.\n")


def test_rule_delete_with_disable_deactivates_first(run: Callable[..., Result], whisk: EventWhisk) -> None:
    whisk.add_trigger("t")
    whisk.add_rule("r", "t", "hello")

    result = run("rule", "delete", "r", "--disable")

    assert (result.exit_code, result.stdout) == (0, "ok: deleted rule r\n")
    assert [(r.method, body(r) if r.content else None) for r in whisk.requests] == [
        ("POST", {"status": "inactive"}),
        ("DELETE", None),
    ]
    assert whisk.rules == {}


def test_rule_list_gets_each_rules_status(run: Callable[..., Result], whisk: EventWhisk) -> None:
    whisk.add_trigger("t")
    whisk.add_rule("b", "t", "hello")
    whisk.add_rule("a", "t", "hello", status="inactive")

    result = run("rule", "list", "-n")

    assert result.stdout == (
        f"rules\n{'/guest/a':<70} {'private':<20} inactive\n{'/guest/b':<70} {'private':<20} active\n"
    )
    assert [r.url.path for r in whisk.requests] == [
        "/api/v1/namespaces/_/rules",
        "/api/v1/namespaces/_/rules/b",
        "/api/v1/namespaces/_/rules/a",
    ]


# -- pywsk list -------------------------------------------------------------------------------------------------


def test_list_shows_triggers_and_rules_with_status(run: Callable[..., Result], whisk: EventWhisk) -> None:
    whisk.add_trigger("t")
    whisk.add_rule("r", "t", "hello")

    result = run("list")

    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "Entities in namespace: _\npackages\nactions\n"
        f"triggers\n{'/guest/t':<70} private\n"
        f"rules\n{'/guest/r':<70} {'private':<20} active\n"
    )


def test_list_fails_when_the_server_has_no_trigger_routes(run: Callable[..., Result]) -> None:
    def no_triggers(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/triggers"):
            return error(404, NOT_FOUND)
        return httpx.Response(200, json=[])

    result = CliRunner().invoke(app, ["list"], obj=Config(transport=httpx.MockTransport(no_triggers)))

    assert (result.exit_code, result.stderr) == (
        404 - 256,
        f"error: Unable to obtain the list of entities for namespace '_': {NOT_FOUND} (code c0de)\n",
    )
