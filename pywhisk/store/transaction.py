"""One SQLite transaction, optionally without waiting for the write lock: what a commit on the event loop needs.

Standalone's two SQLite writers (the store's activation records, ``pywhisk.store.sqlite``, and the bus journal,
``pywhisk.bus.sqlite``) commit small batches on the event loop rather than on their threads: with WAL and
``synchronous=NORMAL`` such a commit costs ~0.06-0.3 ms of CPU and no fsync, less than the thread hand-offs it
saves, and beside a busy loop a thread waits for the GIL without bound (``bench/gil_starvation.py``;
docs/benchmarks.md, issue 12). On the loop
a commit must never wait out ``busy_timeout`` for another process's write lock (standalone workers share files),
so ``wait=False`` raises ``Busy`` at once instead and the caller hands the batch to its thread.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class Busy(Exception):
    """The write lock is held by another connection (another standalone worker's process): not committed."""


def transaction(
    conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T], *, wait: bool = True, busy_timeout_ms: int = 5000
) -> T:
    """``fn`` in one ``BEGIN IMMEDIATE`` transaction, rolled back if it raises. ``wait=False``: ``Busy`` at once,
    nothing written, if another connection holds the write lock; ``busy_timeout_ms`` is the connection's own,
    restored afterwards."""
    if wait:
        conn.execute("BEGIN IMMEDIATE")
    else:
        _begin_without_waiting(conn, busy_timeout_ms)
    try:
        result = fn(conn)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return result


def _begin_without_waiting(conn: sqlite3.Connection, busy_timeout_ms: int) -> None:
    conn.execute("PRAGMA busy_timeout = 0")
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as error:
        if error.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY:
            raise Busy from error
        raise
    finally:
        conn.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
