"""A durable ``Bus`` for standalone mode: the in-process bus behind a write-ahead journal in SQLite.

Standalone runs controller and invoker in one process, so dispatch stays in memory (``memory.py``'s queues
and group semantics). What the journal adds is that an accepted activation survives the process:

- ``send`` to a journalled topic returns only once the message is committed to the journal, so a 202 is
  never answered for an activation that a ``kill -9`` the next moment would forget.
- The message stays in the journal until every consumer group of its topic has acknowledged it (for an
  invoker: its activation record is stored); acknowledged messages are deleted, so the journal holds only
  the work in flight.
- The next process on the same file delivers every unacknowledged message again to its group, oldest
  first: at-least-once, as Kafka in distributed mode. A message is never lost, but one whose record was
  stored just before the crash runs again (its record is not written twice: records are keyed by
  activation id).

Sends and acknowledgements share one group commit (``pywhisk.store.writer``) on one SQLite thread: every
operation waiting when the previous transaction returns goes into the next one, so a busy server pays one
commit for hundreds of messages and the event loop never waits on SQLite. WAL checkpoints run beside the
commits, never inside one (``pywhisk.store.checkpoint``). Topics the ``journalled``
predicate turns down (standalone: completions and health pings, which mean nothing to the next process)
stay purely in memory.

Commits are safe against a crash of the process (WAL, ``synchronous=NORMAL``); with ``fsync`` they are
also safe against a crash of the machine (``synchronous=FULL``: one fsync per group commit).

Several standalone workers (``pywhisk standalone --workers N``, launcher/workers.py) share one journal file:
every message belongs to the worker that accepted it (its ``worker`` column), each worker delivers only its
own, and message ids are SQLite's rowids, unique across the file. A worker holds an advisory lock on
``<journal>.worker{K}.lock`` while it lives (a crashed worker's lock goes with it), which is how a second
process for the same worker is refused (``JournalInUse``) and how worker 0 knows that the messages of a worker
``K >= N`` (the server was restarted with fewer workers) are orphans: it adopts them at start, in one
transaction that moves each onto its own topic (``adopt_topic``) as a fresh send, so each is delivered once more,
by one worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TypeVar

from pywhisk.bus import Consumer, Delivery
from pywhisk.bus.memory import MemoryBus, MemoryConsumer, _Topic
from pywhisk.store.checkpoint import WalCheckpointer
from pywhisk.store.transaction import Busy, transaction
from pywhisk.store.writer import GroupCommitWriter

log = logging.getLogger("pywhisk.bus.sqlite")

T = TypeVar("T")


class JournalFull(Exception):
    """The journal holds ``max_bytes`` of unacknowledged messages: nothing more is accepted until some finish."""


class JournalInUse(Exception):
    """Another live process holds the journal (e.g. a second ``pywhisk standalone`` on the same data directory)."""


class SqliteBus:
    """A ``Bus`` in one process whose journalled topics survive it, in the SQLite file at ``path``.

    ``journalled(topic)`` says which topics are journalled (all by default). ``max_bytes`` bounds the
    unacknowledged messages the journal holds (``send`` raises ``JournalFull`` past it; None: unbounded).
    ``fsync`` makes every commit durable against power loss, not only against a crash of the process.
    ``worker`` of ``workers`` names this process among the workers sharing the file (module docstring); only
    one process at a time may be a given worker. Worker 0 adopts the messages of workers ``>= workers``,
    moving each onto ``adopt_topic(topic)`` (default: the same topic).
    """

    def __init__(
        self,
        path: Path,
        *,
        journalled: Callable[[str], bool] = lambda topic: True,
        max_bytes: int | None = None,
        fsync: bool = False,
        worker: int = 0,
        workers: int = 1,
        adopt_topic: Callable[[str], str] = lambda topic: topic,
    ) -> None:
        assert 0 <= worker < workers, f"expected a worker index below {workers}, got {worker}"
        self._path = path
        self._worker = worker
        self._workers = workers
        self._adopt_topic = adopt_topic
        self._lock_fd: int | None = None
        self._journalled = journalled
        self._max_bytes = max_bytes
        self._fsync = fsync
        self._memory = MemoryBus()  # the topics that are not journalled
        self._topics: dict[str, _Topic] = {}
        self._groups: dict[str, set[str]] = {}  # journalled topic -> its groups, as in the journal
        self._bytes = 0  # of the messages in the journal
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="sqlite-bus")
        self._conn: sqlite3.Connection | None = None
        self.inline_commits = 0  # batches committed on the event loop (``_write_inline``)
        # Commits never checkpoint the WAL themselves: one in ~200 took 10-16 ms doing it, and a send waited for it
        # (pywhisk/store/checkpoint.py). The checkpointer does it beside them, on its own thread and connection,
        # every 16 MB rather than 4: each checkpoint syncs two files, and at 15 activations in flight the 4 MB ones
        # cost the loop ~1 ms of waitTime on two busy cores (docs/benchmarks.md, issue 15).
        self._checkpointer = WalCheckpointer(
            self._open_for_checkpoints, name="sqlite-bus-checkpoint", log=log, every_bytes=_CHECKPOINT_BYTES
        )
        self._writer = GroupCommitWriter[_Operation](
            self._flush, name="sqlite-bus-journal", what="bus operations", log=log, inline=self._flush_at_once
        )

    async def start(self) -> None:
        """Open the journal and queue what the last process left unacknowledged for redelivery."""
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_fd = _lock(self._lock_path(self._worker))
        if self._lock_fd is None:
            raise JournalInUse(f"the bus journal {self._path} is in use by another process (worker {self._worker})")
        self._conn = await self._on_thread(self._open)
        conn = self._conn
        await self._checkpointer.start()
        if self._worker == 0:
            await self._on_thread(lambda: self._adopt_orphans(conn))
        journal = await self._on_thread(lambda: _Journal.load(conn, self._worker))
        for topic, group in journal.groups:
            self._topic(topic).join(group)
            self._groups.setdefault(topic, set()).add(group)
        for topic, group, delivery in journal.pending:
            self._topic(topic).join(group).put_nowait(delivery)
        for topic, delivery in journal.backlog:
            self._topic(topic).backlog.append(delivery)
        self._bytes = journal.size
        if journal.pending or journal.backlog:
            log.warning(
                "the bus journal %s holds %d unacknowledged messages from before the last stop: delivering them again",
                self._path,
                len(journal.pending) + len(journal.backlog),
            )

    async def close(self) -> None:
        """Write what is queued, then close the journal (unacknowledged messages stay in it)."""
        await self._memory.close()
        await self._writer.close()
        await self._checkpointer.close()
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await self._on_thread(conn.close)  # the last connection: it checkpoints what is left
        self._thread.shutdown(wait=True)
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # and with it the lock
            self._lock_fd = None
        self._topics.clear()
        self._groups.clear()

    async def send(self, topic: str, value: bytes) -> None:
        """Append ``value`` to ``topic``; for a journalled topic, return once it is committed to the journal.

        Raises ``JournalFull`` (nothing written) when the journal already holds ``max_bytes``, and what
        SQLite raised if the commit failed.
        """
        log.debug("send to topic %s: %d bytes", topic, len(value))  # with the sender's ids (pywhisk/logs.py)
        if not self._journalled(topic):
            await self._memory.send(topic, value)
            return
        if self._max_bytes is not None and self._bytes + len(value) > self._max_bytes:
            raise JournalFull(
                f"the bus journal holds {self._bytes} bytes of unacknowledged messages (limit {self._max_bytes})"
            )
        self._bytes += len(value)  # counted before it is written, so a burst cannot overshoot the bound
        # Published by the flush once committed, not here: a caller cancelled while waiting (its client
        # went away) must not leave a journalled message undelivered until the next restart.
        await self._writer.put(_Operation("send", topic, 0, value=value))

    async def subscribe(self, topic: str, group: str) -> Consumer:
        """Consume ``topic`` as a member of ``group``; a journalled group is remembered by the journal."""
        if not self._journalled(topic):
            return await self._memory.subscribe(topic, group)
        if group not in self._groups.get(topic, ()):
            await self._writer.put(_Operation("join", topic, 0, group=group))
        return _JournalledConsumer(self._topic(topic).join(group), self, topic, group)

    # helpers -------------------------------------------------------------------------------------

    def _topic(self, name: str) -> _Topic:
        return self._topics.setdefault(name, _Topic())

    async def _ack(self, topic: str, group: str, delivery: Delivery) -> None:
        await self._writer.put(_Operation("ack", topic, delivery.offset, group=group, value=delivery.value))

    async def _on_thread(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn)

    def _lock_path(self, worker: int) -> Path:
        return self._path.with_name(f"{self._path.name}.worker{worker}.lock")

    def _open(self) -> sqlite3.Connection:
        # The other workers' group commits take the write lock for a few milliseconds each; wait for them.
        conn = sqlite3.connect(
            self._path, check_same_thread=False, isolation_level=None, timeout=_BUSY_TIMEOUT_MS / 1000
        )
        try:
            return self._prepare(conn)
        except BaseException:
            conn.close()
            raise

    def _open_for_checkpoints(self) -> sqlite3.Connection:
        return sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)

    def _prepare(self, conn: sqlite3.Connection) -> sqlite3.Connection:
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")  # only takes effect on a new file
        conn.execute("PRAGMA journal_mode = WAL")
        # NORMAL: a commit is in the WAL (the OS's page cache) before send returns, which a crash of the
        # process cannot undo; FULL adds the fsync that a crash of the machine needs.
        conn.execute(f"PRAGMA synchronous = {'FULL' if self._fsync else 'NORMAL'}")
        conn.execute(f"PRAGMA journal_size_limit = {_WAL_KEEP_BYTES}")
        conn.execute("PRAGMA wal_autocheckpoint = 0")  # the checkpointer's job
        conn.executescript(_SCHEMA)
        if "worker" not in [row[1] for row in conn.execute("PRAGMA table_info(messages)")]:
            # A journal of a version before workers: every message in it is worker 0's.
            try:
                conn.execute("ALTER TABLE messages ADD COLUMN worker INTEGER NOT NULL DEFAULT 0")
            except sqlite3.OperationalError as err:  # another worker starting at the same time added it
                if "duplicate column" not in str(err):
                    raise
        conn.execute("CREATE INDEX IF NOT EXISTS messages_by_worker ON messages (worker, id)")
        return conn

    def _adopt_orphans(self, conn: sqlite3.Connection) -> None:
        """Move the messages of every worker ``>= workers`` that no live process holds onto this worker."""
        orphans = [
            w for (w,) in conn.execute("SELECT DISTINCT worker FROM messages WHERE worker >= ?", (self._workers,))
        ]
        for orphan in orphans:
            lock = _lock(self._lock_path(orphan))
            if lock is None:  # a live process still is that worker (another server with more workers?)
                log.warning("worker %d of the bus journal %s is alive: not adopting its messages", orphan, self._path)
                continue
            try:
                adopted = _Journal.adopt(conn, orphan, self._worker, self._adopt_topic)
            finally:
                os.close(lock)
            log.warning(
                "adopted %d unacknowledged messages of worker %d (no longer running) from the bus journal %s",
                adopted,
                orphan,
                self._path,
            )

    async def _flush(self, operations: list[_Operation]) -> list[BaseException | None]:
        assert self._conn is not None, "the bus is not started"
        conn = self._conn
        sent_bytes = sum(len(op.value) for op in operations if op.kind == "send")
        try:
            written = self._write_inline(conn, operations, sent_bytes)
            if written is None:
                written = await self._on_thread(lambda: _Journal.write(conn, operations, self._worker))
        except BaseException:
            self._bytes -= sent_bytes
            raise
        if _Journal.needs_vacuum(conn):  # rare (every ~4 MB acknowledged), and slow: never on the loop
            try:
                await self._on_thread(lambda: _Journal.vacuum(conn))
            except sqlite3.Error as exc:  # the batch is committed regardless; the next flush tries again
                log.warning("giving free pages of the bus journal back failed: %s", exc)
        return self._committed(operations, written, sent_bytes)

    def _flush_at_once(self, operations: list[_Operation]) -> list[BaseException | None] | None:
        """The writer's ``inline``: an operation put while it is idle, committed in the caller's step if it can be
        (``_write_inline``); None sends it to ``_flush``, which also runs a vacuum when one is due."""
        conn = self._conn
        if conn is None or _Journal.needs_vacuum(conn):
            return None
        sent_bytes = sum(len(op.value) for op in operations if op.kind == "send")
        try:
            written = self._write_inline(conn, operations, sent_bytes)
        except BaseException:
            self._bytes -= sent_bytes
            raise
        return None if written is None else self._committed(operations, written, sent_bytes)

    def _committed(
        self, operations: list[_Operation], written: tuple[int, list[int]], sent_bytes: int
    ) -> list[BaseException | None]:
        """Publish what a commit journalled, and count what it freed."""
        freed, ids = written
        self._bytes -= freed
        self._checkpointer.written(sent_bytes + _WAL_BYTES_PER_COMMIT)
        # In commit order, so memory and journal agree on which group took a topic's backlog.
        sent = iter(ids)
        for op in operations:
            if op.kind == "send":
                self._topic(op.topic).publish(op.value, next(sent))
            elif op.kind == "join":
                self._topic(op.topic).join(op.group)
                self._groups.setdefault(op.topic, set()).add(op.group)
        return [None] * len(operations)

    def _write_inline(
        self, conn: sqlite3.Connection, operations: list[_Operation], sent_bytes: int
    ) -> tuple[int, list[int]] | None:
        """Commit a small batch on the event loop, as the store does its small batches of records; None (nothing
        written) when it must go to the journal's thread: a bigger batch, ``fsync`` (a commit then waits for the
        disk), or another worker's process holding the write lock.

        Why (docs/benchmarks.md, issue 12): on its thread a flush needs the GIL between its SQLite calls, and beside
        a busy event loop a thread waits for the GIL without bound (``bench/gil_starvation.py``): a warm invoke's
        send and ack took 11-14 loop rounds at the median and 20,000-37,000 (over a minute) at p99. On the loop the
        same commit is ~0.06 ms (WAL, ``synchronous=NORMAL``: no fsync). The journal's thread is idle here:
        ``_flush`` runs one batch at a time, and it is the only user of the connection once the bus has started.
        """
        if self._fsync or len(operations) > _INLINE_MAX_OPERATIONS or sent_bytes > _INLINE_MAX_BYTES:
            return None
        apply = partial(_Journal.apply, operations=operations, worker=self._worker)
        try:
            written = transaction(conn, apply, wait=False, busy_timeout_ms=_BUSY_TIMEOUT_MS)
        except Busy:
            return None
        self.inline_commits += 1
        return written


class _JournalledConsumer(MemoryConsumer):
    """A memory consumer whose acknowledgements are also committed to the journal."""

    def __init__(self, queue: asyncio.Queue[Delivery], bus: SqliteBus, topic: str, group: str) -> None:
        super().__init__(queue)
        self._bus = bus
        self._topic = topic
        self._group = group

    async def ack(self, delivery: Delivery) -> None:
        """``delivery`` is done; returns once the journal has forgotten it (for this group)."""
        await super().ack(delivery)
        # A failed write is logged by the writer; the message is then delivered again after a restart,
        # which at-least-once allows. The caller has nothing better to do with the error.
        with contextlib.suppress(Exception):
            await self._bus._ack(self._topic, self._group, delivery)


_WAL_KEEP_BYTES = 4 * 1024 * 1024
# A batch of operations up to these is committed on the event loop (``SqliteBus._write_inline``): a warm invoke's
# send or ack, or the few that meet in one group commit; a burst's bigger batches go to the journal's thread.
_INLINE_MAX_OPERATIONS = 8
_INLINE_MAX_BYTES = 64 * 1024
_BUSY_TIMEOUT_MS = 10_000  # the write connection's: other workers' commits hold the write lock for milliseconds
# What a commit adds to the WAL besides the messages: the pages it touches (the messages' and pending rows' leaves,
# an index leaf, the free list), ~4-5 of 4 KB for a small one. Counted towards the next checkpoint.
_WAL_BYTES_PER_COMMIT = 20 * 1024
_CHECKPOINT_BYTES = 16 * 1024 * 1024
# Free pages past this are given back to the file system (acknowledged messages leave holes).
_VACUUM_PAGES = 1024
_VACUUM_STEP_PAGES = 4096  # at most this many per commit (16 MB), so one vacuum never holds up the journal long

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY, topic TEXT NOT NULL, value BLOB NOT NULL, worker INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS groups (topic TEXT NOT NULL, grp TEXT NOT NULL, PRIMARY KEY (topic, grp)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pending (id INTEGER NOT NULL, grp TEXT NOT NULL, PRIMARY KEY (id, grp)) WITHOUT ROWID;
"""


