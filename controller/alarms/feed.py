"""The feed actions of ``/whisk.system/alarms``: ``alarm``, ``interval`` and ``once``, run by the controller.

OpenWhisk's alarms package is a Node.js feed action (action/alarm.js) that forwards each lifecycle event to a web
action (action/alarmWebAction.js) writing the provider's CouchDB. Here the controller runs the feed itself, like
a sequence, and writes the schedule to the ``ScheduleStore``; parameters, validation and messages are the web
action's, event for event:

    CREATE   validate, store the schedule (active, next fire computed)     → {"status": "success"}
    READ     the schedule's ``config`` and ``status``                       → {"config": ..., "status": ...}
    UPDATE   change the given parameters, reactivate                      → {"status": "success"}
    DELETE   drop the schedule                                            → {"status": "success"}
    PAUSE    stop firing (OpenWhisk's feed protocol; the package has none) → {"status": "success"}
    UNPAUSE  fire again from the next tick after now                      → {"status": "success"}

A refused event is an application error whose result is what the package's feed answers,
``{"error": {"error": message}}`` (the web action's error body, wrapped by the Node.js runtime), so
``wsk trigger create --feed`` prints the message and deletes the trigger again.

``authKey`` is not checked against the trigger as the package does (we keep only key hashes): the invoking
identity is, and must own the trigger's namespace (OpenWhisk's check answers the same for a key of another
namespace). Fires run as the namespace's owner (``Authenticator.owner_of``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

from controller.activator import Activated, merged_params
from controller.alarms.schedule import (
    InvalidCron,
    check_cron,
    has_seconds_granularity,
    next_cron_ms,
    next_fire_ms,
    parse_date,
)
from pywhisk.activation import Activation, ActivationResponse, StatusCode, new_activation_id
from pywhisk.entities import DEFAULT_NAMESPACE, Action, KeyValue
from pywhisk.errors import ConcurrentModification, Conflict, StoreUnavailable
from pywhisk.identity import Identity
from pywhisk.messages import TransactionId
from pywhisk.schedules import ALARM, INTERVAL, ONCE, AlarmKind, Schedule, ScheduleStatus
from pywhisk.store import ActivationStore, EntityStore, ScheduleStore

log = logging.getLogger("pywhisk.controller.alarms")

FEED_KIND = "alarms:feed"
FEEDS: dict[str, AlarmKind] = {"alarm": ALARM, "interval": INTERVAL, "once": ONCE}
LIFECYCLE_EVENTS = ("CREATE", "READ", "UPDATE", "DELETE", "PAUSE", "UNPAUSE")
DELETE_AFTER_FIRE = ("false", "true", "rules")
# [OW] alarmWebAction.js: an interval without a start date starts 30 s after its creation.
DEFAULT_INTERVAL_START_MS = 30_000

NO_TRIGGER_NAME = "no trigger name parameter was provided"
UNSUPPORTED_EVENT = "unsupported lifecycleEvent"
AUTH_FAILED = "Trigger authentication request failed."
NOTHING_TO_UPDATE = "no updatable parameters were specified"
MINUTES_NOT_INTEGER = "the minutes parameter must be an integer"
MINUTES_NOT_POSITIVE = "the minutes parameter must be an integer greater than zero"
BAD_DELETE_AFTER_FIRE = "deleteAfterFire parameter must be one of [false, true, rules]."
CRON_SECONDS = "cron pattern is limited to 5 fields with 1 minute as the finest granularity"


class FeedError(Exception):
    """An event the feed refuses, with the package's message."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def not_in_database(namespace: str, name: str) -> str:
    return f"could not find trigger /{namespace}/{name} in the database"


