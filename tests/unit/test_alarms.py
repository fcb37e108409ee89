"""The alarms service without a server: when alarms fire, what the feeds accept, and the scheduler's claims.

Follows apache/openwhisk-package-alarms: provider/lib/cronAlarm.js, intervalAlarm.js, dateAlarm.js (the ticks),
provider/lib/utils.js ``handleFiredTrigger``/``disableTrigger`` (after a fire), action/alarmWebAction.js (the
feed's parameters, validation messages and READ answer), action/alarm.js (the lifecycle events) and the
expectations of tests/src/test/scala/system/packages/AlarmsFeedNegativeTests.scala. The scheduler runs with an
injected clock over a real SQLite store.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from controller.alarms import AlarmFeeds, AlarmScheduler
from controller.alarms.feed import FeedError
from controller.alarms.schedule import next_fire_ms, parse_date
from pywhisk.entities import EntityRef, ReducedRule, Rule, Trigger
from pywhisk.errors import NotFound
from pywhisk.identity import Identity, guest_identity
from pywhisk.messages import TransactionId
from pywhisk.schedules import Schedule, ScheduleStatus
from pywhisk.settings import Settings
from pywhisk.store.sqlite import SqliteStore
from tests.doubles import ScriptedExecutor
from tests.inprocess import ACTIONS, InProcessWhisk, in_process_whisk

pytestmark = pytest.mark.unit

MINUTE = 60_000
T0 = parse_date("2030-01-07T12:00:00Z") or 0  # a Monday


def ms(iso: str) -> int:
    value = parse_date(iso)
    assert value is not None, iso
    return value


def schedule(**fields: Any) -> Schedule:
    base: dict[str, Any] = {"namespace": "guest", "name": "t", "subject": "guest", "kind": "alarm"}
    return Schedule.model_validate({**base, "status": ScheduleStatus(dateChanged=0), **fields})


# when alarms fire ----------------------------------------------------------------------------------------


def test_cron_ticks_in_the_given_timezone_across_daylight_saving_time() -> None:
    daily_nine = schedule(cron="0 9 * * *", timezone="America/New_York")
    # 09:00 in New York is 14:00 UTC in winter (EST) and 13:00 UTC in summer (EDT).
    assert next_fire_ms(daily_nine, ms("2030-01-07T12:00:00Z")) == ms("2030-01-07T14:00:00Z")
    assert next_fire_ms(daily_nine, ms("2030-07-08T12:00:00Z")) == ms("2030-07-08T13:00:00Z")
    assert next_fire_ms(schedule(cron="0 9 * * *"), ms("2030-01-07T12:00:00Z")) == ms("2030-01-08T09:00:00Z")


def test_cron_with_six_fields_has_seconds_first_as_node_cron() -> None:
    every_ten_seconds = schedule(cron="*/10 * * * * *")
    assert next_fire_ms(every_ten_seconds, T0 + 1) == T0 + 10_000
    assert next_fire_ms(every_ten_seconds, T0) == T0  # a tick exactly now is due now


def test_cron_waits_for_its_start_date_and_stops_at_its_stop_date() -> None:
    hourly = schedule(cron="0 * * * *", startDate="2030-01-07T15:30:00Z", stopDate="2030-01-07T17:00:00Z")
    assert next_fire_ms(hourly, T0) == ms("2030-01-07T16:00:00Z")
    assert next_fire_ms(hourly, ms("2030-01-07T16:00:01Z")) == ms("2030-01-07T17:00:00Z")
    assert next_fire_ms(hourly, ms("2030-01-07T17:00:01Z")) is None


def test_cron_stops_after_max_triggers() -> None:
    assert next_fire_ms(schedule(cron="* * * * *", maxTriggers=2, fired=1), T0) == T0
    assert next_fire_ms(schedule(cron="* * * * *", maxTriggers=2, fired=2), T0) is None


def test_interval_fires_at_its_start_date_then_every_interval() -> None:
    every_five = schedule(kind="interval", minutes=5, startDate=T0)
    assert next_fire_ms(every_five, T0 - 1000) == T0
    assert next_fire_ms(every_five, T0 + 1) == T0 + 5 * MINUTE
    assert next_fire_ms(every_five, T0 + 12 * MINUTE) == T0 + 15 * MINUTE
    bounded = every_five.model_copy(update={"stopDate": T0 + 12 * MINUTE})
    assert next_fire_ms(bounded, T0 + 11 * MINUTE) is None


def test_once_fires_at_its_date_and_never_again() -> None:
    once = schedule(kind="once", date="2030-01-07T12:00:30Z")
    assert next_fire_ms(once, T0) == T0 + 30_000
    assert next_fire_ms(once.model_copy(update={"fired": 1}), T0) is None


def test_dates_are_epoch_milliseconds_or_iso_8601_as_javascript_reads_them() -> None:
    assert parse_date(1_900_000_000_000) == 1_900_000_000_000
    assert parse_date("2030-01-07T12:00:00Z") == T0
    assert parse_date("2030-01-07T13:00:00+01:00") == T0
    for invalid in ("tomorrow", "", None, True, {"date": 1}):
        assert parse_date(invalid) is None


# the feeds -----------------------------------------------------------------------------------------------


class Clock:
    """Time that moves only when a test says so."""

    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms

    def __call__(self) -> float:
        return self.now_ms / 1000


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    sqlite = SqliteStore(Settings(data_dir=tmp_path).store_path)
    await sqlite.start()
    await sqlite.put_trigger(Trigger(namespace="guest", name="t"), None)
    yield sqlite
    await sqlite.close()


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def feeds(store: SqliteStore, clock: Clock) -> AlarmFeeds:
    return AlarmFeeds(store, store, store, clock=clock)


async def create(feeds: AlarmFeeds, feed: str, **params: Any) -> dict[str, Any]:
    event = {"lifecycleEvent": "CREATE", "triggerName": "/_/t", "authKey": "ignored", **params}
    return await feeds.handle(guest_identity(), feed, event)


BAD_CREATES = [
    ("alarm", {}, "alarms trigger feed is missing the cron parameter"),
    ("alarm", {"cron": 1893456000000}, "cron pattern '1893456000000' is not valid"),
    ("alarm", {"cron": "61 * * * *"}, "cron pattern '61 * * * *' is not valid"),
    ("alarm", {"cron": "* * * * * * *"}, "cron pattern '* * * * * * *' is not valid"),
    ("alarm", {"cron": "* * * * *", "timezone": "Mars/Olympus"}, "Invalid timezone."),
    (
        "alarm",
        {"cron": "*/5 * * * * *", "limitCronFields": True},
        "cron pattern is limited to 5 fields with 1 minute as the finest granularity",
    ),
    (
        "alarm",
        {"cron": "* * * * *", "startDate": T0 - 5000},
        f"startDate parameter '{T0 - 5000}' must be in the future",
    ),
    (
        "alarm",
        {"cron": "* * * * *", "startDate": T0 + 30_000, "stopDate": T0 + 30_000},
        f"stopDate parameter '{T0 + 30_000}' must be greater than the startDate parameter '{T0 + 30_000}'",
    ),
    (
        "alarm",
        {"cron": "0 0 1 1 *", "stopDate": T0 + MINUTE},
        "the first scheduled trigger fire is not until after the stop date",
    ),
    (
        "alarm",
        {"cron": "* * * * *", "maxTriggers": 3, "stopDate": T0 + MINUTE},
        "maxTriggers is not allowed when the stopDate parameter is specified",
    ),
    ("interval", {}, "interval trigger feed is missing the minutes parameter"),
    ("interval", {"minutes": "five"}, "the minutes parameter must be an integer"),
    ("interval", {"minutes": 1.5}, "the minutes parameter must be an integer"),
    ("interval", {"minutes": -5}, "the minutes parameter must be an integer greater than zero"),
    (
        "interval",
        {"minutes": 1, "stopDate": "2020-01-01T00:00:00Z"},
        "stopDate parameter '2020-01-01T00:00:00Z' must be in the future",
    ),
    ("once", {}, "alarms once trigger feed is missing the date parameter"),
    ("once", {"date": "tomorrow"}, "date parameter 'tomorrow' is not a valid Date"),
    ("once", {"date": T0 - 5000}, f"date parameter '{T0 - 5000}' must be in the future"),
    (
        "once",
        {"date": T0 + MINUTE, "deleteAfterFire": "always"},
        "deleteAfterFire parameter must be one of [false, true, rules].",
    ),
]


@pytest.mark.parametrize(("feed", "params", "message"), BAD_CREATES)
async def test_feed_refuses_bad_parameters_with_the_packages_message(
    feeds: AlarmFeeds, store: SqliteStore, feed: str, params: dict[str, Any], message: str
) -> None:
    with pytest.raises(FeedError) as refused:
        await create(feeds, feed, **params)
    assert refused.value.message == message
    assert await store.get_schedule("guest", "t") is None


async def test_feed_refuses_a_missing_trigger_another_namespace_and_unknown_events(feeds: AlarmFeeds) -> None:
    identity = guest_identity()
    cases = [
        ({"lifecycleEvent": "CREATE", "cron": "* * * * *"}, "no trigger name parameter was provided"),
        (
            {"lifecycleEvent": "CREATE", "triggerName": "/_/missing", "cron": "* * * * *"},
            "Trigger authentication request failed.",
        ),
        (
            {"lifecycleEvent": "CREATE", "triggerName": "/other/t", "cron": "* * * * *"},
            "Trigger authentication request failed.",
        ),
        ({"lifecycleEvent": "RESUME", "triggerName": "/_/t"}, "unsupported lifecycleEvent"),
        ({"lifecycleEvent": "READ", "triggerName": "/_/t"}, "could not find trigger /guest/t in the database"),
        ({"lifecycleEvent": "DELETE", "triggerName": "/_/gone"}, "could not find trigger /guest/gone in the database"),
    ]
    for params, message in cases:
        with pytest.raises(FeedError) as refused:
            await feeds.handle(identity, "alarm", params)
        assert refused.value.message == message, params


async def test_feed_read_answers_config_and_status_as_the_web_action(feeds: AlarmFeeds, clock: Clock) -> None:
    assert await create(feeds, "alarm", cron="0 9 * * *", timezone="Europe/Paris", trigger_payload="hi") == {
        "status": "success"
    }
    read = await feeds.handle(guest_identity(), "alarm", {"lifecycleEvent": "READ", "triggerName": "t"})
    assert read == {
        "config": {
            "name": "t",
            "namespace": "guest",
            "payload": {"payload": "hi"},
            "startDate": None,
            "stopDate": None,
            "cron": "0 9 * * *",
            "timezone": "Europe/Paris",
        },
        "status": {"active": True, "dateChanged": clock.now_ms, "dateChangedISO": "2030-01-07T12:00:00Z"},
    }


async def test_feed_update_changes_given_parameters_and_refuses_an_empty_update(
    feeds: AlarmFeeds, store: SqliteStore
) -> None:
    await create(feeds, "interval", minutes=5, startDate=T0 + MINUTE)
    update = {"lifecycleEvent": "UPDATE", "triggerName": "t"}
    with pytest.raises(FeedError, match="no updatable parameters were specified"):
        await feeds.handle(guest_identity(), "interval", {**update, "cron": "* * * * *"})  # not an interval's
    await feeds.handle(guest_identity(), "interval", {**update, "minutes": 2, "startDate": T0 + 2 * MINUTE})
    stored = await store.get_schedule("guest", "t")
    assert stored is not None and stored.minutes == 2 and stored.next_fire_ms == T0 + 2 * MINUTE


async def test_feed_pause_stops_firing_and_unpause_resumes_from_now(
    feeds: AlarmFeeds, store: SqliteStore, clock: Clock
) -> None:
    await create(feeds, "interval", minutes=1, startDate=T0 + MINUTE)
    await feeds.handle(guest_identity(), "interval", {"lifecycleEvent": "PAUSE", "triggerName": "t"})
    assert await store.due_schedules(T0 + 10 * MINUTE, 10) == []
    clock.now_ms = T0 + 3 * MINUTE + 1
    await feeds.handle(guest_identity(), "interval", {"lifecycleEvent": "UNPAUSE", "triggerName": "t"})
    [due] = await store.due_schedules(T0 + 10 * MINUTE, 10)
    assert due.next_fire_ms == T0 + 4 * MINUTE


async def test_feed_delete_drops_the_schedule(feeds: AlarmFeeds, store: SqliteStore) -> None:
    await create(feeds, "once", date=T0 + MINUTE)
    await store.delete_trigger("guest", "t")  # the CLI deletes the trigger after its feed: either order works
    assert await feeds.handle(guest_identity(), "once", {"lifecycleEvent": "DELETE", "triggerName": "t"}) == {
        "status": "success"
    }
    assert await store.get_schedule("guest", "t") is None


# the scheduler -------------------------------------------------------------------------------------------


class FakeTriggers:
    """Records fires; a trigger named in ``missing`` answers 404 as a deleted trigger does."""

    def __init__(self) -> None:
        self.fires: list[tuple[str, str, dict[str, Any]]] = []
        self.missing: set[str] = set()

    async def fire(
        self, identity: Identity, namespace: str, name: str, params: dict[str, Any], *, transid: TransactionId
    ) -> str | None:
        await asyncio.sleep(0)  # let a competing scheduler interleave
        if name in self.missing:
            raise NotFound()
        self.fires.append((namespace, name, params))
        return f"activation-{len(self.fires)}"


async def guest_owner(namespace: str) -> Identity | None:
    return guest_identity() if namespace == "guest" else None


def scheduler(store: SqliteStore, triggers: FakeTriggers, clock: Clock) -> AlarmScheduler:
    return AlarmScheduler(store, store, guest_owner, lambda: triggers, clock=clock)


async def test_two_schedulers_sharing_a_store_fire_each_tick_once(
    feeds: AlarmFeeds, store: SqliteStore, clock: Clock
) -> None:
    await create(feeds, "interval", minutes=1, startDate=T0 + MINUTE, trigger_payload={"n": 1})
    triggers = FakeTriggers()
    first, second = scheduler(store, triggers, clock), scheduler(store, triggers, clock)
    claimed: list[int] = []
    for minute in range(1, 6):
        clock.now_ms = T0 + minute * MINUTE
        results = await asyncio.gather(first.run_due(), second.run_due())
        claimed.extend(f.tick_ms for r in results for f in r)
    assert claimed == [T0 + m * MINUTE for m in range(1, 6)]
    assert triggers.fires == [("guest", "t", {"n": 1})] * 5


async def test_ticks_missed_while_nothing_ran_fire_once(feeds: AlarmFeeds, store: SqliteStore, clock: Clock) -> None:
    await create(feeds, "interval", minutes=1, startDate=T0 + MINUTE)
    triggers = FakeTriggers()
    clock.now_ms = T0 + 10 * MINUTE + 30_000  # ten ticks came and went
    [fired] = await scheduler(store, triggers, clock).run_due()
    assert fired.tick_ms == T0 + MINUTE and len(triggers.fires) == 1
    stored = await store.get_schedule("guest", "t")
    assert stored is not None and stored.next_fire_ms == T0 + 11 * MINUTE and stored.fired == 1
    assert await scheduler(store, triggers, clock).run_due() == []


async def test_once_fires_once_then_is_disabled_with_the_providers_reason(
    feeds: AlarmFeeds, store: SqliteStore, clock: Clock
) -> None:
    await create(feeds, "once", date=T0 + 5000)
    triggers = FakeTriggers()
    alarms = scheduler(store, triggers, clock)
    assert await alarms.run_due() == []  # not yet
    clock.now_ms = T0 + 5000
    assert [f.activation_id for f in await alarms.run_due()] == ["activation-1"]
    clock.now_ms = T0 + 10 * MINUTE
    assert await alarms.run_due() == []
    read = await feeds.handle(guest_identity(), "once", {"lifecycleEvent": "READ", "triggerName": "t"})
    assert read["status"]["active"] is False
    assert read["status"]["reason"] == {
        "kind": "AUTO",
        "statusCode": None,
        "message": "Automatically disabled after firing once",
    }


async def test_once_with_delete_after_fire_rules_deletes_the_trigger_and_its_rules(
    feeds: AlarmFeeds, store: SqliteStore, clock: Clock
) -> None:
    rule = Rule(
        namespace="guest",
        name="r",
        trigger=EntityRef(path="guest", name="t"),
        action=EntityRef(path="guest", name="a"),
    )
    await store.put_rule(rule, None)
    trigger = await store.get_trigger("guest", "t")
    assert trigger is not None
    rules = {"guest/r": ReducedRule(action=EntityRef(path="guest", name="a"), status="active")}
    await store.put_trigger(trigger.model_copy(update={"rules": rules}), trigger.rev)
    await create(feeds, "once", date=T0 + 5000, deleteAfterFire="rules")
    clock.now_ms = T0 + 5000
    triggers = FakeTriggers()
    assert len(await scheduler(store, triggers, clock).run_due()) == 1
    assert await store.get_trigger("guest", "t") is None
    assert await store.get_rule("guest", "r") is None
    assert await store.get_schedule("guest", "t") is None


async def test_a_deleted_trigger_disables_its_schedule(feeds: AlarmFeeds, store: SqliteStore, clock: Clock) -> None:
    await create(feeds, "alarm", cron="* * * * *")
    triggers = FakeTriggers()
    triggers.missing.add("t")
    clock.now_ms = T0 + MINUTE
    [fired] = await scheduler(store, triggers, clock).run_due()
    assert fired.activation_id is None
    stored = await store.get_schedule("guest", "t")
    assert stored is not None and stored.status.active is False
    assert stored.status.reason == {
        "kind": "AUTO",
        "statusCode": 404,
        "message": "Trigger automatically disabled: Received a 404 status code when firing the trigger",
    }
    clock.now_ms = T0 + 5 * MINUTE
    assert await scheduler(store, triggers, clock).run_due() == []


async def test_the_loop_fires_a_due_tick_without_waiting_a_whole_poll_period(
    feeds: AlarmFeeds, store: SqliteStore
) -> None:
    # Real time here: the loop sleeps until the tick, not to the next poll.
    now = int(datetime.now(UTC).timestamp() * 1000)
    await store.put_schedule(
        schedule(kind="once", date=now + 200, next_fire_ms=now + 200, status=ScheduleStatus(dateChanged=now)), None
    )
    triggers = FakeTriggers()
    alarms = AlarmScheduler(store, store, guest_owner, lambda: triggers, poll_s=5.0)
    await alarms.start()
    try:
        deadline = asyncio.get_running_loop().time() + 3
        while not triggers.fires:
            assert asyncio.get_running_loop().time() < deadline, "the once alarm never fired"
            await asyncio.sleep(0.01)
    finally:
        await alarms.close()
    fired_at = int(datetime.now(UTC).timestamp() * 1000)
    assert fired_at - (now + 200) < 1000


class CountingSchedules:
    """The store, counting the scheduler's polls (``due_schedules``)."""

    def __init__(self, store: SqliteStore) -> None:
        self.store = store
        self.polls = 0

    async def get_schedule(self, namespace: str, name: str) -> Schedule | None:
        return await self.store.get_schedule(namespace, name)

    async def put_schedule(self, schedule: Schedule, expected_rev: str | None) -> Schedule:
        return await self.store.put_schedule(schedule, expected_rev)

    async def delete_schedule(self, namespace: str, name: str) -> Schedule | None:
        return await self.store.delete_schedule(namespace, name)

    async def due_schedules(self, until_ms: int, limit: int) -> list[Schedule]:
        self.polls += 1
        return await self.store.due_schedules(until_ms, limit)