@dataclass(frozen=True, slots=True)
class _Operation:
    kind: str  # "send" | "ack" | "join"
    topic: str
    id: int  # of the message acknowledged (a send's id is the rowid SQLite gives it)
    group: str = ""
    value: bytes = b""


@dataclass
class _Journal:
    """What a journal holds at start: groups, unacknowledged messages per group, the backlog."""

    groups: list[tuple[str, str]]
    pending: list[tuple[str, str, Delivery]]
    backlog: list[tuple[str, Delivery]]
    size: int

    @staticmethod
    def load(conn: sqlite3.Connection, worker: int) -> _Journal:
        # A message every group acknowledged is deleted in the same transaction as the last
        # acknowledgement; this only catches a journal written by a group that has since been renamed.
        conn.execute(
            "DELETE FROM messages WHERE worker = ? AND topic IN (SELECT topic FROM groups) "
            "AND id NOT IN (SELECT id FROM pending)",
            (worker,),
        )
        groups = conn.execute("SELECT topic, grp FROM groups ORDER BY topic, grp").fetchall()
        pending = [
            (topic, group, Delivery(bytes(value), partition=0, offset=id_))
            for id_, group, topic, value in conn.execute(
                "SELECT p.id, p.grp, m.topic, m.value FROM pending p JOIN messages m ON m.id = p.id "
                "WHERE m.worker = ? ORDER BY p.id",
                (worker,),
            )
        ]
        backlog = [
            (topic, Delivery(bytes(value), partition=0, offset=id_))
            for id_, topic, value in conn.execute(
                "SELECT id, topic, value FROM messages WHERE worker = ? AND topic NOT IN (SELECT topic FROM groups) "
                "ORDER BY id",
                (worker,),
            )
        ]
        (size,) = conn.execute(
            "SELECT COALESCE(SUM(LENGTH(value)), 0) FROM messages WHERE worker = ?", (worker,)
        ).fetchone()
        return _Journal(groups, pending, backlog, int(size))

    @staticmethod
    def adopt(conn: sqlite3.Connection, orphan: int, worker: int, adopt_topic: Callable[[str], str]) -> int:
        """Move the orphan worker's messages that some group has not acknowledged onto ``worker``, each as a
        new send to ``adopt_topic(topic)``, in one transaction; returns how many."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            rows = conn.execute(
                "SELECT id, topic, value FROM messages WHERE worker = ? AND "
                "(id IN (SELECT id FROM pending) OR topic NOT IN (SELECT topic FROM groups)) ORDER BY id",
                (orphan,),
            ).fetchall()
            conn.execute("DELETE FROM pending WHERE id IN (SELECT id FROM messages WHERE worker = ?)", (orphan,))
            conn.execute("DELETE FROM messages WHERE worker = ?", (orphan,))
            for _, topic, value in rows:
                _insert_message(conn, adopt_topic(topic), value, worker)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return len(rows)

    @staticmethod
    def write(conn: sqlite3.Connection, operations: list[_Operation], worker: int) -> tuple[int, list[int]]:
        """``apply`` in one transaction, waiting for the write lock if another worker holds it."""
        apply = partial(_Journal.apply, operations=operations, worker=worker)
        return transaction(conn, apply, busy_timeout_ms=_BUSY_TIMEOUT_MS)

    @staticmethod
    def apply(conn: sqlite3.Connection, operations: list[_Operation], worker: int) -> tuple[int, list[int]]:
        """Apply ``operations`` (in a transaction); returns the bytes of the messages it deleted and the ids
        given to the sends, in order."""
        freed = 0
        ids: list[int] = []
        for op in operations:
            if op.kind == "send":
                ids.append(_insert_message(conn, op.topic, op.value, worker))
            elif op.kind == "ack":
                conn.execute("DELETE FROM pending WHERE id = ? AND grp = ?", (op.id, op.group))
                gone = conn.execute(
                    "DELETE FROM messages WHERE id = ? AND NOT EXISTS (SELECT 1 FROM pending WHERE id = ?)",
                    (op.id, op.id),
                ).rowcount
                freed += len(op.value) if gone else 0
            elif not conn.execute("SELECT 1 FROM groups WHERE topic = ? AND grp = ?", (op.topic, op.group)).fetchone():
                # The first group of a topic takes its backlog, as in memory.py.
                if not conn.execute("SELECT 1 FROM groups WHERE topic = ?", (op.topic,)).fetchone():
                    conn.execute(
                        "INSERT INTO pending (id, grp) SELECT id, ? FROM messages WHERE topic = ? AND worker = ?",
                        (op.group, op.topic, worker),
                    )
                conn.execute("INSERT INTO groups (topic, grp) VALUES (?, ?)", (op.topic, op.group))
        return freed, ids

    @staticmethod
    def needs_vacuum(conn: sqlite3.Connection) -> bool:
        return int(conn.execute("PRAGMA freelist_count").fetchone()[0]) > _VACUUM_PAGES

    @staticmethod
    def vacuum(conn: sqlite3.Connection) -> None:
        """Give free pages back to the file system (acknowledged messages leave holes), a bounded step at a time."""
        # executescript, not execute: the pragma frees one page per step and execute steps once.
        conn.executescript(f"PRAGMA incremental_vacuum({_VACUUM_STEP_PAGES});")


def _insert_message(conn: sqlite3.Connection, topic: str, value: bytes, worker: int) -> int:
    """Journal a message pending for every group of its topic (none yet: it waits as backlog); its id."""
    cursor = conn.execute("INSERT INTO messages (topic, value, worker) VALUES (?, ?, ?)", (topic, value, worker))
    assert cursor.lastrowid is not None, "expected SQLite to give the message a rowid"
    conn.execute("INSERT INTO pending (id, grp) SELECT ?, grp FROM groups WHERE topic = ?", (cursor.lastrowid, topic))
    return cursor.lastrowid


def _lock(path: Path) -> int | None:
    """An exclusive advisory lock on ``path`` (a descriptor to close to release it), or None if held elsewhere."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd
