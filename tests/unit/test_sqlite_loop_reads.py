"""Standalone's point reads on the request path run on the event loop (pywhisk/store/sqlite.py ``_read_at_once``).

Beside a busy event loop a thread waits for the GIL without bound (``bench/gil_starvation.py``): a read queued for
the reader thread held a warm invoke for minutes, each time the entity cache's or the identity cache's entry for it
had expired (docs/benchmarks.md, issue 12). Here the reader thread is held by another read: what must not hop to it
is read regardless, and a big document (an action's code) still goes to it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from pywhisk.entities import Exec
from pywhisk.store import sqlite as sqlite_store
from pywhisk.store.sqlite import SqliteStore
from tests.store_contract import make_action

pytestmark = pytest.mark.unit


@contextmanager
def reader_thread_held(store: SqliteStore) -> Iterator[None]:
    """The reader thread busy with something else (a long activation list) until the block ends."""
    started, release = threading.Event(), threading.Event()

    def held() -> None:
        started.set()
        release.wait(10)

    store._reader.submit(held)
    started.wait(10)
    try:
        yield
    finally:
        release.set()


async def test_a_small_action_is_read_on_the_loop(store: SqliteStore) -> None:
    await store.put_action(make_action("hello"), expected_rev=None)

    with reader_thread_held(store):
        action = await asyncio.wait_for(store.get_action("guest", "hello"), 5)
        missing = await asyncio.wait_for(store.get_action("guest", "nobody"), 5)

    assert action is not None and action.name == "hello"
    assert missing is None


async def test_a_big_action_is_read_on_the_reader_thread(store: SqliteStore) -> None:
    code = "x" * (sqlite_store._LOOP_READ_MAX_BYTES + 1)
    await store.put_action(make_action("big", exec=Exec(kind="python:3", code=code)), expected_rev=None)

    with reader_thread_held(store):
        read = asyncio.ensure_future(store.get_action("guest", "big"))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert not read.done(), "a big document waits for the reader thread, never read on the loop"
    action = await asyncio.wait_for(read, 5)
    assert action is not None and action.exec.code == code