async def wait_for_fires(triggers: FakeTriggers, count: int, seconds: float) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while len(triggers.fires) < count:
        assert asyncio.get_running_loop().time() < deadline, f"{len(triggers.fires)} fires of {count}"
        await asyncio.sleep(0.01)


async def test_a_schedule_written_by_this_controllers_feed_fires_on_time_without_a_poll(store: SqliteStore) -> None:
    # Real time, a poll period far longer than the test: the feed's write wakes the loop, and each fire's claim
    # (which moved the next tick) wakes it again, so second after second fires with one poll per tick at most.
    counted = CountingSchedules(store)
    triggers = FakeTriggers()
    alarms = AlarmScheduler(counted, store, guest_owner, lambda: triggers, poll_s=60.0)
    await alarms.start()
    try:
        await asyncio.sleep(0.1)  # the first pass ran and found nothing
        feeds = AlarmFeeds(alarms.watching(counted), store, store)
        await create(feeds, "alarm", cron="* * * * * *")  # every second
        await wait_for_fires(triggers, 3, 5)
    finally:
        await alarms.close()
    assert counted.polls <= 12, counted.polls  # a pass per tick and per fire: not one per 0.5 s idle poll


async def test_an_idle_scheduler_polls_once_per_poll_period(store: SqliteStore) -> None:
    # Each poll is a view query of the store every activation record goes to (CouchDB): nothing due, none but
    # the first in the first 1.5 s (it polled every 0.5 s before).
    counted = CountingSchedules(store)
    alarms = AlarmScheduler(counted, store, guest_owner, lambda: FakeTriggers())
    await alarms.start()
    try:
        await asyncio.sleep(1.5)
    finally:
        await alarms.close()
    assert counted.polls == 1