class AlarmFeeds:
    """Runs the alarms feed actions: ``invoke`` handles one lifecycle event and writes its activation record."""

    def __init__(
        self,
        schedules: ScheduleStore,
        entities: EntityStore,
        records: ActivationStore,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._schedules = schedules
        self._entities = entities
        self._records = records
        self._clock = clock

    async def invoke(
        self,
        identity: Identity,
        action: Action,
        params: dict[str, Any] | list[Any] | None,
        *,
        transid: TransactionId,
        blocking: bool,
        activation_id: str | None = None,
        cause: str | None = None,
    ) -> Activated:
        """Handle the event in ``params`` for ``identity`` and record it; the record (written before this
        returns, whether the caller blocks or not) is returned to a blocking caller."""
        merged = merged_params(action, params)
        start_ms = self._now_ms()
        try:
            result = await self.handle(identity, action.name, merged if isinstance(merged, dict) else {})
            response = ActivationResponse.of(StatusCode.SUCCESS, result)
        except FeedError as exc:
            response = ActivationResponse.error(StatusCode.APPLICATION_ERROR, {"error": exc.message})
        except StoreUnavailable as exc:
            log.warning("alarms feed %s failed: %s", action.name, exc)
            response = ActivationResponse.error(StatusCode.WHISK_ERROR, "The alarms store is unavailable.")
        end_ms = self._now_ms()
        record = Activation(
            activationId=activation_id or new_activation_id(),
            namespace=identity.namespace.name,
            name=action.name,
            subject=identity.subject,
            version=action.version,
            start=start_ms,
            end=end_ms,
            duration=end_ms - start_ms,
            cause=cause,
            response=response,
            annotations=[
                KeyValue(key="path", value=action.path),
                KeyValue(key="kind", value=FEED_KIND),
                KeyValue(key="waitTime", value=max(0, round(start_ms - transid.start_ms))),
            ],
        )
        try:
            await self._records.put_activation(record)
        except StoreUnavailable as exc:
            log.error("storing the record of feed activation %s failed: %s", record.activationId, exc)
        return Activated(record.activationId, record if blocking else None)

    async def handle(self, identity: Identity, feed: str, params: dict[str, Any]) -> dict[str, Any]:
        """The feed's answer to one lifecycle event; ``FeedError`` with the package's message when refused."""
        kind = FEEDS.get(feed)
        if kind is None:
            raise FeedError(UNSUPPORTED_EVENT)
        trigger_name = params.get("triggerName")
        if not trigger_name or not isinstance(trigger_name, str):
            raise FeedError(NO_TRIGGER_NAME)
        event = str(params.get("lifecycleEvent", "")).upper()
        if event not in LIFECYCLE_EVENTS:
            raise FeedError(UNSUPPORTED_EVENT)
        namespace, name = _parse_trigger_name(trigger_name, identity.namespace.name)
        # [OW] common.verifyTriggerAuth: the trigger must be readable with the caller's key (a delete may find
        # it gone already).
        if namespace != identity.namespace.name:
            raise FeedError(AUTH_FAILED)
        if event != "DELETE" and await self._entities.get_trigger(namespace, name) is None:
            raise FeedError(AUTH_FAILED)
        if event == "CREATE":
            await self._create(identity, kind, namespace, name, params)
            return {"status": "success"}
        stored = await self._schedules.get_schedule(namespace, name)
        if stored is None:
            raise FeedError(not_in_database(namespace, name))
        if event == "READ":
            return _read(stored)
        if event == "DELETE":
            await self._schedules.delete_schedule(namespace, name)
        elif event == "UPDATE":
            await self._replace(stored, self._updated(stored, params))
        else:
            await self._replace(stored, self._paused(stored, paused=event == "PAUSE"))
        return {"status": "success"}

    # events ------------------------------------------------------------------------------------------

    async def _create(
        self, identity: Identity, kind: AlarmKind, namespace: str, name: str, params: dict[str, Any]
    ) -> None:
        now = self._now_ms()
        schedule = Schedule(
            namespace=namespace,
            name=name,
            subject=identity.subject,
            kind=kind,
            payload=_payload(params.get("trigger_payload")) or {},
            status=ScheduleStatus(active=True, dateChanged=now),
        )
        fields: dict[str, Any] = {}
        if kind == ONCE:
            if not params.get("date"):
                raise FeedError("alarms once trigger feed is missing the date parameter")
            fields["date"] = self._check_date(params["date"], "date")
            if params.get("deleteAfterFire"):
                fields["deleteAfterFire"] = _delete_after_fire(params["deleteAfterFire"])
        else:
            first_cron_ms: int | None = None
            if kind == INTERVAL:
                fields["minutes"] = _minutes(
                    params.get("minutes"), missing="interval trigger feed is missing the minutes parameter"
                )
            else:
                if not params.get("cron"):
                    raise FeedError("alarms trigger feed is missing the cron parameter")
                timezone = params.get("timezone")
                fields["cron"] = _cron(params["cron"], timezone, params.get("limitCronFields"))
                fields["timezone"] = timezone
                first_cron_ms = next_cron_ms(fields["cron"], timezone, now)
            if params.get("startDate"):
                fields["startDate"] = self._check_date(params["startDate"], "startDate")
            elif kind == INTERVAL:
                fields["startDate"] = now + DEFAULT_INTERVAL_START_MS
            max_triggers = params.get("maxTriggers")
            if max_triggers and params.get("stopDate"):
                if kind == INTERVAL:
                    raise FeedError("maxTriggers is not supported for the interval trigger feed")
                raise FeedError("maxTriggers is not allowed when the stopDate parameter is specified")
            if params.get("stopDate"):
                fields["stopDate"] = self._check_date(params["stopDate"], "stopDate", fields.get("startDate"))
                stop_ms = parse_date(params["stopDate"])
                if first_cron_ms is not None and stop_ms is not None and first_cron_ms > stop_ms:
                    raise FeedError("the first scheduled trigger fire is not until after the stop date")
            if isinstance(max_triggers, int) and not isinstance(max_triggers, bool) and max_triggers > 0:
                fields["maxTriggers"] = max_triggers
        schedule = schedule.model_copy(update=fields)
        schedule.next_fire_ms = next_fire_ms(schedule, now)
        # A schedule left by an earlier trigger of this name (deleted without its feed's DELETE) is replaced:
        # the trigger being created now is the one it belongs to.
        for _ in range(3):
            existing = await self._schedules.get_schedule(namespace, name)
            try:
                await self._schedules.put_schedule(schedule, existing.rev if existing else None)
                return
            except (Conflict, ConcurrentModification):
                continue
        raise FeedError("error creating alarm trigger.")

    def _updated(self, stored: Schedule, params: dict[str, Any]) -> Schedule:
        # [OW] alarmWebAction.js, the ``put`` branch: only the parameters of the schedule's own kind count.
        fields: dict[str, Any] = {}
        if params.get("trigger_payload"):
            fields["payload"] = _payload(params["trigger_payload"])
        if stored.kind == ONCE:
            if params.get("date"):
                fields["date"] = self._check_date(params["date"], "date")
            if params.get("deleteAfterFire"):
                fields["deleteAfterFire"] = _delete_after_fire(params["deleteAfterFire"])
        else:
            if stored.kind == INTERVAL:
                if params.get("minutes"):
                    fields["minutes"] = _minutes(params["minutes"], missing=MINUTES_NOT_INTEGER)
            elif params.get("cron") or params.get("timezone"):
                cron = params.get("cron") or stored.cron
                timezone = params.get("timezone") or stored.timezone
                checked = _cron(cron, timezone, params.get("limitCronFields") if params.get("cron") else None)
                if params.get("cron"):
                    fields["cron"] = checked
                if params.get("timezone"):
                    fields["timezone"] = timezone
            if params.get("startDate"):
                fields["startDate"] = self._check_date(params["startDate"], "startDate")
            if params.get("stopDate"):
                start = params.get("startDate") or stored.startDate
                fields["stopDate"] = self._check_date(params["stopDate"], "stopDate", start)
            elif params.get("startDate") and stored.stopDate is not None:
                start_ms, stop_ms = parse_date(params["startDate"]), parse_date(stored.stopDate)
                if start_ms is not None and stop_ms is not None and start_ms >= stop_ms:
                    raise FeedError(
                        f"startDate parameter '{params['startDate']}' must be less than the stopDate parameter "
                        f"'{stored.stopDate}'"
                    )
        if not fields:
            raise FeedError(NOTHING_TO_UPDATE)
        now = self._now_ms()
        updated = stored.model_copy(update={**fields, "status": ScheduleStatus(active=True, dateChanged=now)})
        updated.next_fire_ms = next_fire_ms(updated, now)
        return updated

    def _paused(self, stored: Schedule, *, paused: bool) -> Schedule:
        now = self._now_ms()
        if paused:
            reason = {"kind": "USER", "statusCode": None, "message": "Paused by its feed's PAUSE event"}
            return stored.model_copy(update={"status": ScheduleStatus(active=False, dateChanged=now, reason=reason)})
        # Ticks that passed while paused are not fired: the next one after now is.
        resumed = stored.model_copy(update={"status": ScheduleStatus(active=True, dateChanged=now)})
        resumed.next_fire_ms = next_fire_ms(resumed, now)
        return resumed

    async def _replace(self, stored: Schedule, changed: Schedule) -> None:
        try:
            await self._schedules.put_schedule(changed, stored.rev)
        except ConcurrentModification:
            # A scheduler claimed a tick between our read and write: apply the change over what it wrote.
            current = await self._schedules.get_schedule(stored.namespace, stored.name)
            if current is None:
                raise FeedError(not_in_database(stored.namespace, stored.name)) from None
            keep = {"fired": current.fired}
            await self._schedules.put_schedule(changed.model_copy(update=keep), current.rev)

    # helpers -----------------------------------------------------------------------------------------

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _check_date(self, value: Any, param: str, start: Any = None) -> str | int:
        """[OW] alarmWebAction.validateDate, its messages with the value as the user wrote it."""
        when = parse_date(value)
        shown = _js_text(value)
        if when is None:
            raise FeedError(f"{param} parameter '{shown}' is not a valid Date")
        if self._now_ms() >= when:
            raise FeedError(f"{param} parameter '{shown}' must be in the future")
        start_ms = parse_date(start) if start is not None else None
        if start_ms is not None and when <= start_ms:
            raise FeedError(
                f"{param} parameter '{shown}' must be greater than the startDate parameter '{_js_text(start)}'"
            )
        return value if isinstance(value, str) else int(value)


def _parse_trigger_name(trigger_name: str, default_namespace: str) -> tuple[str, str]:
    # [OW] common.parseQName: "/ns/name" or a bare name in the default namespace "_".
    if trigger_name.startswith("/"):
        parts = trigger_name.split("/")
        namespace, name = parts[1], "/".join(parts[2:])
    else:
        namespace, name = DEFAULT_NAMESPACE, trigger_name
    return (default_namespace if namespace == DEFAULT_NAMESPACE else namespace), name


def _payload(value: Any) -> dict[str, Any] | None:
    # [OW] common.constructObject / the web action: a string payload becomes {"payload": ...}.
    if isinstance(value, str):
        return {"payload": value}
    if isinstance(value, dict):
        return value
    return None


def _minutes(value: Any, *, missing: str) -> int:
    if not value:
        raise FeedError(missing)
    # [OW] ``+params.minutes !== parseInt(params.minutes)``: a whole number, as a number or numeric text.
    try:
        number = float("nan") if isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if math.isnan(number) or not number.is_integer():
        raise FeedError(MINUTES_NOT_INTEGER)
    if number <= 0:
        raise FeedError(MINUTES_NOT_POSITIVE)
    return int(number)


def _cron(cron: Any, timezone: Any, limit_cron_fields: Any) -> str:
    try:
        pattern = check_cron(cron, timezone if isinstance(timezone, str) else None)
    except InvalidCron as exc:
        raise FeedError(str(exc)) from None
    if limit_cron_fields and has_seconds_granularity(pattern):
        raise FeedError(CRON_SECONDS)
    return pattern


def _delete_after_fire(value: Any) -> str:
    text = _js_text(value).strip().lower()
    if text not in DELETE_AFTER_FIRE:
        raise FeedError(BAD_DELETE_AFTER_FIRE)
    return text


def _js_text(value: Any) -> str:
    # JavaScript's ``'' + value`` for the JSON values users send.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _read(schedule: Schedule) -> dict[str, Any]:
    """[OW] alarmWebAction.js, the ``get`` branch: the trigger's ``config`` and ``status``."""
    config: dict[str, Any] = {"name": schedule.name, "namespace": schedule.namespace, "payload": schedule.payload}
    if schedule.kind == ONCE:
        config["date"] = schedule.date
        config["deleteAfterFire"] = schedule.deleteAfterFire
    else:
        config["startDate"] = schedule.startDate
        config["stopDate"] = schedule.stopDate
        if schedule.kind == INTERVAL:
            config["minutes"] = schedule.minutes
        else:
            config["cron"] = schedule.cron
            config["timezone"] = schedule.timezone
    changed = schedule.status.dateChanged
    status: dict[str, Any] = {
        "active": schedule.status.active,
        "dateChanged": changed,
        "dateChangedISO": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(changed / 1000)),
    }
    if schedule.status.reason is not None:
        status["reason"] = schedule.status.reason
    return {"config": config, "status": status}
