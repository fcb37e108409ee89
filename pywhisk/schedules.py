"""Alarm schedules: what the ``whisk.system/alarms`` feeds store for a trigger, and the scheduler fires.

One schedule per trigger (``namespace``/``name``), the shape of openwhisk-package-alarms' trigger document
(action/alarmWebAction.js ``newTrigger``) with the owner's subject in place of its API key, and the state the
scheduler keeps: ``next_fire_ms`` (None when nothing is left to fire) and ``fired``. Dates are kept as the user
gave them (epoch milliseconds or an ISO 8601 string), as the feed's READ answers them.

``rev`` is the optimistic-concurrency token of ``ScheduleStore.put_schedule``: firing a tick is claiming it by
writing the schedule with ``next_fire_ms`` moved past it under the revision read, so two controllers can
never both win one tick (``controller/alarms/scheduler.py``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

AlarmKind = Literal["alarm", "interval", "once"]
ALARM: AlarmKind = "alarm"
INTERVAL: AlarmKind = "interval"
ONCE: AlarmKind = "once"


class ScheduleStatus(BaseModel):
    """[OW] the trigger document's ``status``: active, when it last changed, and why it was disabled."""

    active: bool = True
    dateChanged: int
    reason: dict[str, Any] | None = None


class Schedule(BaseModel):
    """The alarm of one trigger."""

    namespace: str
    name: str
    subject: str
    kind: AlarmKind
    payload: dict[str, Any] = Field(default_factory=dict)
    cron: str | None = None
    timezone: str | None = None
    minutes: int | None = None
    date: str | int | None = None
    deleteAfterFire: str | None = None
    startDate: str | int | None = None
    stopDate: str | int | None = None
    maxTriggers: int = -1
    status: ScheduleStatus
    next_fire_ms: int | None = None
    fired: int = 0
    rev: str | None = Field(default=None, exclude=True)

    @property
    def due(self) -> bool:
        """Whether the scheduler has something to fire (the ``due`` query's condition)."""
        return self.status.active and self.next_fire_ms is not None

    @property
    def trigger_name(self) -> str:
        return f"/{self.namespace}/{self.name}"
