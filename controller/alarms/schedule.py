"""When an alarm fires: pure functions of a schedule and the time, no I/O (the scheduler and the feeds share them).

The three feeds of openwhisk-package-alarms (provider/lib/cronAlarm.js, intervalAlarm.js, dateAlarm.js):

- ``alarm``: the ticks of a cron pattern (five fields, or six with seconds first as node-cron's ``CronJob``)
  in ``timezone`` (UTC by default), from ``startDate`` on, while ``maxTriggers`` allows (-1: no bound);
- ``interval``: every ``minutes`` from ``startDate``: ``startDate + k * minutes`` for k = 0, 1, ... (the
  provider fires at the start date, then on the interval);
- ``once``: at ``date``.

All three stop at ``stopDate`` (a tick after it never fires). ``next_fire_ms(schedule, at_ms)`` is the first
tick at or after ``at_ms`` (None when nothing is left); the scheduler, having fired tick T at time now, asks for
the first tick after ``max(now, T)``: the ticks missed while no controller ran collapse into the one just fired
(the issue's "fires once on recovery", where OpenWhisk's provider fires an interval once at start-up and loses
cron ticks).

Cron arithmetic is croniter's (DST gaps and repeats included), not a parser of our own.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from pywhisk.schedules import ALARM, INTERVAL, ONCE, Schedule

MINUTE_MS = 60_000
INVALID_TIMEZONE = "Invalid timezone."  # node-cron's message, which the package passes on


class InvalidCron(ValueError):
    """The pattern (or its timezone: the message says which) is not one node-cron accepts."""


def parse_date(value: object) -> int | None:
    """Epoch milliseconds of a date parameter as JavaScript's ``new Date(value)`` reads the ones users send: a
    number of milliseconds, or an ISO 8601 string (a naive one is UTC here; JS would take the server's zone).
    None when it is not a date."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return int(value)
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def zone(timezone: str | None) -> ZoneInfo:
    """The zone of ``timezone`` (UTC when not given); ``InvalidCron(INVALID_TIMEZONE)`` when unknown."""
    try:
        return ZoneInfo(timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidCron(INVALID_TIMEZONE) from exc


def check_cron(cron: object, timezone: str | None) -> str:
    """The pattern, checked as node-cron's ``CronJob`` constructor checks it (``InvalidCron`` when not valid)."""
    zone(timezone)
    pattern = str(cron).strip()
    fields = pattern.split()
    if len(fields) not in (5, 6) or not croniter.is_valid(pattern, second_at_beginning=len(fields) == 6):
        raise InvalidCron(f"cron pattern '{cron}' is not valid")
    return pattern


def has_seconds_granularity(cron: str) -> bool:
    """[OW] alarmWebAction.hasSecondsGranularity: six fields whose seconds field is not just ``0``."""
    fields = cron.strip().split()
    return len(fields) > 5 and fields[-6] != "0"


def next_cron_ms(cron: str, timezone: str | None, at_ms: int) -> int:
    """The first tick of ``cron`` in ``timezone`` at or after ``at_ms``."""
    fields = cron.split()
    # croniter answers the tick strictly after its start: start a millisecond before.
    start = datetime.fromtimestamp((at_ms - 1) / 1000, tz=zone(timezone))
    tick = croniter(cron, start, second_at_beginning=len(fields) == 6).get_next(datetime)
    return int(tick.timestamp() * 1000)


def next_fire_ms(schedule: Schedule, at_ms: int) -> int | None:
    """The first tick of ``schedule`` at or after ``at_ms``, or None when it has none left (stopped, fired
    ``maxTriggers`` times, or a ``once`` that fired)."""
    start_ms = parse_date(schedule.startDate)
    stop_ms = parse_date(schedule.stopDate)
    tick: int | None
    if schedule.kind == ONCE:
        date_ms = parse_date(schedule.date)
        tick = date_ms if schedule.fired == 0 and date_ms is not None and date_ms >= at_ms else None
    elif schedule.kind == INTERVAL:
        tick = _next_interval_ms(
            start_ms if start_ms is not None else at_ms, (schedule.minutes or 1) * MINUTE_MS, at_ms
        )
    elif schedule.kind == ALARM and schedule.cron is not None:
        if schedule.maxTriggers != -1 and schedule.fired >= schedule.maxTriggers:
            return None
        tick = next_cron_ms(schedule.cron, schedule.timezone, max(at_ms, start_ms or at_ms))
    else:
        tick = None
    if tick is not None and stop_ms is not None and tick > stop_ms:
        return None
    return tick


def finished_reason(schedule: Schedule) -> str:
    """Why a schedule with no tick left was disabled, in the provider's words ([OW] utils.js handleFiredTrigger)."""
    if schedule.kind == ONCE:
        return "Automatically disabled after firing once"
    if schedule.stopDate is not None:
        kind = "interval" if schedule.kind == INTERVAL else "cron"
        return f"Automatically disabled after firing last scheduled {kind} trigger"
    return "Automatically disabled after reaching max triggers"


def _next_interval_ms(start_ms: int, interval_ms: int, at_ms: int) -> int:
    if at_ms <= start_ms:
        return start_ms
    intervals = -((start_ms - at_ms) // interval_ms)  # ceil((at - start) / interval)
    return start_ms + intervals * interval_ms
