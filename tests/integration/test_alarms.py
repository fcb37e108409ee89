"""Alarms on real servers and the real clock: feeds, fires, a standalone restart, and two controllers with one killed.

Follows apache/openwhisk-package-alarms: action/alarmWebAction.js (the feed's events and messages),
provider/lib/cronAlarm.js and dateAlarm.js (when alarms fire), provider/lib/utils.js ``handleFiredTrigger``
(a ``once`` alarm disabled after its fire) and tests/src/test/scala/system/packages/AlarmsFeedTests.scala (a
trigger with a rule fired by the feed, audited through its activations). Cron patterns with a seconds field
(node-cron's six fields, which the package accepts) keep the real-clock tests to seconds; no test-only setting
is needed. Every fire is audited through the trigger's activation records (one per fire: each trigger has an
active rule to a WASM action), and in distributed mode through the ticks each controller logged.
"""

from __future__ import annotations

import itertools
import re
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from launcher.testing import Deployment, Server, start_deployment, start_standalone, stop_standalone
from tests.conftest import TEST_CONTROLLER_ENV, wasm_code

pytestmark = pytest.mark.integration

FEEDS = "/namespaces/whisk.system/actions/alarms"


def now_ms() -> int:
    return int(time.time() * 1000)


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def triggered(api: httpx.Client, prefix: str) -> str:
    """A trigger with an active rule to the WASM echo action (so that each fire leaves a record); its name."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    for path, body in (
        (f"actions/{name}-echo", {"exec": {"kind": "wasm:wasi", "code": wasm_code("echo")}}),
        (f"triggers/{name}", {}),
        (f"rules/{name}-rule", {"trigger": f"/_/{name}", "action": f"/_/{name}-echo"}),
    ):
        response = api.put(f"/namespaces/_/{path}", json=body)
        assert response.status_code == 200, response.text
    return name


def feed(api: httpx.Client, feed_name: str, event: str, trigger: str, **params: Any) -> dict[str, Any]:
    """The feed action's record for one lifecycle event (blocking)."""
    body = {"lifecycleEvent": event, "triggerName": f"/_/{trigger}", "authKey": "unused", **params}
    response = api.post(f"{FEEDS}/{feed_name}?blocking=true", json=body)
    assert response.status_code in (200, 502), response.text
    return dict(response.json())


def fires(api: httpx.Client, trigger: str) -> list[dict[str, Any]]:
    """The trigger's activation records (one per fire), oldest first."""
    response = api.get(f"/namespaces/_/activations?name={trigger}&docs=true&limit=200")
    assert response.status_code == 200, response.text
    return sorted(response.json(), key=lambda r: r["start"])


def read_status(api: httpx.Client, feed_name: str, trigger: str) -> dict[str, Any]:
    record = feed(api, feed_name, "READ", trigger)
    assert record["response"]["success"], record
    return dict(record["response"]["result"]["status"])


# one platform at a time ---------------------------------------------------------------------------------------


def test_once_alarm_fires_once_on_time_and_cron_alarm_fires_on_its_seconds(platform: Server) -> None:
    with platform.client() as api:
        once, cron = triggered(api, "once"), triggered(api, "cron")
        date = now_ms() + 2500
        assert feed(api, "once", "CREATE", once, date=date, trigger_payload={"who": "once"})["response"]["success"]
        stop = now_ms() + 6000
        created = feed(api, "alarm", "CREATE", cron, cron="*/2 * * * * *", stopDate=stop)
        assert created["response"]["result"] == {"status": "success"}

        wait_for(lambda: len(fires(api, once)) == 1, 10, "the once alarm's fire")
        [fired] = fires(api, once)
        assert abs(fired["start"] - date) < 1000, f"fired {fired['start'] - date} ms from its date"
        assert fired["response"]["result"] == {"who": "once"}
        assert read_status(api, "once", once)["reason"]["message"] == "Automatically disabled after firing once"

        wait_for(lambda: read_status(api, "alarm", cron)["active"] is False, 15, "the cron alarm's stop date")
        # Claiming the last tick disables the schedule before that tick is fired: wait for its record too.
        last_tick = stop - stop % 2000
        wait_for(lambda: any(r["start"] >= last_tick for r in fires(api, cron)), 10, "the last tick's fire")
        starts = [r["start"] for r in fires(api, cron)]
        assert 2 <= len(starts) <= 3, starts
        for start in starts:  # each on an even second (cron "*/2"), within a second
            assert (start % 2000) < 1000, starts
        assert len(fires(api, once)) == 1


def test_bad_feed_input_is_an_application_error_with_the_packages_message(platform: Server) -> None:
    with platform.client() as api:
        trigger = triggered(api, "bad")
        cases = [
            ("alarm", {"cron": "every minute"}, "cron pattern 'every minute' is not valid"),
            (
                "alarm",
                {"cron": "* * * * *", "startDate": "2999-01-02T00:00:00Z", "stopDate": "2999-01-01T00:00:00Z"},
                "stopDate parameter '2999-01-01T00:00:00Z' must be greater than the startDate parameter "
                "'2999-01-02T00:00:00Z'",
            ),
            ("interval", {}, "interval trigger feed is missing the minutes parameter"),
            ("once", {"date": "2001-01-01T00:00:00Z"}, "date parameter '2001-01-01T00:00:00Z' must be in the future"),
        ]
        for feed_name, params, message in cases:
            record = feed(api, feed_name, "CREATE", trigger, **params)
            assert record["response"]["status"] == "application error", record
            assert record["response"]["result"] == {"error": {"error": message}}
        missing = feed(api, "interval", "CREATE", f"{trigger}-missing", minutes=1)
        assert missing["response"]["result"] == {"error": {"error": "Trigger authentication request failed."}}
        unknown = feed(api, "interval", "READ", trigger)
        assert unknown["response"]["result"] == {
            "error": {"error": f"could not find trigger /guest/{trigger} in the database"}
        }


