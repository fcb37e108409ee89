"""The SQLite store under another namespace's big records and lists (issue 12, the records class): a big record is
written a part per transaction from a queue of its own, checkpoints run on a thread of their own, and a list of
activations is answered from the stored summaries without validating each one again."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest

from launcher.compose import build_controller
from pywhisk.activation import Activation, ActivationSummary
from pywhisk.bus.memory import MemoryBus
from pywhisk.entities import KeyValue
from pywhisk.identity import GUEST_KEY, GUEST_UUID
from pywhisk.settings import Settings
from pywhisk.store import ActivationQuery
from pywhisk.store.sqlite import PART_BYTES, SqliteStore, summary_to_api
from tests.store_contract import make_activation, record_id

pytestmark = pytest.mark.unit
GUEST = (GUEST_UUID, GUEST_KEY)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(tmp_path / "store.sqlite3")
    await store.start()
    yield store
    await store.close()


def big_record(n: int, mib: int = 7) -> Activation:
    record = make_activation(record_id(n), start=n, namespace="mallory", name="logs")
    record.logs = [f"{i:08d} " + "x" * 100 for i in range(mib * 1024 * 1024 // 110)]
    return record


def rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


async def test_a_big_record_is_stored_in_parts_and_reads_back_whole(store: SqliteStore, tmp_path: Path) -> None:
    big = big_record(1)
    await store.put_activation(big)
    path = tmp_path / "store.sqlite3"
    assert rows(path, f"SELECT length(doc) FROM activations WHERE id = '{big.activationId}'") == [(0,)]
    [(parts, largest)] = rows(path, "SELECT count(*), max(length(data)) FROM activation_parts")
    assert isinstance(parts, int) and parts > 7 * 1024 * 1024 // PART_BYTES and largest == PART_BYTES

    assert await store.get_activation("mallory", big.activationId) == big  # the record kept for its first read
    assert await store.get_activation("mallory", big.activationId) == big  # then from its parts
    assert await store.list_activations(ActivationQuery(namespace="mallory")) == [big]
    [summary] = await store.list_activation_summaries(ActivationQuery(namespace="mallory"))
    assert summary.activationId == big.activationId


async def test_a_redelivered_big_record_is_stored_once(store: SqliteStore) -> None:
    big = big_record(1, mib=1)
    await store.put_activation(big)
    await store.put_activation(big)
    assert await store.count_activations(ActivationQuery(namespace="mallory")) == 1
    assert await store.get_activation("mallory", big.activationId) == big


async def test_parts_left_by_a_crash_are_written_over_and_purged_with_old_records(
    store: SqliteStore, tmp_path: Path
) -> None:
    big = big_record(5, mib=1)
    path = tmp_path / "store.sqlite3"
    conn = sqlite3.connect(path)  # a crash after the first part: a part without its record
    conn.execute("INSERT INTO activation_parts VALUES (?, 0, 5, x'00')", (big.activationId,))
    conn.commit()
    conn.close()
    assert await store.get_activation("mallory", big.activationId) is None

    await store.put_activation(big)  # redelivered
    assert await store.get_activation("mallory", big.activationId) == big
    await store.put_activation(make_activation(record_id(100), start=100))
    assert await store.purge_activations_older_than(10) == 1
    assert rows(path, "SELECT count(*) FROM activation_parts") == [(0,)]
    assert await store.count_activations(ActivationQuery(namespace="guest")) == 1


async def test_a_small_record_does_not_wait_for_a_big_one_queued_before_it(store: SqliteStore) -> None:
    done: list[str] = []

    async def put(record: Activation, label: str) -> None:
        await store.put_activation(record)
        done.append(label)

    big = asyncio.create_task(put(big_record(1), "big"))
    await asyncio.sleep(0)  # the big record is queued and its write has begun
    await put(make_activation(record_id(2), start=2), "small")
    assert done == ["small"]  # in one queue (or one batch) with the big record, it would have waited for all of it
    await big
    assert done == ["small", "big"]


async def test_checkpoints_run_apart_from_the_writer(store: SqliteStore, tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"
    [(autocheckpoint,)] = await store._on(
        store._writer,
        lambda: store._write_conn.execute("PRAGMA wal_autocheckpoint").fetchall(),  # type: ignore[union-attr]
    )
    assert autocheckpoint == 0  # writes never checkpoint themselves
    await store.put_activation(big_record(1))
    checkpoint = store._checkpointer.checkpoint
    assert checkpoint is not None
    await checkpoint
    # The database file holds (part of) the record before any connection closes: the checkpoint thread copied
    # the WAL in (without it, the file stays at its schema's few pages until the last connection closes).
    assert path.stat().st_size > 2 * 1024 * 1024


# lists ---------------------------------------------------------------------------------------------


def summary_cases() -> list[Activation]:
    plain = make_activation(record_id(1), start=1)
    caused = make_activation(record_id(2), start=2)
    caused.cause = record_id(9)
    caused.annotations = [KeyValue(key="path", value="guest/seq"), KeyValue(key="x", value=None, init=True)]
    running = make_activation(record_id(3), start=3)  # no end yet: no end, duration nor statusCode in the row
    running.end, running.duration = 0, 0
    published = make_activation(record_id(4), start=4, name="other")
    published.publish, published.version = True, "1.2.3"
    published.annotations = [
        KeyValue(key="limits", value={"timeout": 3000, "memory": 128}),
        KeyValue(key="e", value=[]),
    ]
    return [plain, caused, running, published]


async def test_listed_rows_are_what_the_validated_summaries_give(store: SqliteStore) -> None:
    for record in summary_cases():
        await store.put_activation(record)
    query = ActivationQuery(namespace="guest")
    validated = [summary.to_api() for summary in await store.list_activation_summaries(query)]
    assert await store.list_activation_summaries_api(query) == validated
    assert [orjson.dumps(row) for row in await store.list_activation_summaries_api(query)] == [
        orjson.dumps(row) for row in validated
    ]  # key for key, in the same order


def test_a_summary_row_missing_its_defaults_reads_as_the_model_reads_it() -> None:
    stored = {"activationId": record_id(1), "namespace": "guest", "name": "hello", "start": 5}
    assert summary_to_api(stored) == ActivationSummary.model_validate(stored).to_api()


async def test_the_list_route_answers_from_the_stored_summaries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(data_dir=tmp_path)
    store = SqliteStore(settings.store_path)
    app = build_controller(settings, store=store, bus=MemoryBus())
    async with app.router.lifespan_context(app):
        for record in summary_cases():
            await store.put_activation(record)
        expected = [s.to_api() for s in await store.list_activation_summaries(ActivationQuery(namespace="guest"))]

        async def validated_again(_: ActivationQuery) -> None:
            raise AssertionError("the list validated every stored summary again")

        monkeypatch.setattr(store, "list_activation_summaries", validated_again)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://whisk.test", auth=GUEST) as client:
            response = await client.get("/api/v1/namespaces/_/activations", params={"limit": 200})
    assert response.status_code == 200
    assert response.json() == expected
