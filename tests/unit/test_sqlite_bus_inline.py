"""A small batch of the bus journal's operations is committed on the event loop (pywhisk/bus/sqlite.py
``_write_inline``; issue 12), as the store commits its small batches of records: on the journal's thread every
SQLite call gave up the GIL and, beside a busy loop, waited up to the switch interval to get it back, so a warm
invoke's send and ack took tens of loop rounds (over a thousand at p99, ``bench/loop_rounds.py``).

What stays on the thread: a bigger batch, every commit with ``fsync`` (it waits for the disk), and a commit while
another process (another standalone worker) holds the write lock, which the thread waits out, never the loop."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pywhisk.bus import sqlite as sqlite_bus
from pywhisk.bus.sqlite import SqliteBus

pytestmark = pytest.mark.unit


@pytest.fixture
async def bus(tmp_path: Path) -> AsyncIterator[SqliteBus]:
    bus = SqliteBus(tmp_path / "bus.sqlite3")
    await bus.start()
    yield bus
    await bus.close()


def _journalled(path: Path) -> list[bytes]:
    """What another connection (a process started after a crash) finds in the journal."""
    with sqlite3.connect(path) as conn:
        return [bytes(value) for (value,) in conn.execute("SELECT value FROM messages ORDER BY id")]


async def test_a_send_and_its_ack_are_committed_on_the_loop(bus: SqliteBus, tmp_path: Path) -> None:
    consumer = await bus.subscribe("invoker0", "invoker0")
    joined = bus.inline_commits

    await bus.send("invoker0", b"activation")
    assert bus.inline_commits == joined + 1
    assert _journalled(tmp_path / "bus.sqlite3") == [b"activation"], "committed before send returned"

    (delivery,) = await consumer.receive(max_messages=1, timeout_s=5)
    await consumer.ack(delivery)
    assert bus.inline_commits == joined + 2
    assert _journalled(tmp_path / "bus.sqlite3") == [], "forgotten once its only group acknowledged it"


async def test_with_fsync_every_commit_goes_to_the_thread(tmp_path: Path) -> None:
    bus = SqliteBus(tmp_path / "bus.sqlite3", fsync=True)
    await bus.start()
    try:
        consumer = await bus.subscribe("invoker0", "invoker0")
        await bus.send("invoker0", b"activation")
        assert _journalled(tmp_path / "bus.sqlite3") == [b"activation"]
        (delivery,) = await consumer.receive(max_messages=1, timeout_s=5)
        await consumer.ack(delivery)
        assert bus.inline_commits == 0
        assert _journalled(tmp_path / "bus.sqlite3") == []
    finally:
        await bus.close()


async def test_a_batch_bigger_than_the_bound_goes_to_the_thread(bus: SqliteBus, tmp_path: Path) -> None:
    consumer = await bus.subscribe("invoker0", "invoker0")
    before, flushes = bus.inline_commits, bus._writer.flushes
    values = [f"m{n}".encode() for n in range(sqlite_bus._INLINE_MAX_OPERATIONS + 2)]
    other = sqlite3.connect(tmp_path / "bus.sqlite3", isolation_level=None, check_same_thread=False)
    try:
        other.execute("BEGIN IMMEDIATE")  # the first send waits for this lock on the thread ...
        first = asyncio.create_task(bus.send("invoker0", values[0]))
        await asyncio.sleep(0)
        rest = [asyncio.create_task(bus.send("invoker0", value)) for value in values[1:]]  # ... the rest queue
        await asyncio.sleep(0)
        other.execute("COMMIT")
        await asyncio.wait_for(asyncio.gather(first, *rest), 10)
    finally:
        other.close()

    assert bus._writer.flushes == flushes + 2, "the first send alone, then the rest in one group commit"
    assert bus.inline_commits == before, "a batch of 9 is past the bound: the thread wrote it"
    assert _journalled(tmp_path / "bus.sqlite3") == values
    delivered = await consumer.receive(max_messages=100, timeout_s=5)
    assert [d.value for d in delivered] == values


async def test_a_send_while_the_journal_is_idle_is_committed_in_the_senders_own_step(
    bus: SqliteBus, tmp_path: Path
) -> None:
    await bus.subscribe("invoker0", "invoker0")
    bus._writer.inline_gap_s = 0  # the subscription's own write came just now; a send that far apart is sparse
    send = bus.send("invoker0", b"activation")

    with pytest.raises(StopIteration):  # no round of the loop between the send and its commit
        send.send(None)

    assert _journalled(tmp_path / "bus.sqlite3") == [b"activation"]


async def test_another_process_holding_the_write_lock_is_waited_for_on_the_thread(
    bus: SqliteBus, tmp_path: Path
) -> None:
    consumer = await bus.subscribe("invoker0", "invoker0")
    before = bus.inline_commits
    other = sqlite3.connect(tmp_path / "bus.sqlite3", isolation_level=None, check_same_thread=False)
    try:
        other.execute("BEGIN IMMEDIATE")  # another standalone worker's group commit
        send = asyncio.create_task(bus.send("invoker0", b"activation"))
        # The loop goes on while the send waits: 100 rounds pass, each far inside the journal's 10 s busy timeout
        # that the loop would sit out if it waited for the lock itself.
        started = time.perf_counter()
        for _ in range(100):
            await asyncio.sleep(0)
            assert time.perf_counter() - started < 5, "the loop stalled on another process's write lock"
        assert not send.done(), "committed through another connection's write lock"
        other.execute("COMMIT")
        await asyncio.wait_for(send, 10)
    finally:
        other.close()

    assert bus.inline_commits == before
    (delivery,) = await consumer.receive(max_messages=1, timeout_s=5)
    assert delivery.value == b"activation"
