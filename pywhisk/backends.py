"""The one place where settings choose the Bus and Store backends."""

from __future__ import annotations

from collections.abc import Callable

from pywhisk.bus import Bus
from pywhisk.messages import CACHE_INVALIDATION_TOPIC, HEALTH_TOPIC, completed_topic, invoker_topic
from pywhisk.settings import Settings
from pywhisk.store import Store


def create_bus(settings: Settings, client_id: str) -> Bus:
    """The in-memory bus (one process), the SQLite-journalled one (one process, durable) or Kafka."""
    if settings.bus == "memory":
        from pywhisk.bus.memory import MemoryBus

        return MemoryBus()
    if settings.bus == "sqlite":
        from pywhisk.bus.sqlite import SqliteBus

        return SqliteBus(
            settings.bus_journal_path,
            journalled=_is_activation_topic,
            max_bytes=settings.bus_journal_max_bytes,
            fsync=settings.bus_journal_fsync,
            # Standalone workers share the journal; worker K's invoker is invokerK, so an orphan's activations
            # go to the adopting worker's own invoker topic.
            worker=settings.worker_id,
            workers=settings.workers,
            adopt_topic=lambda topic: invoker_topic(settings.invoker_id) if topic.startswith("invoker") else topic,
        )
    from pywhisk.bus.kafka import KafkaBus

    return KafkaBus(
        settings.kafka_bootstrap_servers,
        client_id=client_id,
        topic_prefix=settings.kafka_topic_prefix,
        linger_ms=settings.kafka_linger_ms,
        max_batch_bytes=settings.kafka_max_batch_bytes,
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
    )


def create_store(
    settings: Settings, *, on_flush: Callable[[int, float], None] | None = None, invoker: bool = False
) -> Store:
    """SQLite in the data directory, or CouchDB; ``on_flush`` observes each group commit of activation records.

    An ``invoker``'s CouchDB records linger ``couchdb_record_linger_ms`` (30 ms by default) for company before each
    ``_bulk_docs``: the invokers write nearly every record, and only the completion and readers of the record wait
    on it (a blocking caller has its result ahead of the record over Kafka). A controller's records (sequences,
    lost activations) are awaited by its callers, so they are written at once.
    """
    if settings.store == "sqlite":
        from pywhisk.store.sqlite import SqliteStore

        return SqliteStore(settings.store_path, retention_days=settings.activation_retention_days, on_flush=on_flush)
    from pywhisk.store.couchdb import CouchStore

    return CouchStore(
        settings.couchdb_url,
        username=settings.couchdb_username,
        password=settings.couchdb_password,
        db_prefix=settings.couchdb_db_prefix,
        retention_days=settings.activation_retention_days,
        on_flush=on_flush,
        record_linger_s=settings.couchdb_record_linger_ms / 1000 if invoker else 0.0,
    )


def _is_activation_topic(topic: str) -> bool:
    """Activations (``invoker{N}``) are journalled; completions, health pings and cache invalidations are not:
    they mean nothing to the process after a crash (its blocking callers are gone, invokers ping again, and
    its caches start empty)."""
    return topic not in (HEALTH_TOPIC, CACHE_INVALIDATION_TOPIC) and not topic.startswith(completed_topic(""))