async def test_a_schedule_written_elsewhere_is_seen_within_one_poll_period(store: SqliteStore) -> None:
    counted = CountingSchedules(store)
    triggers = FakeTriggers()
    alarms = AlarmScheduler(counted, store, guest_owner, lambda: triggers, poll_s=0.3)
    await alarms.start()
    try:
        await asyncio.sleep(0.1)
        now = int(datetime.now(UTC).timestamp() * 1000)
        due = schedule(kind="once", date=now, next_fire_ms=now, status=ScheduleStatus(dateChanged=now))
        await store.put_schedule(due, None)  # not through ``watching``: another controller's write
        await wait_for_fires(triggers, 1, 2)
    finally:
        await alarms.close()


# the feed actions through the API ------------------------------------------------------------------------

FEEDS = "/api/v1/namespaces/whisk.system/actions/alarms"


@pytest.fixture
async def whisk(tmp_path: Path) -> AsyncIterator[InProcessWhisk[SqliteStore, ScriptedExecutor]]:
    settings = Settings(data_dir=tmp_path)
    async with in_process_whisk(settings, SqliteStore(settings.store_path), ScriptedExecutor()) as running:
        yield running


async def test_feed_actions_are_seeded_as_feeds_users_cannot_create(
    whisk: InProcessWhisk[SqliteStore, ScriptedExecutor],
) -> None:
    for feed in ("alarm", "interval", "once"):
        response = await whisk.api.get(f"{FEEDS}/{feed}")
        assert response.status_code == 200, response.text
        annotations = {a["key"]: a["value"] for a in response.json()["annotations"]}
        assert annotations["feed"] is True
    package = (await whisk.api.get("/api/v1/namespaces/whisk.system/packages/alarms")).json()
    assert sorted(f["name"] for f in package["feeds"]) == ["alarm", "interval", "once"]
    response = await whisk.api.put(f"{ACTIONS}/fake", json={"exec": {"kind": "alarms:feed", "code": "x"}})
    assert response.status_code == 400, response.text


