"""The Store contract: behaviours every backend shares, imported by each backend's test module
(tests/unit/test_sqlite_store.py, tests/integration/test_couchdb_store.py), which provides the ``store``
and ``history`` fixtures. Backend-specific behaviour stays in those modules.
"""

from __future__ import annotations

import pytest

from pywhisk.activation import Activation, ActivationResponse, StatusCode
from pywhisk.entities import Action, Exec, KeyValue, Limits
from pywhisk.errors import ConcurrentModification
from pywhisk.identity import GUEST_KEY, GUEST_UUID, Subject, SubjectNamespace, guest_subject, hash_key, verify_key
from pywhisk.store import ActivationQuery, Store


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


async def test_put_then_get_returns_the_action_with_a_revision(store: Store) -> None:
    action = _action(parameters=[KeyValue(key="a", value=1, init=True)], limits=Limits(memory=128))
    stored = await store.put_action(action, expected_rev=None)

    fetched = await store.get_action("guest", "hello")

    assert stored.rev is not None and stored.rev.startswith("1-")
    assert fetched is not None
    assert fetched.rev == stored.rev
    assert fetched.to_api() == action.to_api()


async def test_get_of_a_missing_action_is_none(store: Store) -> None:
    assert await store.get_action("guest", "nope") is None


async def test_update_with_the_current_revision_bumps_the_generation(store: Store) -> None:
    first = await store.put_action(_action(), expected_rev=None)
    second = await store.put_action(_action(version="0.0.2"), expected_rev=first.rev)

    fetched = await store.get_action("guest", "hello")
    assert second.rev is not None and second.rev.startswith("2-")
    assert fetched is not None and fetched.rev == second.rev and fetched.version == "0.0.2"


async def test_update_with_a_stale_revision_is_a_concurrent_modification(store: Store) -> None:
    first = await store.put_action(_action(), expected_rev=None)
    await store.put_action(_action(version="0.0.2"), expected_rev=first.rev)

    with pytest.raises(ConcurrentModification) as caught:
        await store.put_action(_action(version="0.0.3"), expected_rev=first.rev)
    assert caught.value.status_code == 409
    assert caught.value.message == "Concurrent modification to resource detected."
    fetched = await store.get_action("guest", "hello")
    assert fetched is not None and fetched.version == "0.0.2"


async def test_update_of_a_deleted_action_is_a_concurrent_modification(store: Store) -> None:
    first = await store.put_action(_action(), expected_rev=None)
    await store.delete_action("guest", "hello")
    with pytest.raises(ConcurrentModification):
        await store.put_action(_action(), expected_rev=first.rev)


async def test_same_name_in_two_namespaces_are_two_actions(store: Store) -> None:
    await store.put_action(_action(namespace="guest"), expected_rev=None)
    await store.put_action(_action(namespace="other", version="2.0.0"), expected_rev=None)

    guest = await store.get_action("guest", "hello")
    other = await store.get_action("other", "hello")
    assert guest is not None and guest.version == "0.0.1"
    assert other is not None and other.version == "2.0.0"
    await store.delete_action("other", "hello")
    assert await store.get_action("guest", "hello") is not None


def _subject(name: str, *namespaces: tuple[str, str]) -> Subject:
    return Subject(
        subject=name,
        namespaces=[SubjectNamespace(name=ns, uuid=uuid, key_hash=hash_key("k" * 64)) for ns, uuid in namespaces],
    )


async def test_the_guest_is_stored_with_a_hash_that_verifies_only_its_key(store: Store) -> None:
    await store.put_subject(guest_subject())
    stored = await store.get_subject_by_uuid(GUEST_UUID)
    assert stored is not None
    entry = stored.namespace_for_uuid(GUEST_UUID)
    assert entry is not None and GUEST_KEY not in entry.key_hash
    assert verify_key(GUEST_KEY, entry.key_hash)
    assert not verify_key("x" * 64, entry.key_hash)


async def test_activation_round_trips(store: Store) -> None:
    record = _activation(_id(1), start=1000)
    await store.put_activation(record)
    assert await store.get_activation("guest", _id(1)) == record


async def test_activation_of_another_namespace_is_not_found(store: Store) -> None:
    await store.put_activation(_activation(_id(1), start=1000))
    assert await store.get_activation("other", _id(1)) is None
    assert await store.get_activation("guest", _id(2)) is None


async def test_second_put_of_the_same_activation_id_is_ignored(store: Store) -> None:
    await store.put_activation(_activation(_id(1), start=1000, result={"first": True}))
    await store.put_activation(_activation(_id(1), start=2000, result={"second": True}))

    fetched = await store.get_activation("guest", _id(1))
    assert fetched is not None and fetched.response.result == {"first": True}
    assert await store.count_activations(ActivationQuery(namespace="guest")) == 1


async def _starts(store: Store, **query: object) -> list[int]:
    return [
        a.start for a in await store.list_activations(ActivationQuery.model_validate({"namespace": "guest", **query}))
    ]


async def test_list_activations_is_newest_first_and_per_namespace(history: Store) -> None:
    assert await _starts(history) == [1900, 1800, 1700, 1600, 1500, 1400, 1300, 1200, 1100, 1000]


async def test_list_activations_by_name(history: Store) -> None:
    assert await _starts(history, name="hello") == [1800, 1600, 1400, 1200, 1000]
    assert await _starts(history, name="missing") == []
