"""The SQLite store (embedded, so real): the shared Store contract, plus what only a file-backed store has."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pywhisk.identity import GUEST_KEY, GUEST_UUID, guest_subject
from pywhisk.store import ActivationQuery
from pywhisk.store.sqlite import SqliteStore
from tests.store_contract import StoreContract, make_action, make_activation, record_id

pytestmark = pytest.mark.unit


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(tmp_path / "store.sqlite3")
    await store.start()
    yield store
    await store.close()


class TestSqliteStoreContract(StoreContract):
    """Every test of tests/store_contract.py, against a fresh SQLite file (this module's ``store``)."""


# durability ----------------------------------------------------------------------------------------


async def test_data_survives_close_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "store.sqlite3"
    first = SqliteStore(path)
    await first.start()
    stored = await first.put_action(make_action(), expected_rev=None)
    await first.put_subject(guest_subject())
    await asyncio.gather(*(first.put_activation(make_activation(record_id(n), start=n)) for n in range(20)))
    await first.close()

    second = SqliteStore(path)
    await second.start()
    try:
        action = await second.get_action("guest", "hello")
        assert action is not None and action.rev == stored.rev
        guest = await second.get_subject_by_uuid(GUEST_UUID)
        assert guest is not None and guest.subject == "guest"
        assert await second.count_activations(ActivationQuery(namespace="guest")) == 20
        # The revision chain continues where it left off.
        updated = await second.put_action(make_action(version="0.0.2"), expected_rev=stored.rev)
        assert updated.rev is not None and updated.rev.startswith("2-")
    finally:
        await second.close()


async def test_a_store_from_before_hashed_keys_loses_its_clear_text_subjects_table(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE subjects (uuid TEXT PRIMARY KEY, subject TEXT, namespace TEXT, doc BLOB)")
        conn.execute("INSERT INTO subjects VALUES (?, 'guest', 'guest', ?)", (GUEST_UUID, f'{{"key": "{GUEST_KEY}"}}'))
    store = SqliteStore(path)
    await store.start()
    await store.close()

    with sqlite3.connect(path) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "subjects" not in tables and "subject_keys" in tables
    assert GUEST_KEY.encode() not in path.read_bytes()
