"""WAL checkpoints apart from the writes, for the SQLite store and the standalone bus journal.

In WAL mode SQLite checkpoints inside a commit by default: once the WAL holds 1,000 pages, the commit that crosses
it also copies the WAL into the database file before it returns. On this VM that made one commit in ~200 take
10-16 ms instead of ~0.2 ms (docs/benchmarks.md, issue 15): for the bus journal, an activation's ``send`` waited
for it, and so did its ``waitTime``. A checkpoint needs no write lock, so it can run on a connection and thread of
its own while the writer goes on: the writer's connection turns ``wal_autocheckpoint`` off and reports what it
wrote here, and one PASSIVE checkpoint at a time runs once enough has been written since the last.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

# Bytes written since the last checkpoint before the next one starts (SQLite's own default is 1,000 pages).
CHECKPOINT_BYTES = 4 * 1024 * 1024


class WalCheckpointer:
    """PASSIVE checkpoints of one database file, on a thread and connection of their own (module docstring).

    ``connect`` opens the checkpoint's connection (on its thread). The writer calls :meth:`written` after each
    write with about how many bytes it wrote; a checkpoint starts when ``every_bytes`` have been written since the
    last one started and none is running. ``checkpoint`` is the one running or last run, if any.
    """

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        *,
        name: str,
        log: logging.Logger,
        every_bytes: int = CHECKPOINT_BYTES,
    ) -> None:
        self._connect = connect
        self._log = log
        self.every_bytes = every_bytes
        self._thread = ThreadPoolExecutor(1, thread_name_prefix=name)
        self._conn: sqlite3.Connection | None = None
        self._written = 0  # since the last checkpoint started
        self.checkpoint: asyncio.Future[None] | None = None

    async def start(self) -> None:
        self._conn = await asyncio.get_running_loop().run_in_executor(self._thread, self._connect)

    async def close(self) -> None:
        """Wait for the checkpoint running, then close the connection (the writer's, closed last, checkpoints)."""
        if self.checkpoint is not None:
            await asyncio.wait([self.checkpoint])
        conn, self._conn = self._conn, None
        if conn is not None:
            await asyncio.get_running_loop().run_in_executor(self._thread, conn.close)
        self._thread.shutdown(wait=True)

    def written(self, nbytes: int) -> None:
        """Count ``nbytes`` towards the next checkpoint, and start it once there are enough (one at a time)."""
        self._written += nbytes
        if self._written < self.every_bytes or (self.checkpoint is not None and not self.checkpoint.done()):
            return
        conn = self._conn
        if conn is None:
            return
        self._written = 0
        log = self._log

        def checkpoint() -> None:
            # PASSIVE: copies what no reader still needs, without waiting for readers or taking the write lock.
            try:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error as exc:  # e.g. busy with another process's checkpoint: the next one catches up
                log.debug("checkpoint skipped: %s", exc)

        self.checkpoint = asyncio.get_running_loop().run_in_executor(self._thread, checkpoint)
