"""The SQLite store (embedded, so real): actions with revisions, identities, activation records."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pywhisk.errors import Conflict
from pywhisk.identity import (
    GUEST_KEY,
    GUEST_UUID,
    NamespaceLimits,
    guest_subject,
)
from pywhisk.store import ActivationQuery, Store
from pywhisk.store.sqlite import SqliteStore
from tests.store_contract import (  # noqa: F401  (the shared contract tests run against this store)
    _action,
    _activation,
    _id,
    _starts,
    _subject,
    test_activation_of_another_namespace_is_not_found,
    test_activation_round_trips,
    test_get_of_a_missing_action_is_none,
    test_list_activations_by_name,
    test_list_activations_is_newest_first_and_per_namespace,
    test_put_then_get_returns_the_action_with_a_revision,
    test_same_name_in_two_namespaces_are_two_actions,
    test_second_put_of_the_same_activation_id_is_ignored,
    test_the_guest_is_stored_with_a_hash_that_verifies_only_its_key,
    test_update_of_a_deleted_action_is_a_concurrent_modification,
    test_update_with_a_stale_revision_is_a_concurrent_modification,
    test_update_with_the_current_revision_bumps_the_generation,
)

pytestmark = pytest.mark.unit


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(tmp_path / "store.sqlite3")
    await store.start()
    yield store
    await store.close()


def test_sqlite_store_satisfies_the_store_seam(tmp_path: Path) -> None:
    assert isinstance(SqliteStore(tmp_path / "x.sqlite3"), Store)


# actions ----------------------------------------------------------------------------------------


async def test_create_over_an_existing_action_is_a_conflict(store: SqliteStore) -> None:
    await store.put_action(_action(), expected_rev=None)
    with pytest.raises(Conflict) as caught:
        await store.put_action(_action(version="9.9.9"), expected_rev=None)
    assert caught.value.status_code == 409
    assert caught.value.message == "resource already exists"
    fetched = await store.get_action("guest", "hello")
    assert fetched is not None and fetched.version == "0.0.1"


async def test_delete_returns_the_action_and_removes_it(store: SqliteStore) -> None:
    await store.put_action(_action(), expected_rev=None)

    deleted = await store.delete_action("guest", "hello")

    assert deleted is not None and deleted.name == "hello"
    assert await store.get_action("guest", "hello") is None
    assert await store.delete_action("guest", "hello") is None


async def test_list_actions_is_newest_updated_first_with_limit_and_skip(store: SqliteStore) -> None:
    for i, updated in enumerate([300, 100, 500, 200, 400]):
        await store.put_action(_action(name=f"a{i}", updated=updated), expected_rev=None)
    await store.put_action(_action(name="elsewhere", namespace="other", updated=999), expected_rev=None)

    everything = await store.list_actions("guest", limit=200, skip=0)
    page = await store.list_actions("guest", limit=2, skip=1)

    assert [a.updated for a in everything] == [500, 400, 300, 200, 100]
    assert [a.name for a in page] == ["a4", "a0"]
    assert all(a.rev for a in everything)
    assert await store.list_actions("guest", limit=10, skip=5) == []
    assert await store.count_actions("guest") == 5
    assert await store.count_actions("other") == 1
    assert await store.count_actions("empty") == 0


# subjects and limits -----------------------------------------------------------------------------


async def test_subject_is_found_by_name_and_by_each_key_uuid(store: SqliteStore) -> None:
    ada = _subject(
        "ada-lovelace",
        ("ada", "11111111-0000-4000-8000-000000000001"),
        ("team", "11111111-0000-4000-8000-000000000002"),
    )
    await store.put_subject(ada)

    assert await store.get_subject("ada-lovelace") == ada
    assert await store.get_subject_by_uuid("11111111-0000-4000-8000-000000000002") == ada
    assert await store.get_subject_by_uuid("00000000-0000-0000-0000-000000000000") is None
    assert await store.get_subject("nobody") is None


async def test_put_subject_replaces_its_namespaces(store: SqliteStore) -> None:
    await store.put_subject(_subject("ada-lovelace", ("ada", "11111111-0000-4000-8000-000000000001")))
    await store.put_subject(_subject("ada-lovelace", ("team", "11111111-0000-4000-8000-000000000002")))

    assert await store.get_subject_by_uuid("11111111-0000-4000-8000-000000000001") is None
    fetched = await store.get_subject("ada-lovelace")
    assert fetched is not None and [ns.name for ns in fetched.namespaces] == ["team"]


async def test_a_uuid_of_another_subject_is_a_conflict(store: SqliteStore) -> None:
    await store.put_subject(_subject("ada-lovelace", ("ada", "11111111-0000-4000-8000-000000000001")))
    with pytest.raises(Conflict):
        await store.put_subject(_subject("grace-hopper", ("grace", "11111111-0000-4000-8000-000000000001")))
    assert await store.get_subject("grace-hopper") is None


async def test_list_and_delete_subjects(store: SqliteStore) -> None:
    await store.put_subject(_subject("grace-hopper", ("grace", "11111111-0000-4000-8000-000000000003")))
    await store.put_subject(
        _subject(
            "ada-lovelace",
            ("ada", "11111111-0000-4000-8000-000000000001"),
            ("team", "11111111-0000-4000-8000-000000000002"),
        )
    )

    assert [s.subject for s in await store.list_subjects()] == ["ada-lovelace", "grace-hopper"]
    assert [s.subject for s in await store.list_subjects("team")] == ["ada-lovelace"]
    deleted = await store.delete_subject("ada-lovelace")
    assert deleted is not None and len(deleted.namespaces) == 2
    assert await store.delete_subject("ada-lovelace") is None
    assert await store.get_subject_by_uuid("11111111-0000-4000-8000-000000000002") is None


async def test_limits_set_merge_free_and_delete(store: SqliteStore) -> None:
    assert await store.get_limits("team") is None
    await store.put_limits("team", NamespaceLimits(invocationsPerMinute=5))
    assert await store.get_limits("team") == NamespaceLimits(invocationsPerMinute=5)
    await store.put_limits("team", NamespaceLimits(invocationsPerMinute=5, concurrentInvocations=0))
    assert await store.get_limits("team") == NamespaceLimits(invocationsPerMinute=5, concurrentInvocations=0)
    assert await store.delete_limits("team") is True
    assert await store.delete_limits("team") is False
    assert await store.get_limits("team") is None


# activations ------------------------------------------------------------------------------------


@pytest.fixture
async def history(store: SqliteStore) -> SqliteStore:
    """Ten records of two actions (hello at even starts, other at odd), plus one of another namespace."""
    for n in range(10):
        await store.put_activation(_activation(_id(n), start=1000 + n * 100, name="hello" if n % 2 == 0 else "other"))
    await store.put_activation(_activation(_id(99), start=5000, namespace="someone"))
    return store


async def test_list_activations_since_and_upto_are_inclusive_epoch_ms(history: SqliteStore) -> None:
    assert await _starts(history, since=1500) == [1900, 1800, 1700, 1600, 1500]
    assert await _starts(history, upto=1200) == [1200, 1100, 1000]
    assert await _starts(history, since=1300, upto=1500, name="other") == [1500, 1300]


async def test_list_activations_limit_and_skip(history: SqliteStore) -> None:
    assert await _starts(history, limit=3) == [1900, 1800, 1700]
    assert await _starts(history, limit=3, skip=2) == [1700, 1600, 1500]
    assert await _starts(history, limit=5, skip=8) == [1100, 1000]
    assert await _starts(history, skip=10) == []


async def test_count_activations_ignores_limit_and_skip(history: SqliteStore) -> None:
    assert await history.count_activations(ActivationQuery(namespace="guest", limit=1, skip=3)) == 10
    assert await history.count_activations(ActivationQuery(namespace="guest", name="other")) == 5
    assert await history.count_activations(ActivationQuery(namespace="guest", since=1850)) == 1
    assert await history.count_activations(ActivationQuery(namespace="nobody")) == 0


async def test_500_concurrent_activation_writes_are_all_stored(store: SqliteStore) -> None:
    records = [_activation(_id(n), start=n) for n in range(500)]

    await asyncio.gather(*(store.put_activation(r) for r in records))

    assert await store.count_activations(ActivationQuery(namespace="guest")) == 500
    listed = await store.list_activations(ActivationQuery(namespace="guest", limit=500))
    assert {a.activationId for a in listed} == {r.activationId for r in records}


async def test_concurrent_writes_of_duplicate_ids_make_one_record_each(store: SqliteStore) -> None:
    records = [_activation(_id(n % 50), start=n) for n in range(200)]
    await asyncio.gather(*(store.put_activation(r) for r in records))
    assert await store.count_activations(ActivationQuery(namespace="guest")) == 50


# durability -------------------------------------------------------------------------------------


async def test_data_survives_close_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "store.sqlite3"
    first = SqliteStore(path)
    await first.start()
    stored = await first.put_action(_action(), expected_rev=None)
    await first.put_subject(guest_subject())
    await asyncio.gather(*(first.put_activation(_activation(_id(n), start=n)) for n in range(20)))
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
        updated = await second.put_action(_action(version="0.0.2"), expected_rev=stored.rev)
        assert updated.rev is not None and updated.rev.startswith("2-")
    finally:
        await second.close()


async def test_a_store_from_before_hashed_keys_loses_its_clear_text_subjects_table(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    import sqlite3

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
