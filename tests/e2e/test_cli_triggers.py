"""Triggers, rules and an alarms feed with the real `pywsk` console script against a real standalone server, with
a real WebAssembly action (actions/wasm/echo.wasm) run through an active rule.

Followed: apache/openwhisk-cli commands/trigger.go and rule.go (outputs, exit codes, the client-side feed flow),
apache/openwhisk docs/triggers_rules.md (a fire runs each active rule's action with the fire's parameters over the
trigger's; the trigger's record logs one JSON line per rule), docs/feeds.md (CREATE/READ/DELETE), Triggers.scala
(204 when no rule is active) and apache/openwhisk-package-alarms actions/alarm.js (the `once` feed's `date`).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from launcher.testing import Server
from tests.conftest import WASM_DIR
from tests.e2e.test_cli_packages import Pywsk

pytestmark = pytest.mark.e2e

RECORD_DEADLINE_S = 30.0
NOT_FOUND_EXIT = 404 - 256


@pytest.fixture(scope="module")
def pywsk(standalone: Server, tmp_path_factory: pytest.TempPathFactory) -> Pywsk:
    cli = Pywsk(tmp_path_factory.mktemp("pywsk-triggers") / "wskprops")
    cli("property", "set", "--apihost", standalone.apihost, "--auth", standalone.auth)
    return cli


@pytest.fixture(scope="module")
def namespace(pywsk: Pywsk) -> str:
    return pywsk("namespace", "list").stdout.splitlines()[1]


@pytest.fixture
def prefix(unique_name: str) -> str:
    """A short unique prefix for this test's entities (names must not clash on the shared server)."""
    return unique_name[-6:] + "-" + unique_name[:12].strip("-_")


def activation(pywsk: Pywsk, activation_id: str) -> dict[str, Any]:
    """The activation record, once the server has it (a fire's records are written after its 202)."""
    deadline = time.monotonic() + RECORD_DEADLINE_S
    while True:
        result = pywsk("activation", "get", activation_id, check=False)
        if result.returncode == 0:
            record = json.loads(result.stdout.partition("\n")[2])
            assert isinstance(record, dict)
            return record
        assert time.monotonic() < deadline, f"no record {activation_id} after {RECORD_DEADLINE_S} s: {result.stderr}"
        time.sleep(0.2)


def test_a_fire_runs_a_wasm_action_through_an_active_rule(pywsk: Pywsk, namespace: str, prefix: str) -> None:
    action, trigger, rule = f"{prefix}-echo", f"{prefix}-t", f"{prefix}-r"
    pywsk("action", "create", action, str(WASM_DIR / "echo.wasm"))

    assert pywsk("trigger", "create", trigger, "-p", "from", "trigger", "-p", "name", "nobody").stdout == (
        f"ok: created trigger {trigger}\n"
    )
    got = pywsk.ok_then_json("trigger", "get", trigger)
    assert isinstance(got, dict) and {"key": "from", "value": "trigger"} in got["parameters"]
    assert pywsk("rule", "create", rule, trigger, action).stdout == f"ok: created rule {rule}\n"
    assert pywsk("rule", "status", rule).stdout == f"ok: rule {rule} is active\n"

    fired = pywsk("trigger", "fire", trigger, "-p", "name", "Ada").stdout
    prefix_text = f"ok: triggered /_/{trigger} with id "
    assert fired.startswith(prefix_text), fired
    trigger_record = activation(pywsk, fired.removeprefix(prefix_text).strip())
    [line] = trigger_record["logs"]
    logged = json.loads(line)
    assert (logged["success"], logged["rule"]) == (True, f"{namespace}/{rule}")
    action_record = activation(pywsk, logged["activationId"])
    assert action_record["response"]["result"] == {"from": "trigger", "name": "Ada"}  # the fire's over the trigger's

    assert f"{'/' + namespace + '/' + trigger:<70} private" in pywsk("trigger", "list").stdout.splitlines()
    rule_row = f"{'/' + namespace + '/' + rule:<70} {'private':<20} active"
    assert rule_row in pywsk("rule", "list").stdout.splitlines()
    listing = pywsk("list").stdout.splitlines()
    assert listing.index("triggers") < listing.index("rules") < listing.index(rule_row)

    assert pywsk("rule", "disable", rule).stdout == f"ok: disabled rule {rule}\n"
    assert pywsk("trigger", "fire", trigger).stdout == (
        f"trigger /_/{trigger} did not fire as it is not associated with an active rule\n"
    )
    assert pywsk("rule", "delete", rule).stdout == f"ok: deleted rule {rule}\n"
    assert pywsk("trigger", "delete", trigger).stdout == f"ok: deleted trigger {trigger}\n"
    gone = pywsk("trigger", "get", trigger, check=False)
    assert (gone.returncode, gone.stderr.startswith(f"error: Unable to get trigger '{trigger}': ")) == (
        NOT_FOUND_EXIT,
        True,
    )


