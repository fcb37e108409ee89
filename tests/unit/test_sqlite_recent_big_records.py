"""A big record just stored is kept for its first read (pywhisk/store/sqlite.py ``_RECENT_BIG_KEPT``): in standalone
the controller reads a blocking invoke's ~7 MB record right after the invoker stored it (the completion does not
carry it), and reading it back and parsing it cost 65-100 ms of CPU, much of it holding the GIL (issue 12)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from pywhisk.activation import Activation
from pywhisk.store import sqlite as sqlite_store
from pywhisk.store.sqlite import SqliteStore
from tests.store_contract import make_activation, record_id

pytestmark = pytest.mark.unit


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(tmp_path / "store.sqlite3")
    await store.start()
    yield store
    await store.close()


def big_record(n: int, namespace: str = "mallory") -> Activation:
    record = make_activation(record_id(n), start=n, namespace=namespace, name="logs")
    record.logs = [f"{i:08d} " + "x" * 100 for i in range(1024 * 1024 // 110)]  # 1 MiB: written in parts
    return record


async def test_the_first_read_of_a_big_record_just_stored_is_the_record_itself(store: SqliteStore) -> None:
    big = big_record(1)
    await store.put_activation(big)

    first = await store.get_activation("mallory", big.activationId)
    second = await store.get_activation("mallory", big.activationId)

    assert first is big, "not read back and parsed again"
    assert second is not big and second == big, "kept for one read only: no two readers share an object"
    assert first is not None and orjson.dumps(first.to_api()) == orjson.dumps(big.to_api())


async def test_a_kept_record_is_not_given_to_another_namespace(store: SqliteStore) -> None:
    big = big_record(1)
    await store.put_activation(big)

    assert await store.get_activation("bob", big.activationId) is None
    assert await store.get_activation("mallory", big.activationId) is big


async def test_kept_records_are_bounded_by_count(store: SqliteStore) -> None:
    records = [big_record(n) for n in range(sqlite_store._RECENT_BIG_KEPT + 1)]
    for record in records:
        await store.put_activation(record)

    oldest = await store.get_activation("mallory", records[0].activationId)
    assert oldest is not records[0] and oldest == records[0], "forgotten: read from its parts"
    assert await store.get_activation("mallory", records[-1].activationId) is records[-1]


async def test_kept_records_expire(store: SqliteStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_store, "_RECENT_BIG_S", 0.0)
    big = big_record(1)
    await store.put_activation(big)

    again = await store.get_activation("mallory", big.activationId)
    assert again is not big and again == big


async def test_a_small_record_is_not_kept(store: SqliteStore) -> None:
    small = make_activation(record_id(1), start=1, namespace="mallory", name="hello")
    await store.put_activation(small)

    again = await store.get_activation("mallory", small.activationId)
    assert again is not small and again == small
