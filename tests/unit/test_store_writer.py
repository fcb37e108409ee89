"""The group-commit writer both stores write activation records through (pywhisk/store/writer.py)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from pywhisk.store.writer import GroupCommitWriter

pytestmark = pytest.mark.unit

log = logging.getLogger(__name__)


class Recorder:
    """A flush function that records its batches; ``entered`` is set once a flush has its batch, and
    ``gate`` holds flushes until it is set."""

    def __init__(self, fail: set[str] | None = None) -> None:
        self.batches: list[list[str]] = []
        self.entered = asyncio.Event()
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail = fail or set()

    async def __call__(self, batch: list[str]) -> list[BaseException | None]:
        self.batches.append(batch)
        self.entered.set()
        await self.gate.wait()
        if "all" in self.fail:
            raise OSError("the disk is gone")
        return [ValueError(item) if item in self.fail else None for item in batch]


async def test_items_waiting_during_a_flush_go_together_into_the_next_one() -> None:
    flush = Recorder()
    writer = GroupCommitWriter(flush, name="test-writer", what="items", log=log)
    flush.gate.clear()
    first = asyncio.ensure_future(writer.put("a"))
    await flush.entered.wait()  # the writer took "a" alone
    rest = [asyncio.ensure_future(writer.put(item)) for item in "bcd"]
    flush.gate.set()

    await asyncio.gather(first, *rest)

    assert flush.batches == [["a"], ["b", "c", "d"]]
    assert writer.flushes == 2


async def test_a_batch_is_bounded_by_count_and_by_bytes_but_always_takes_one_item() -> None:
    flush = Recorder()
    writer = GroupCommitWriter(flush, name="test-writer", what="items", log=log, max_items=3, max_bytes=5, size=len)
    flush.gate.clear()
    blocker = asyncio.ensure_future(writer.put("x"))
    await flush.entered.wait()
    puts = [asyncio.ensure_future(writer.put(item)) for item in ["a", "b", "c", "d", "eeee", "ffffffff", "g"]]
    flush.gate.set()

    await asyncio.gather(blocker, *puts)

    assert flush.batches == [["x"], ["a", "b", "c"], ["d", "eeee"], ["ffffffff"], ["g"]]


async def test_an_item_refused_fails_only_its_own_caller() -> None:
    writer = GroupCommitWriter(Recorder(fail={"b"}), name="test-writer", what="items", log=log)

    outcomes = await asyncio.gather(*(writer.put(item) for item in "abc"), return_exceptions=True)

    assert outcomes[0] is None and outcomes[2] is None
    assert isinstance(outcomes[1], ValueError)


async def test_a_failed_flush_fails_every_caller_of_its_batch_and_the_next_batch_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    flush = Recorder(fail={"all"})
    writer = GroupCommitWriter(flush, name="test-writer", what="items", log=log)

    outcomes = await asyncio.gather(*(writer.put(item) for item in "ab"), return_exceptions=True)
    flush.fail.clear()
    await writer.put("c")

    assert all(isinstance(o, OSError) for o in outcomes)
    assert "writing 2 items failed: the disk is gone" in caplog.text
    assert flush.batches[-1] == ["c"]


async def test_close_waits_for_the_items_queued_and_a_cancelled_caller_is_still_written() -> None:
    flush = Recorder()
    writer = GroupCommitWriter(flush, name="test-writer", what="items", log=log)
    flush.gate.clear()
    cancelled = asyncio.ensure_future(writer.put("a"))
    kept = asyncio.ensure_future(writer.put("b"))
    await flush.entered.wait()
    cancelled.cancel()
    closing = asyncio.ensure_future(writer.close())
    flush.gate.set()

    await closing

    assert kept.done() and kept.exception() is None
    assert cancelled.cancelled()
    assert flush.batches == [["a", "b"]]


async def _settle() -> None:
    """Let the writer's task run as far as it can without time passing (it then lingers or flushes)."""
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_lingering_batch_gathers_what_arrives_and_goes_once_full() -> None:
    flush = Recorder()
    # A linger far longer than the test may take: only a full batch can end it.
    writer = GroupCommitWriter(flush, name="test-writer", what="items", log=log, max_items=4, linger_s=600)
    first = asyncio.ensure_future(writer.put("a"))
    await _settle()
    assert flush.batches == []  # lingering: without it "a" would be on its way alone
    rest = []
    for item in "bcd":
        rest.append(asyncio.ensure_future(writer.put(item)))
        await _settle()

    await asyncio.wait_for(asyncio.gather(first, *rest), timeout=30)

    assert flush.batches == [["a", "b", "c", "d"]]