async def test_feed_invoke_records_success_and_the_packages_error_shape(
    whisk: InProcessWhisk[SqliteStore, ScriptedExecutor],
) -> None:
    assert (await whisk.api.put("/api/v1/namespaces/_/triggers/every", json={})).status_code == 200
    event = {"lifecycleEvent": "CREATE", "triggerName": "/_/every", "authKey": "k"}
    created = await whisk.api.post(f"{FEEDS}/interval?blocking=true", json={**event, "minutes": 5})
    assert created.status_code == 200, created.text
    record = created.json()
    assert record["response"]["result"] == {"status": "success"}
    assert record["name"] == "interval" and record["namespace"] == "guest"
    stored = await whisk.store.get_schedule("guest", "every")
    assert stored is not None and stored.kind == "interval" and stored.minutes == 5

    refused = await whisk.api.post(f"{FEEDS}/alarm?blocking=true", json={**event, "cron": "not a cron"})
    assert refused.status_code == 502, refused.text
    assert refused.json()["response"]["status"] == "application error"
    assert refused.json()["response"]["result"] == {"error": {"error": "cron pattern 'not a cron' is not valid"}}

    accepted = await whisk.api.post(f"{FEEDS}/interval", json={**event, "lifecycleEvent": "DELETE"})
    assert accepted.status_code == 202, accepted.text
    record = await whisk.record(accepted.json()["activationId"])
    assert record["response"]["result"] == {"status": "success"}
    assert await whisk.store.get_schedule("guest", "every") is None


async def test_feed_runs_through_a_binding_of_the_package_with_its_parameters(
    whisk: InProcessWhisk[SqliteStore, ScriptedExecutor],
) -> None:
    assert (await whisk.api.put("/api/v1/namespaces/_/triggers/bound", json={})).status_code == 200
    binding = {
        "binding": {"namespace": "whisk.system", "name": "alarms"},
        "parameters": [{"key": "trigger_payload", "value": {"from": "binding"}}],
    }
    assert (await whisk.api.put("/api/v1/namespaces/_/packages/myalarms", json=binding)).status_code == 200
    event = {"lifecycleEvent": "CREATE", "triggerName": "/guest/bound", "authKey": "k", "cron": "0 * * * *"}
    created = await whisk.api.post("/api/v1/namespaces/_/actions/myalarms/alarm?blocking=true", json=event)
    assert created.status_code == 200, created.text
    stored = await whisk.store.get_schedule("guest", "bound")
    assert stored is not None and stored.cron == "0 * * * *" and stored.payload == {"from": "binding"}
