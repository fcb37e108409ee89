"""The alarms service: the ``/whisk.system/alarms`` feeds (``feed``), when alarms fire (``schedule``) and the
scheduler that fires them in every controller (``scheduler``). See docs/events.md, "Alarms"."""

from controller.alarms.feed import FEED_KIND, AlarmFeeds
from controller.alarms.scheduler import AlarmScheduler, Fired

__all__ = ["FEED_KIND", "AlarmFeeds", "AlarmScheduler", "Fired"]
