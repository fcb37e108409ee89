"""The SQLite store (embedded, so real): actions with revisions, identities, activation records."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pywhisk.activation import Activation, ActivationResponse, StatusCode
from pywhisk.entities import Action, Exec, KeyValue, Limits
from pywhisk.errors import ConcurrentModification, Conflict
from pywhisk.identity import (
    GUEST_KEY,
    GUEST_UUID,
    NamespaceLimits,
    Subject,
    SubjectNamespace,
    guest_subject,
    hash_key,
    verify_key,
)
from pywhisk.store import ActivationQuery, Store
from pywhisk.store.sqlite import SqliteStore

pytestmark = pytest.mark.unit


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(tmp_path / "store.sqlite3")
    await store.start()
    yield store
    await store.close()


def _action(name: str = "hello", namespace: str = "guest", updated: int = 1_000, **fields: object) -> Action:
    return Action.model_validate(
        {
            "namespace": namespace,
            "name": name,
            "exec": Exec(kind="wasm:wasi", code="ZWNobw==", binary=True),
            "updated": updated,
            **fields,
        }
    )


def _activation(
    activation_id: str, start: int, name: str = "hello", namespace: str = "guest", result: object = None
) -> Activation:
    return Activation(
        activationId=activation_id,
        namespace=namespace,
        name=name,
        subject=namespace,
        start=start,
        end=start + 5,
        duration=5,
        response=ActivationResponse.of(StatusCode.SUCCESS, result if result is not None else {"n": start}),
        logs=[f"line {start}"],
        annotations=[KeyValue(key="path", value=f"{namespace}/{name}")],
    )


def _id(n: int) -> str:
    return f"{n:032x}"


def test_sqlite_store_satisfies_the_store_seam(tmp_path: Path) -> None:
    assert isinstance(SqliteStore(tmp_path / "x.sqlite3"), Store)


# actions ----------------------------------------------------------------------------------------


async def test_put_then_get_returns_the_action_with_a_revision(store: SqliteStore) -> None:
    action = _action(parameters=[KeyValue(key="a", value=1, init=True)], limits=Limits(memory=128))
    stored = await store.put_action(action, expected_rev=None)

    fetched = await store.get_action("guest", "hello")

    assert stored.rev is not None and stored.rev.startswith("1-")
    assert fetched is not None
    assert fetched.rev == stored.rev
    assert fetched.to_api() == action.to_api()


async def test_get_of_a_missing_action_is_none(store: SqliteStore) -> None:
    assert await store.get_action("guest", "nope") is None


async def test_create_over_an_existing_action_is_a_conflict(store: SqliteStore) -> None:
    await store.put_action(_action(), expected_rev=None)
    with pytest.raises(Conflict) as caught:
        await store.put_action(_action(version="9.9.9"), expected_rev=None)
    assert caught.value.status_code == 409
    assert caught.value.message == "resource already exists"
    fetched = await store.get_action("guest", "hello")
    assert fetched is not None and fetched.version == "0.0.1"


async def test_update_with_the_current_revision_bumps_the_generation(store: SqliteStore) -> None:
    first = await store.put_action(_action(), expected_rev=None)
    second = await store.put_action(_action(version="0.0.2"), expected_rev=first.rev)

    fetched = await store.get_action("guest", "hello")
    assert second.rev is not None and second.rev.startswith("2-")
    assert fetched is not None and fetched.rev == second.rev and fetched.version == "0.0.2"


async def test_update_with_a_stale_revision_is_a_concurrent_modification(store: SqliteStore) -> None:
    first = await store.put_action(_action(), expected_rev=None)
    await store.put_action(_action(version="0.0.2"), expected_rev=first.rev)

    with pytest.raises(ConcurrentModification) as caught:
        await store.put_action(_action(version="0.0.3"), expected_rev=first.rev)
    assert caught.value.status_code == 409
    assert caught.value.message == "Concurrent modification to resource detected."
    fetched = await store.get_action("guest", "hello")
    assert fetched is not None and fetched.version == "0.0.2"


async def test_update_of_a_deleted_action_is_a_concurrent_modification(store: SqliteStore) -> None:
    first = await store.put_action(_action(), expected_rev=None)
    await store.delete_action("guest", "hello")
    with pytest.raises(ConcurrentModification):
        await store.put_action(_action(), expected_rev=first.rev)


async def test_delete_returns_the_action_and_removes_it(store: SqliteStore) -> None:
    await store.put_action(_action(), expected_rev=None)

    deleted = await store.delete_action("guest", "hello")

    assert deleted is not None and deleted.name == "hello"
    assert await store.get_action("guest", "hello") is None
    assert await store.delete_action("guest", "hello") is None


async def test_same_name_in_two_namespaces_are_two_actions(store: SqliteStore) -> None:
    await store.put_action(_action(namespace="guest"), expected_rev=None)
    await store.put_action(_action(namespace="other", version="2.0.0"), expected_rev=None)

    guest = await store.get_action("guest", "hello")
    other = await store.get_action("other", "hello")
    assert guest is not None and guest.version == "0.0.1"
    assert other is not None and other.version == "2.0.0"
    await store.delete_action("other", "hello")
    assert await store.get_action("guest", "hello") is not None


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


def _subject(name: str, *namespaces: tuple[str, str]) -> Subject:
    return Subject(
        subject=name,
        namespaces=[SubjectNamespace(name=ns, uuid=uuid, key_hash=hash_key("k" * 64)) for ns, uuid in namespaces],
    )


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


async def test_the_guest_is_stored_with_a_hash_that_verifies_only_its_key(store: SqliteStore) -> None:
    await store.put_subject(guest_subject())
    stored = await store.get_subject_by_uuid(GUEST_UUID)
    assert stored is not None
    entry = stored.namespace_for_uuid(GUEST_UUID)
    assert entry is not None and GUEST_KEY not in entry.key_hash
    assert verify_key(GUEST_KEY, entry.key_hash)
    assert not verify_key("x" * 64, entry.key_hash)


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


async def test_activation_round_trips(store: SqliteStore) -> None:
    record = _activation(_id(1), start=1000)
    await store.put_activation(record)
    assert await store.get_activation("guest", _id(1)) == record


async def test_activation_of_another_namespace_is_not_found(store: SqliteStore) -> None:
    await store.put_activation(_activation(_id(1), start=1000))
    assert await store.get_activation("other", _id(1)) is None
    assert await store.get_activation("guest", _id(2)) is None


async def test_second_put_of_the_same_activation_id_is_ignored(store: SqliteStore) -> None:
    await store.put_activation(_activation(_id(1), start=1000, result={"first": True}))
    await store.put_activation(_activation(_id(1), start=2000, result={"second": True}))

    fetched = await store.get_activation("guest", _id(1))
    assert fetched is not None and fetched.response.result == {"first": True}
    assert await store.count_activations(ActivationQuery(namespace="guest")) == 1


@pytest.fixture
async def history(store: SqliteStore) -> SqliteStore:
    """Ten records of two actions (hello at even starts, other at odd), plus one of another namespace."""
    for n in range(10):
        await store.put_activation(_activation(_id(n), start=1000 + n * 100, name="hello" if n % 2 == 0 else "other"))
    await store.put_activation(_activation(_id(99), start=5000, namespace="someone"))
    return store


async def _starts(store: SqliteStore, **query: object) -> list[int]:
    return [a.start for a in await store.list_activations(ActivationQuery(namespace="guest", **query))]


async def test_list_activations_is_newest_first_and_per_namespace(history: SqliteStore) -> None:
    assert await _starts(history) == [1900, 1800, 1700, 1600, 1500, 1400, 1300, 1200, 1100, 1000]


async def test_list_activations_by_name(history: SqliteStore) -> None:
    assert await _starts(history, name="hello") == [1800, 1600, 1400, 1200, 1000]
    assert await _starts(history, name="missing") == []


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