# standalone restart --------------------------------------------------------------------------------------


def test_standalone_restart_keeps_schedules_and_fires_missed_ticks_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "restart"
    server = start_standalone(data_dir, env=TEST_CONTROLLER_ENV)
    try:
        with server.client() as api:
            once, cron = triggered(api, "once"), triggered(api, "cron")
            start = now_ms()
            assert feed(api, "once", "CREATE", once, date=start + 4000)["response"]["success"]
            # Ticks every second from start+4 s to start+6 s: three ticks, all missed while the server is down.
            window = {"startDate": start + 3800, "stopDate": start + 6500}
            assert feed(api, "alarm", "CREATE", cron, cron="* * * * * *", **window)["response"]["success"]
        assert stop_standalone(server) == 0
        assert now_ms() < start + 3800, "the server took too long to stop: ticks may have fired"
        wait_for(lambda: now_ms() > start + 7000, 10, "every tick to pass while down")

        server = start_standalone(data_dir, env=TEST_CONTROLLER_ENV)
        with server.client() as api:
            wait_for(lambda: len(fires(api, once)) == 1 and len(fires(api, cron)) == 1, 10, "the missed ticks")
            wait_for(lambda: read_status(api, "alarm", cron)["active"] is False, 5, "the cron alarm to finish")
            assert len(fires(api, cron)) == 1, "three missed ticks fired more than once"
            assert len(fires(api, once)) == 1
    finally:
        stop_standalone(server)


# two controllers ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_controllers(
    kafka_broker: str, couchdb_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    deployment = start_deployment(
        kafka_broker,
        couchdb_url,
        tmp_path_factory.mktemp("alarms-two-controllers"),
        controllers=2,
        invokers=1,
        controller_env=TEST_CONTROLLER_ENV,
    )
    yield deployment
    deployment.stop()


FIRED_TICK = re.compile(r"alarm /guest/(\S+) fired tick (\d+)")


def fired_ticks(deployment: Deployment, trigger: str) -> dict[int, list[int]]:
    """Each controller's logged ticks of ``trigger``."""
    ticks: dict[int, list[int]] = {}
    for index in deployment.controller_procs:
        log = (deployment.work_dir / f"controller{index}.log").read_text()
        ticks[index] = [int(t) for name, t in FIRED_TICK.findall(log) if name == trigger]
    return ticks


@pytest.mark.kafka
def test_with_two_controllers_each_tick_fires_once_and_a_killed_controller_is_taken_over(
    two_controllers: Deployment,
) -> None:
    with two_controllers.client(0) as api:
        trigger = triggered(api, "ha")
        start = now_ms()
        created = feed(api, "alarm", "CREATE", trigger, cron="*/2 * * * * *", stopDate=start + 14_000)
        # The first tick is the first after the feed stored the schedule, between ``start`` and this answer.
        answered = now_ms()
        assert created["response"]["success"], created

        def fired_by_both_or_enough() -> bool:
            return sum(len(t) for t in fired_ticks(two_controllers, trigger).values()) >= 3

        wait_for(fired_by_both_or_enough, 15, "three ticks")
        ticks = fired_ticks(two_controllers, trigger)
        last = max(ticks, key=lambda index: max(ticks[index], default=0))
        survivor = 1 - last
        process, _ = two_controllers.controller_procs[last]
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        killed_at = now_ms()

    with two_controllers.client(survivor) as api:
        wait_for(lambda: read_status(api, "alarm", trigger)["active"] is False, 20, "the stop date")
        # Claiming the last tick disables the schedule before that tick is fired and logged: wait for its line.
        window = range(start - start % 2000 + 2000, start + 14_001, 2000)
        last_tick = window[-1]

        def logged_last_tick() -> bool:
            return any(last_tick in t for t in fired_ticks(two_controllers, trigger).values())

        wait_for(logged_last_tick, 10, f"the last tick {last_tick} to be logged")
        ticks = fired_ticks(two_controllers, trigger)
        taken_over = [t for t in ticks[survivor] if t > killed_at]
        assert len(taken_over) >= 2, f"the survivor fired {taken_over} after the kill at {killed_at}: {ticks}"
        logged = sorted(ticks[0] + ticks[1])
        assert len(logged) == len(set(logged)), f"a tick fired twice: {ticks}"
        records = fires(api, trigger)
        # The killed controller may have stored a fire's record and died before logging it: one more record.
        assert len(logged) <= len(records) <= len(logged) + 1, f"{len(records)} trigger records for {ticks}"
        gaps = [b["start"] - a["start"] for a, b in itertools.pairwise(records)]
        assert all(gap > 1000 for gap in gaps), f"two fires of one tick: {gaps}"
        # At most the tick the killed controller had claimed is lost: every other tick of the window fired. A tick
        # before the feed answered may have come before the schedule was stored, and then is not due.
        assert set(logged) <= set(window), f"ticks {list(window)}, fired {logged}"
        expected = [t for t in window if t > answered]
        missing = set(expected) - set(logged)
        assert len(missing) <= 1, f"ticks {list(window)} (due after {answered}), fired {logged}"
