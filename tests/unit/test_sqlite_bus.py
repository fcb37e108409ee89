"""The SQLite-journalled bus: what survives the process (the Kafka-like contract is in test_memory_bus.py).

A "restart" is a new ``SqliteBus`` on the same file: after ``close`` (a clean stop, unacknowledged
messages left in the journal) or after the process holding it was killed with SIGKILL (a real child
process, so nothing of the dying bus gets to run).
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import sys
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from launcher.compose import build_standalone
from pywhisk.backends import create_bus
from pywhisk.bus import Consumer
from pywhisk.bus.sqlite import JournalFull, JournalInUse, SqliteBus
from pywhisk.messages import HEALTH_TOPIC, completed_topic, invoker_topic
from pywhisk.settings import Settings

pytestmark = pytest.mark.unit

OpenBus = Callable[..., Awaitable[SqliteBus]]


@pytest.fixture
async def open_bus(tmp_path: Path) -> AsyncIterator[OpenBus]:
    """Start buses on one journal file (one at a time, as processes would); close what is left open."""
    opened: list[SqliteBus] = []

    async def open_(**options: object) -> SqliteBus:
        bus = SqliteBus(tmp_path / "bus.sqlite3", **options)  # type: ignore[arg-type]
        await bus.start()
        opened.append(bus)
        return bus

    yield open_
    for bus in opened:
        await bus.close()


async def _drain(consumer: Consumer) -> list[bytes]:
    return [d.value for d in await consumer.receive(max_messages=1000, timeout_s=0)]


def _journal_rows(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0])


async def test_unacknowledged_messages_are_delivered_again_after_a_restart_oldest_first(open_bus: OpenBus) -> None:
    bus = await open_bus()
    invoker = await bus.subscribe("invoker0", "invoker0")
    for value in (b"a1", b"a2", b"a3"):
        await bus.send("invoker0", value)
    _first, second, _third = await invoker.receive(max_messages=10, timeout_s=0)
    await invoker.ack(second)  # finished and recorded; a1 still running, a3 not started
    await bus.close()

    restarted = await open_bus()
    await restarted.send("invoker0", b"a4")  # accepted after the restart, before the invoker is back
    invoker = await restarted.subscribe("invoker0", "invoker0")

    assert await _drain(invoker) == [b"a1", b"a3", b"a4"]


async def test_messages_sent_before_any_group_subscribed_survive_a_restart(open_bus: OpenBus) -> None:
    bus = await open_bus()
    await bus.send("invoker0", b"early")
    await bus.close()

    restarted = await open_bus()
    assert await _drain(await restarted.subscribe("invoker0", "invoker0")) == [b"early"]


async def test_each_group_keeps_its_own_unacknowledged_messages_across_a_restart(open_bus: OpenBus) -> None:
    bus = await open_bus()
    done = await bus.subscribe("t", "done")
    await bus.subscribe("t", "behind")
    await bus.send("t", b"m")
    for delivery in await done.receive(max_messages=10, timeout_s=0):
        await done.ack(delivery)
    await bus.close()

    restarted = await open_bus()
    assert await _drain(await restarted.subscribe("t", "done")) == []
    assert await _drain(await restarted.subscribe("t", "behind")) == [b"m"]


async def test_acknowledged_messages_leave_the_journal(open_bus: OpenBus, tmp_path: Path) -> None:
    bus = await open_bus()
    invoker = await bus.subscribe("invoker0", "invoker0")
    await asyncio.gather(*(bus.send("invoker0", b"x" * 1000) for _ in range(500)))
    for delivery in await invoker.receive(max_messages=1000, timeout_s=0):
        await invoker.ack(delivery)
    await bus.close()

    assert _journal_rows(tmp_path / "bus.sqlite3") == 0


async def test_the_journal_file_gives_the_space_of_a_burst_back_once_it_is_acknowledged(
    open_bus: OpenBus, tmp_path: Path
) -> None:
    bus = await open_bus()
    invoker = await bus.subscribe("invoker0", "invoker0")
    await asyncio.gather(*(bus.send("invoker0", b"x" * 100_000) for _ in range(200)))  # 20 MB in flight
    for delivery in await invoker.receive(max_messages=1000, timeout_s=0):
        await invoker.ack(delivery)
    await bus.close()  # checkpoints the WAL into the file

    # Up to 4 MB of free pages are kept for the next burst (pywhisk/bus/sqlite.py, _VACUUM_PAGES).
    assert (tmp_path / "bus.sqlite3").stat().st_size < 5_000_000


async def test_commits_never_checkpoint_the_wal_the_checkpointer_does_beside_them(
    open_bus: OpenBus, tmp_path: Path
) -> None:
    """A checkpoint inside a commit made one send in ~200 wait 10-16 ms (pywhisk/store/checkpoint.py)."""
    bus = await open_bus()
    conn = bus._conn
    assert conn is not None
    [(autocheckpoint,)] = await bus._on_thread(lambda: conn.execute("PRAGMA wal_autocheckpoint").fetchall())
    assert autocheckpoint == 0
    path = tmp_path / "bus.sqlite3"
    before = path.stat().st_size
    for _ in range(20):  # ~20 MB, past the checkpointer's 16 MB
        await bus.send("invoker0", b"x" * 1024 * 1024)
    checkpoint = bus._checkpointer.checkpoint
    assert checkpoint is not None
    await checkpoint
    # The database file holds the messages while the bus still runs: the checkpoint's thread copied the WAL in
    # (without it, the file keeps its few pages of schema until the last connection closes).
    assert path.stat().st_size > before + 2 * 1024 * 1024


async def test_topics_not_journalled_do_not_survive_a_restart(open_bus: OpenBus) -> None:
    def journalled(topic: str) -> bool:
        return topic.startswith("invoker")

    bus = await open_bus(journalled=journalled)
    await bus.subscribe("health", "controller0")
    await bus.subscribe("invoker0", "invoker0")
    await bus.send("health", b"ping")
    await bus.send("invoker0", b"activation")
    await bus.close()

    restarted = await open_bus(journalled=journalled)
    assert await _drain(await restarted.subscribe("health", "controller0")) == []
    assert await _drain(await restarted.subscribe("invoker0", "invoker0")) == [b"activation"]


async def test_a_send_past_max_bytes_is_refused_until_acknowledgements_make_room(open_bus: OpenBus) -> None:
    bus = await open_bus(max_bytes=2500)
    invoker = await bus.subscribe("invoker0", "invoker0")
    await bus.send("invoker0", b"x" * 1000)
    await bus.send("invoker0", b"x" * 1000)

    with pytest.raises(JournalFull, match="limit 2500"):
        await bus.send("invoker0", b"x" * 1000)

    first, _second = await invoker.receive(max_messages=10, timeout_s=0)
    await invoker.ack(first)
    await bus.send("invoker0", b"x" * 1000)  # room again


async def test_the_journal_bound_holds_across_a_restart(open_bus: OpenBus) -> None:
    bus = await open_bus(max_bytes=2500)
    await bus.send("invoker0", b"x" * 2000)
    await bus.close()

    restarted = await open_bus(max_bytes=2500)
    with pytest.raises(JournalFull):
        await restarted.send("invoker0", b"x" * 1000)


async def test_a_send_whose_caller_was_cancelled_is_still_delivered(open_bus: OpenBus) -> None:
    # The controller's request task may be cancelled while the journal commits; the message is written
    # regardless, so it must reach the invoker now, not only after a restart.
    bus = await open_bus()
    invoker = await bus.subscribe("invoker0", "invoker0")
    sending = asyncio.create_task(bus.send("invoker0", b"activation"))
    await asyncio.sleep(0)  # queued for the journal
    sending.cancel()

    received = await invoker.receive(max_messages=10, timeout_s=5)

    assert [d.value for d in received] == [b"activation"]


async def test_a_second_bus_on_the_same_journal_is_refused(open_bus: OpenBus, tmp_path: Path) -> None:
    await open_bus()
    second = SqliteBus(tmp_path / "bus.sqlite3")
    with pytest.raises(JournalInUse, match="in use by another process"):
        await second.start()
    await second.close()


async def test_nothing_committed_is_lost_when_the_process_is_killed(open_bus: OpenBus, tmp_path: Path) -> None:
    # A real process sends 200 messages, acknowledges the even ones and is killed with SIGKILL at once:
    # nothing of it (no close, no flush) runs after the last send returned.
    script = textwrap.dedent(
        f"""
        import asyncio, os, signal
        from pathlib import Path
        from pywhisk.bus.sqlite import SqliteBus

        async def main():
            bus = SqliteBus(Path({str(tmp_path / "bus.sqlite3")!r}))
            await bus.start()
            invoker = await bus.subscribe("invoker0", "invoker0")
            await asyncio.gather(*(bus.send("invoker0", str(n).encode()) for n in range(200)))
            deliveries = await invoker.receive(max_messages=1000, timeout_s=0)
            await asyncio.gather(*(invoker.ack(d) for d in deliveries if int(d.value) % 2 == 0))
            os.kill(os.getpid(), signal.SIGKILL)

        asyncio.run(main())
        """
    )
    child = await asyncio.create_subprocess_exec(sys.executable, "-c", script, stderr=asyncio.subprocess.PIPE)
    async with asyncio.timeout(60):
        _, stderr = await child.communicate()
    assert child.returncode == -signal.SIGKILL, stderr.decode()

    restarted = await open_bus()
    invoker = await restarted.subscribe("invoker0", "invoker0")

    assert await _drain(invoker) == [str(n).encode() for n in range(1, 200, 2)]


async def test_standalone_journals_activations_but_not_completions_or_health(tmp_path: Path) -> None:
    settings = Settings(bus="sqlite", data_dir=tmp_path)
    topics = (invoker_topic(0), completed_topic(0), HEALTH_TOPIC)
    bus = create_bus(settings, client_id="standalone")
    await bus.start()
    for topic in topics:
        await bus.subscribe(topic, "g")
        await bus.send(topic, topic.encode())
    await bus.close()

    restarted = create_bus(settings, client_id="standalone")
    await restarted.start()
    try:
        left = {topic: await _drain(await restarted.subscribe(topic, "g")) for topic in topics}
    finally:
        await restarted.close()

    assert left == {invoker_topic(0): [b"invoker0"], completed_topic(0): [], HEALTH_TOPIC: []}


@pytest.mark.parametrize(("configured", "used"), [("kafka", "sqlite"), ("sqlite", "sqlite"), ("memory", "memory")])
def test_standalone_uses_the_journal_unless_told_memory(tmp_path: Path, configured: str, used: str) -> None:
    app = build_standalone(Settings(bus=configured, data_dir=tmp_path), executors={})  # type: ignore[arg-type]

    assert app.state.settings.bus == used
