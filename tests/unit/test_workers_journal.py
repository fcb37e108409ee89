"""Standalone workers on one bus journal and one store: each worker's activations, orphans, entity changes.

Each "worker" is a ``SqliteBus`` / ``SqliteStore`` on the shared files, as ``--workers N`` processes open them
(pywhisk/bus/sqlite.py, pywhisk/store/sqlite.py, controller/entity_cache.py). A "restart" is a new bus on the file.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from controller.entity_cache import CachedEntityStore, EntityChangeFeed
from launcher.workers import controller_worker, standalone_worker
from pywhisk.bus import Consumer
from pywhisk.bus.sqlite import JournalInUse, SqliteBus
from pywhisk.entities import Action
from pywhisk.errors import ConcurrentModification
from pywhisk.schedules import Schedule, ScheduleStatus
from pywhisk.settings import Settings
from pywhisk.store.sqlite import SqliteStore
from pywhisk.system import seed_system_packages

pytestmark = pytest.mark.unit

OpenBus = Callable[..., Awaitable[SqliteBus]]


@pytest.fixture
async def open_bus(tmp_path: Path) -> AsyncIterator[OpenBus]:
    opened: list[SqliteBus] = []

    async def open_(worker: int, workers: int) -> SqliteBus:
        bus = SqliteBus(
            tmp_path / "bus.sqlite3",
            worker=worker,
            workers=workers,
            adopt_topic=lambda topic: "invoker0" if topic.startswith("invoker") else topic,
        )
        await bus.start()
        opened.append(bus)
        return bus

    yield open_
    for bus in opened:
        await bus.close()


async def _drain(consumer: Consumer) -> list[bytes]:
    return [d.value for d in await consumer.receive(max_messages=1000, timeout_s=0)]


# the journal --------------------------------------------------------------------------------------


async def test_each_worker_delivers_only_what_it_accepted_also_after_a_restart(open_bus: OpenBus) -> None:
    zero, one = await open_bus(0, 2), await open_bus(1, 2)
    invoker0, invoker1 = await zero.subscribe("invoker0", "invoker0"), await one.subscribe("invoker1", "invoker1")
    await asyncio.gather(*(zero.send("invoker0", f"zero-{n}".encode()) for n in range(3)))
    await asyncio.gather(*(one.send("invoker1", f"one-{n}".encode()) for n in range(3)))
    assert sorted(await _drain(invoker0)) == [b"zero-0", b"zero-1", b"zero-2"]
    received = await invoker1.receive(max_messages=10, timeout_s=0)
    assert sorted(d.value for d in received) == [b"one-0", b"one-1", b"one-2"]
    await invoker1.ack(received[0])
    await one.close()  # worker 1 stops with two of its messages unacknowledged

    one = await open_bus(1, 2)
    again = await one.subscribe("invoker1", "invoker1")
    assert sorted(await _drain(again)) == sorted(d.value for d in received[1:])
    assert await _drain(invoker0) == []  # worker 0 got nothing of worker 1's


async def test_message_ids_are_unique_across_the_workers(open_bus: OpenBus) -> None:
    zero, one = await open_bus(0, 2), await open_bus(1, 2)
    invoker0, invoker1 = await zero.subscribe("invoker0", "invoker0"), await one.subscribe("invoker1", "invoker1")
    await asyncio.gather(
        *(bus.send(topic, b"x") for _ in range(20) for bus, topic in ((zero, "invoker0"), (one, "invoker1")))
    )
    offsets = [d.offset for d in await invoker0.receive(100, 0)] + [d.offset for d in await invoker1.receive(100, 0)]
    assert len(offsets) == 40 and len(set(offsets)) == 40


async def test_a_second_process_for_the_same_worker_is_refused(open_bus: OpenBus, tmp_path: Path) -> None:
    await open_bus(1, 2)
    second = SqliteBus(tmp_path / "bus.sqlite3", worker=1, workers=2)
    with pytest.raises(JournalInUse, match="worker 1"):
        await second.start()
    await second.close()
    await open_bus(0, 2)  # another worker is welcome


async def test_worker_0_adopts_the_messages_of_a_worker_beyond_the_new_count_once(
    open_bus: OpenBus, tmp_path: Path
) -> None:
    one = await open_bus(1, 2)
    consumer = await one.subscribe("invoker1", "invoker1")
    await asyncio.gather(*(one.send("invoker1", f"orphan-{n}".encode()) for n in range(5)))
    received = await consumer.receive(max_messages=10, timeout_s=0)
    await consumer.ack(received[0])
    await one.close()

    zero = await open_bus(0, 1)  # restarted with one worker
    invoker0 = await zero.subscribe("invoker0", "invoker0")
    assert sorted(await _drain(invoker0)) == [b"orphan-1", b"orphan-2", b"orphan-3", b"orphan-4"]
    await zero.close()

    zero = await open_bus(0, 1)  # adopted, so journalled as worker 0's: delivered again, not adopted twice
    assert sorted(await _drain(await zero.subscribe("invoker0", "invoker0"))) == [
        b"orphan-1",
        b"orphan-2",
        b"orphan-3",
        b"orphan-4",
    ]


async def test_a_live_worker_is_never_adopted(open_bus: OpenBus) -> None:
    one = await open_bus(1, 2)
    consumer = await one.subscribe("invoker1", "invoker1")
    await one.send("invoker1", b"mine")
    zero = await open_bus(0, 1)  # a misconfigured second server: worker 1 still holds its lock
    assert await _drain(await zero.subscribe("invoker0", "invoker0")) == []
    assert await _drain(consumer) == [b"mine"]


async def test_a_journal_written_before_workers_is_worker_0s(open_bus: OpenBus, tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "bus.sqlite3") as conn:  # the schema of the version before workers
        conn.executescript(
            """
            CREATE TABLE messages (id INTEGER PRIMARY KEY, topic TEXT NOT NULL, value BLOB NOT NULL);
            CREATE TABLE groups (topic TEXT NOT NULL, grp TEXT NOT NULL, PRIMARY KEY (topic, grp)) WITHOUT ROWID;
            CREATE TABLE pending (id INTEGER NOT NULL, grp TEXT NOT NULL, PRIMARY KEY (id, grp)) WITHOUT ROWID;
            INSERT INTO groups VALUES ('invoker0', 'invoker0');
            INSERT INTO messages VALUES (7, 'invoker0', x'6f6c64');
            INSERT INTO pending VALUES (7, 'invoker0');
            """
        )
    one = await open_bus(1, 2)
    assert await _drain(await one.subscribe("invoker1", "invoker1")) == []
    zero = await open_bus(0, 2)
    invoker0 = await zero.subscribe("invoker0", "invoker0")
    assert await _drain(invoker0) == [b"old"]
    await zero.send("invoker0", b"new")
    assert await _drain(invoker0) == [b"new"]


# settings of a worker -----------------------------------------------------------------------------


def test_a_standalone_worker_owns_its_share_of_the_budgets_and_its_own_invoker() -> None:
    settings = Settings(workers=2, user_memory_mb=4096, user_memory_reserve_mb=512, bus_journal_max_bytes=1 << 30)
    worker = standalone_worker(settings, 1)
    assert (worker.worker_id, worker.invoker_id, worker.controller_id) == (1, 1, 1)
    assert (worker.user_memory_mb, worker.user_memory_reserve_mb, worker.bus_journal_max_bytes) == (2048, 256, 1 << 29)
    assert (worker.workers, worker.controllers) == (2, 1)  # throttles: a share of 1 * 2


def test_a_controller_worker_is_a_controller_of_the_cluster() -> None:
    # Controller 1 of 2 commands, each with 3 workers: controllers 3..5 of a cluster of 6.
    settings = Settings(workers=3, controllers=2, controller_id=1)
    assert [
        (w.controller_id, w.controllers, w.workers) for w in (controller_worker(settings, k) for k in range(3))
    ] == [
        (3, 6, 1),
        (4, 6, 1),
        (5, 6, 1),
    ]


# entity changes between workers -------------------------------------------------------------------


@pytest.fixture
async def two_stores(tmp_path: Path) -> AsyncIterator[tuple[SqliteStore, SqliteStore]]:
    stores = (SqliteStore(tmp_path / "pywhisk.sqlite3"), SqliteStore(tmp_path / "pywhisk.sqlite3"))
    for store in stores:
        await store.start()
    yield stores
    for store in stores:
        await store.close()


def _action(name: str, greeting: str) -> Action:
    return Action.model_validate(
        {
            "namespace": "guest",
            "name": name,
            "exec": {"kind": "wasm:wasi", "code": "AA=="},
            "parameters": [{"key": "greeting", "value": greeting}],
        }
    )


async def test_a_write_through_one_store_invalidates_the_cache_of_the_other_within_the_poll(
    two_stores: tuple[SqliteStore, SqliteStore],
) -> None:
    writer, reader_store = two_stores
    assert isinstance(reader_store, EntityChangeFeed)
    cached = CachedEntityStore(
        reader_store, None, instance="controller1", max_bytes=1 << 20, ttl_s=600, poll_s=0.02, changes=reader_store
    )
    await cached.start()
    try:
        stored = await writer.put_action(_action("a", "one"), None)
        assert (await cached.get_action("guest", "a")).parameters[0].value == "one"  # type: ignore[union-attr]
        await writer.put_action(_action("a", "two"), stored.rev)
        deadline = time.monotonic() + 5
        while (await cached.get_action("guest", "a")).parameters[0].value != "two":  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the change was not seen"
            await asyncio.sleep(0.01)
        await writer.delete_action("guest", "a")
        while await cached.get_action("guest", "a") is not None:
            assert time.monotonic() < deadline, "the delete was not seen"
            await asyncio.sleep(0.01)
    finally:
        await cached.close()


async def test_a_reader_that_fell_behind_the_kept_changes_is_told_to_forget_everything(
    two_stores: tuple[SqliteStore, SqliteStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    import pywhisk.store.sqlite as sqlite_store

    monkeypatch.setattr(sqlite_store, "_ENTITY_CHANGES_KEPT", 10)
    writer, reader = two_stores
    seen, _ = await reader.entity_changes(None)
    stored = await writer.put_action(_action("b", "0"), None)
    assert await reader.entity_changes(seen) == (seen + 1, ["guest/b"])
    for n in range(300):  # trimmed every 256 changes, to the last 10
        stored = await writer.put_action(_action("b", str(n)), stored.rev)
    last, ids = await reader.entity_changes(seen + 1)
    assert (last, ids) == (seen + 301, None)
    assert await reader.entity_changes(last) == (last, [])


# what workers already share safely through the store ------------------------------------------------


async def test_two_workers_claiming_one_alarm_tick_fire_it_once(two_stores: tuple[SqliteStore, SqliteStore]) -> None:
    # The scheduler's claim (controller/alarms/scheduler.py ``_claim``): write the schedule moved past the tick
    # under the revision read. Each worker read the same due schedule; the store lets one of them win.
    first, second = two_stores
    due = Schedule.model_validate(
        {
            "namespace": "guest",
            "name": "tick",
            "subject": "guest",
            "kind": "interval",
            "minutes": 1,
            "status": ScheduleStatus(dateChanged=0),
            "next_fire_ms": 60_000,
        }
    )
    stored = await first.put_schedule(due, None)
    read = [await store.get_schedule("guest", "tick") for store in two_stores]
    assert all(schedule is not None and schedule.rev == stored.rev for schedule in read)

    async def claim(store: SqliteStore, schedule: Schedule) -> bool:
        try:
            await store.put_schedule(schedule.model_copy(update={"fired": 1, "next_fire_ms": 120_000}), schedule.rev)
        except ConcurrentModification:
            return False
        return True

    wins = await asyncio.gather(*(claim(store, schedule) for store, schedule in zip(two_stores, read, strict=True)))  # type: ignore[arg-type]
    assert sorted(wins) == [False, True]
    assert (await second.get_schedule("guest", "tick")).fired == 1  # type: ignore[union-attr]


async def test_two_workers_seeding_the_system_packages_at_once_both_start(
    two_stores: tuple[SqliteStore, SqliteStore],
) -> None:
    written = await asyncio.gather(*(seed_system_packages(store) for store in two_stores))
    names = [name for names in written for name in names]
    assert names and len(names) == len(set(names)), "an entity written by both (the loser must get a Conflict)"
    assert await seed_system_packages(two_stores[0]) == []  # up to date, whoever wrote what
