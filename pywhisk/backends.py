"""The one place where settings choose the Bus and Store backends."""

from __future__ import annotations

from pywhisk.bus import Bus
from pywhisk.settings import Settings
from pywhisk.store import Store


def create_bus(settings: Settings, client_id: str) -> Bus:
    """The in-memory bus (one process) or Kafka."""
    if settings.bus == "memory":
        from pywhisk.bus.memory import MemoryBus

        return MemoryBus()
    from pywhisk.bus.kafka import KafkaBus

    return KafkaBus(settings.kafka_bootstrap_servers, client_id=client_id, topic_prefix=settings.kafka_topic_prefix)


def create_store(settings: Settings) -> Store:
    """SQLite in the data directory, or CouchDB."""
    if settings.store == "sqlite":
        from pywhisk.store.sqlite import SqliteStore

        return SqliteStore(settings.store_path, retention_days=settings.activation_retention_days)
    from pywhisk.store.couchdb import CouchStore

    return CouchStore(
        settings.couchdb_url,
        username=settings.couchdb_username,
        password=settings.couchdb_password,
        db_prefix=settings.couchdb_db_prefix,
        retention_days=settings.activation_retention_days,
    )
