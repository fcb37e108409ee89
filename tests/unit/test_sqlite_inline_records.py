"""A small batch of activation records is committed on the event loop when the SQLite writer thread is idle
(pywhisk/store/sqlite.py ``_insert_inline``; issue 12): in standalone a blocking invoke's answer waits for its
record, and handing a ~0.2 ms commit to the writer thread and back cost another namespace's hello two thread
wake-ups, tens of milliseconds each on a machine whose cores were busy with 7 MB records.

A bigger batch, a write while the thread has the connection, and a write lock held by another process (another
standalone worker) still go to the thread, which waits for the lock there, never on the loop."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pywhisk.store import ActivationQuery
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


async def test_a_small_record_is_committed_on_the_loop(store: SqliteStore) -> None:
    record = make_activation(record_id(1), start=1)

    await store.put_activation(record)

    assert store.inline_commits == 1
    assert await store.get_activation(record.namespace, record.activationId) == record


async def test_a_batch_bigger_than_the_bound_goes_to_the_writer_thread(store: SqliteStore) -> None:
    records = [make_activation(record_id(n), start=n) for n in range(sqlite_store._INLINE_MAX_RECORDS + 1)]

    await store._insert_activations([(r, b"{}") for r in records])  # one batch, as the group commit makes it

    assert store.inline_commits == 0
    stored = await store.count_activations(ActivationQuery(namespace=records[0].namespace))
    assert stored == len(records)


async def test_a_record_waits_on_the_thread_while_the_thread_has_the_connection(store: SqliteStore) -> None:
    started, release = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()

    def held(conn: sqlite3.Connection) -> None:  # an entity write in progress on the writer thread
        loop.call_soon_threadsafe(started.set)
        asyncio.run_coroutine_threadsafe(release.wait(), loop).result(timeout=10)

    entity_write = asyncio.create_task(store._write(held))
    await asyncio.wait_for(started.wait(), 10)
    record_write = asyncio.create_task(store.put_activation(make_activation(record_id(1), start=1)))
    await asyncio.sleep(0)  # the group commit takes its batch
    await asyncio.sleep(0)
    assert not record_write.done() and store.inline_commits == 0
    release.set()
    await asyncio.wait_for(asyncio.gather(entity_write, record_write), 10)
    assert store.inline_commits == 0


async def test_another_process_holding_the_write_lock_never_blocks_the_loop(store: SqliteStore, tmp_path: Path) -> None:
    other = sqlite3.connect(tmp_path / "store.sqlite3", isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # another standalone worker's transaction
    record = make_activation(record_id(1), start=1)
    lags: list[float] = []

    async def probe() -> None:
        while True:
            at = time.perf_counter()
            await asyncio.sleep(0.005)
            lags.append(time.perf_counter() - at - 0.005)

    prober = asyncio.create_task(probe())
    write = asyncio.create_task(store.put_activation(record))
    await asyncio.sleep(0.5)
    assert not write.done(), "written through another connection's write lock"
    other.execute("COMMIT")
    await asyncio.wait_for(write, 10)
    prober.cancel()
    other.close()

    assert store.inline_commits == 0
    assert max(lags) < 0.25, f"the loop stalled {max(lags):.3f} s on the lock"
    assert await store.get_activation(record.namespace, record.activationId) == record