def test_bad_trigger_and_rule_input_fails_like_wsk(pywsk: Pywsk, prefix: str) -> None:
    fire = pywsk("trigger", "fire", f"{prefix}-missing", check=False)
    assert fire.returncode == NOT_FOUND_EXIT
    assert fire.stderr.startswith(f"error: Unable to fire trigger '{prefix}-missing': The requested resource does not")

    rule = pywsk("rule", "create", f"{prefix}-r", f"{prefix}-missing", "/whisk.system/utils/echo", check=False)
    assert rule.returncode != 0
    assert rule.stderr.startswith(f"error: Unable to create rule '{prefix}-r': ")

    pywsk("trigger", "create", f"{prefix}-t")
    again = pywsk("trigger", "create", f"{prefix}-t", check=False)
    assert again.returncode == 409 - 256
    assert again.stderr.startswith(f"error: Unable to create trigger '{prefix}-t': resource already exists")
    pywsk("trigger", "delete", f"{prefix}-t")


def test_a_once_alarm_feed_is_created_read_and_deleted(pywsk: Pywsk, prefix: str) -> None:
    if pywsk("action", "get", "/whisk.system/alarms/once", check=False).returncode != 0:
        pytest.skip("the whisk.system/alarms feeds are not installed on this server")
    trigger = f"{prefix}-once"
    date = (datetime.now(UTC) + timedelta(hours=1)).isoformat(timespec="seconds").replace("+00:00", "Z")

    created = pywsk("trigger", "create", trigger, "--feed", "/whisk.system/alarms/once", "-p", "date", date)
    lines = created.stdout.splitlines()
    assert lines[0].startswith("ok: invoked /whisk.system/alarms/once with id "), created.stdout
    assert lines[-1] == f"ok: created trigger {trigger}"

    read = pywsk("trigger", "get", trigger)
    record = json.loads(read.stdout)
    assert record["response"]["success"] is True, read.stdout  # the feed's READ activation, as wsk prints it

    deleted = pywsk("trigger", "delete", trigger)
    assert deleted.stdout.splitlines()[-1] == f"ok: deleted trigger {trigger}"
    assert pywsk("trigger", "get", trigger, check=False).returncode == NOT_FOUND_EXIT


def test_a_failing_feed_leaves_no_trigger(pywsk: Pywsk, prefix: str) -> None:
    if pywsk("action", "get", "/whisk.system/alarms/once", check=False).returncode != 0:
        pytest.skip("the whisk.system/alarms feeds are not installed on this server")
    trigger = f"{prefix}-bad"

    created = pywsk("trigger", "create", trigger, "--feed", "/whisk.system/alarms/once", "-p", "date", "never",
                    check=False)  # fmt: skip

    assert created.returncode != 0
    assert created.stderr.splitlines()[-1].startswith(
        f"error: Unable to create trigger '{trigger}': Unable to configure feed '/whisk.system/alarms/once': "
    )
    assert pywsk("trigger", "get", trigger, check=False).returncode == NOT_FOUND_EXIT