async def test_a_lingering_batch_goes_when_its_linger_ends_and_a_full_one_by_bytes_at_once() -> None:
    flush = Recorder()
    writer = GroupCommitWriter(flush, name="test-writer", what="items", log=log, max_bytes=4, size=len, linger_s=0.05)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.wait_for(writer.put("a"), timeout=30)
    assert flush.batches == [["a"]] and loop.time() - started >= 0.05  # alone, after the linger

    bytes_writer = GroupCommitWriter(
        flush, name="test-writer", what="items", log=log, max_bytes=4, size=len, linger_s=600
    )
    puts = [asyncio.ensure_future(bytes_writer.put(item)) for item in ("x", "yy", "z")]  # 4 bytes: full
    await asyncio.wait_for(asyncio.gather(*puts), timeout=30)
    assert flush.batches[1:] == [["x", "yy", "z"]]


def test_a_negative_linger_is_refused() -> None:
    with pytest.raises(ValueError, match="linger_s"):
        GroupCommitWriter(Recorder(), name="test-writer", what="items", log=log, linger_s=-1)


class Inline:
    """An ``inline`` flush that records what it wrote; ``able`` says whether it can write now."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.able = True

    def __call__(self, batch: list[str]) -> list[BaseException | None] | None:
        if not self.able:
            return None
        self.batches.append(batch)
        return [ValueError(item) if item == "bad" else None for item in batch]


async def test_an_item_put_while_the_writer_is_idle_is_written_inline_in_the_callers_step() -> None:
    flush, inline = Recorder(), Inline()
    writer = GroupCommitWriter(flush, name="test-writer", what="items", log=log, inline=inline, inline_gap_s=0)
    put = writer.put("a")

    with pytest.raises(StopIteration):  # the coroutine ends in its first step: no round of the loop
        put.send(None)

    assert inline.batches == [["a"]] and flush.batches == []
    assert writer.flushes == 1
    with pytest.raises(ValueError, match="bad"):
        await writer.put("bad")  # an outcome that is an exception fails its caller, as from a batch


async def test_items_put_while_a_batch_is_written_still_queue_and_go_together() -> None:
    flush, inline = Recorder(), Inline()
    writer = GroupCommitWriter(flush, name="test-writer", what="items", log=log, inline=inline, inline_gap_s=0)
    inline.able = False  # e.g. SQLite's write lock held by another process: the first item goes to the task
    flush.gate.clear()
    first = asyncio.ensure_future(writer.put("a"))
    await flush.entered.wait()
    inline.able = True
    rest = [asyncio.ensure_future(writer.put(item)) for item in "bcd"]  # the writer is busy: they queue
    flush.gate.set()
    await asyncio.gather(first, *rest)

    assert flush.batches == [["a"], ["b", "c", "d"]] and inline.batches == []
    await writer.put("e")  # idle again
    assert inline.batches == [["e"]]


async def test_puts_closer_than_the_gap_queue_for_a_group_commit() -> None:
    """Under load an inline write per item would give up the group commit (a third of standalone's throughput)."""
    flush, inline = Recorder(), Inline()
    writer = GroupCommitWriter(flush, name="test-writer", what="items", log=log, inline=inline, inline_gap_s=3600)

    await writer.put("a")  # the first put: nothing came before it
    await writer.put("b")  # within the hour: taken for load

    assert inline.batches == [["a"]] and flush.batches == [["b"]]


def test_a_lingering_writer_never_writes_inline() -> None:
    writer = GroupCommitWriter(Recorder(), name="test-writer", what="items", log=log, inline=Inline(), linger_s=0.01)
    assert writer._inline is None, "a linger asks for company; an inline write would never wait for it"
