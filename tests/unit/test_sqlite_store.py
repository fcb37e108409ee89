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


# list summaries ------------------------------------------------------------------------------------

_SCHEMA_BEFORE_SUMMARIES = """
CREATE TABLE entities (
    namespace TEXT NOT NULL, name TEXT NOT NULL, type TEXT NOT NULL, rev TEXT NOT NULL,
    updated INTEGER NOT NULL, doc BLOB NOT NULL, PRIMARY KEY (namespace, name));
CREATE INDEX entities_by_type_updated ON entities (namespace, type, updated DESC);
CREATE TABLE activations (
    id TEXT PRIMARY KEY, namespace TEXT NOT NULL, name TEXT NOT NULL, start INTEGER NOT NULL, doc BLOB NOT NULL);
CREATE INDEX activations_by_start ON activations (namespace, start DESC);
CREATE INDEX activations_by_name_start ON activations (namespace, name, start DESC);
"""


async def test_a_store_from_before_list_summaries_gets_them_for_every_stored_document(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    actions = [make_action(name=f"a{n}", updated=100) for n in range(3)]  # one millisecond: rowid orders them
    records = [make_activation(record_id(n), start=1000) for n in range(3)]
    with sqlite3.connect(path) as conn:
        conn.executescript(_SCHEMA_BEFORE_SUMMARIES)
        for action in actions:
            row = (action.namespace, action.name, "action", "1-abc", action.updated, action.model_dump_json())
            conn.execute("INSERT INTO entities VALUES (?, ?, ?, ?, ?, ?)", row)
        for record in records:
            row = (record.activationId, record.namespace, record.name, record.start, record.model_dump_json().encode())
            conn.execute("INSERT INTO activations VALUES (?, ?, ?, ?, ?)", row)
    conn.close()

    store = SqliteStore(path)
    await store.start()
    try:
        listed = await store.list_actions("guest", limit=10, skip=0)
        summaries = await store.list_activation_summaries(ActivationQuery(namespace="guest"))
        fetched = await store.get_action("guest", "a0")
    finally:
        await store.close()

    assert [a.to_api() for a in listed] == [a.summary() for a in reversed(actions)]
    assert [s.to_api() for s in summaries] == [r.summary() for r in reversed(records)]
    assert fetched is not None and fetched.rev == "1-abc" and fetched.exec.code == actions[0].exec.code
    with sqlite3.connect(path) as conn:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(activations)")]
        indexes = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    conn.close()
    assert columns.index("summary") < columns.index("doc")  # read without walking the document's pages
    assert {"activations_by_start", "activations_by_name_start", "entities_by_type_updated"} <= indexes
