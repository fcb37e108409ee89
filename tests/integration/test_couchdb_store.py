"""The CouchDB store against a real CouchDB-API server (pouchdb-server from deploy/local/couchdb.sh).

The shared Store contract (tests/store_contract.py) and what the SQLite store is also tested for, plus what only a
networked store has: batched writes, databases created on first start, credentials, and clear errors
when the server is not there.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pywhisk.entities import Action
from pywhisk.errors import ConcurrentModification, Conflict
from pywhisk.identity import (
    NamespaceLimits,
)
from pywhisk.store import ActivationQuery, Store
from pywhisk.store.couchdb import CouchDBError, CouchDBUnavailable, CouchStore
from tests.conftest import free_port
from tests.couchdb_service import (  # noqa: F401
    couchdb_down,
    couchdb_up,
    couchdb_url,
    drop_databases,
    unique_db_prefix,
)
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

pytestmark = pytest.mark.integration

DAY_MS = 86_400_000


async def _drop(url: str, prefix: str) -> None:
    await asyncio.to_thread(drop_databases, url, prefix)


async def _all_dbs(url: str) -> list[str]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        return list((await client.get("/_all_dbs")).json())


@pytest.fixture
async def store(couchdb_url: str) -> AsyncIterator[CouchStore]:  # noqa: F811
    prefix = unique_db_prefix()
    store = CouchStore(couchdb_url, db_prefix=prefix)
    await store.start()
    yield store
    await store.close()
    await _drop(couchdb_url, prefix)


def test_couch_store_satisfies_the_store_seam() -> None:
    assert isinstance(CouchStore("http://127.0.0.1:5984"), Store)


def test_a_prefix_that_is_not_a_database_name_is_refused() -> None:
    with pytest.raises(ValueError, match="db_prefix"):
        CouchStore("http://127.0.0.1:5984", db_prefix="Upper_")


# lifecycle --------------------------------------------------------------------------------------


async def test_first_start_creates_the_databases_and_a_second_start_reuses_them(couchdb_url: str) -> None:  # noqa: F811
    prefix = unique_db_prefix()
    first = CouchStore(couchdb_url, db_prefix=prefix)
    try:
        assert not [db for db in await _all_dbs(couchdb_url) if db.startswith(prefix)]
        await first.start()
        assert sorted(db for db in await _all_dbs(couchdb_url) if db.startswith(prefix)) == sorted(first.databases)
        stored = await first.put_action(_action(), expected_rev=None)
        await first.put_activation(_activation(_id(1), start=1000))
        await first.close()

        second = CouchStore(couchdb_url, db_prefix=prefix)
        await second.start()
        try:
            action = await second.get_action("guest", "hello")
            assert action is not None and action.rev == stored.rev
            assert await second.count_activations(ActivationQuery(namespace="guest")) == 1
            updated = await second.put_action(_action(version="0.0.2"), expected_rev=stored.rev)
            assert updated.rev is not None and updated.rev.startswith("2-")
        finally:
            await second.close()
    finally:
        await _drop(couchdb_url, prefix)


async def test_an_unreachable_server_fails_fast_with_its_url_and_no_password() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    store = CouchStore(f"http://admin:hunter2@{url.removeprefix('http://')}", connect_timeout_s=2.0)
    began = time.monotonic()
    with pytest.raises(CouchDBUnavailable) as caught:
        await store.start()
    with pytest.raises(CouchDBUnavailable):
        await store.get_action("guest", "hello")
    with pytest.raises(CouchDBUnavailable):
        await store.put_activation(_activation(_id(1), start=1))
    await store.close()

    assert time.monotonic() - began < 5
    assert url in str(caught.value)
    assert "hunter2" not in str(caught.value)


@pytest.mark.skipif(shutil.which("npm") is None or shutil.which("node") is None, reason="node and npm not installed")
async def test_credentials_are_sent_and_wrong_ones_are_named(couchdb_url: str, tmp_path: Path) -> None:  # noqa: F811
    """A server that has left "admin party" (as CouchDB 3 always has) needs the admin's Basic auth."""
    env = {
        "PYWHISK_DATA": str(tmp_path),
        "PYWHISK_COUCHDB_PORT": str(free_port()),
        "PYWHISK_COUCHDB_ADMIN": "admin:s3cret",
    }
    url = await asyncio.to_thread(couchdb_up, env)
    try:
        good = CouchStore(url, username="admin", password="s3cret", db_prefix="creds_")
        await good.start()
        await good.put_action(_action(), expected_rev=None)
        await good.put_activation(_activation(_id(1), start=1000))
        assert [a.name for a in await good.list_actions("guest", limit=10, skip=0)] == ["hello"]
        assert await good.count_activations(ActivationQuery(namespace="guest")) == 1
        await good.close()

        in_url = CouchStore(url.replace("http://", "http://admin:s3cret@"), db_prefix="creds_")
        await in_url.start()
        assert await in_url.get_action("guest", "hello") is not None
        await in_url.close()

        wrong = CouchStore(url, username="admin", password="wrong", db_prefix="creds_")
        with pytest.raises(CouchDBError) as caught:
            await wrong.start()
        await wrong.close()
        assert caught.value.status == 401
        assert "username and password" in str(caught.value)
    finally:
        await asyncio.to_thread(couchdb_down, env)


# actions ----------------------------------------------------------------------------------------


async def test_names_with_every_allowed_character_and_package_namespaces_round_trip(store: CouchStore) -> None:
    # '/', ' ', '@', '&' and '.' must survive as one percent-encoded path segment.
    await store.put_action(_action(name="a b@c.d&e-f_g", namespace="guest/pkg"), expected_rev=None)
    await store.put_action(_action(name="pkg", namespace="guest"), expected_rev=None)

    fetched = await store.get_action("guest/pkg", "a b@c.d&e-f_g")

    assert fetched is not None and fetched.name == "a b@c.d&e-f_g" and fetched.namespace == "guest/pkg"
    assert [a.name for a in await store.list_actions("guest", limit=10, skip=0)] == ["pkg"]
    assert await store.delete_action("guest/pkg", "a b@c.d&e-f_g") is not None


async def test_create_over_an_existing_action_is_a_conflict(store: CouchStore) -> None:
    await store.put_action(_action(), expected_rev=None)
    with pytest.raises(Conflict) as caught:
        await store.put_action(_action(version="9.9.9"), expected_rev=None)
    assert not isinstance(caught.value, ConcurrentModification)
    assert caught.value.status_code == 409
    assert caught.value.message == "resource already exists"
    fetched = await store.get_action("guest", "hello")
    assert fetched is not None and fetched.version == "0.0.1"


async def test_update_with_a_made_up_revision_is_a_concurrent_modification(store: CouchStore) -> None:
    with pytest.raises(ConcurrentModification):
        await store.put_action(_action(), expected_rev="1-00000000000000000000000000000000")
    await store.put_action(_action(), expected_rev=None)
    with pytest.raises(ConcurrentModification):
        await store.put_action(_action(), expected_rev="7-00000000000000000000000000000000")


async def test_an_action_can_be_created_again_after_delete(store: CouchStore) -> None:
    await store.put_action(_action(), expected_rev=None)
    await store.delete_action("guest", "hello")

    again = await store.put_action(_action(version="1.0.0"), expected_rev=None)

    fetched = await store.get_action("guest", "hello")
    assert fetched is not None and fetched.version == "1.0.0" and fetched.rev == again.rev


async def test_delete_returns_the_action_and_removes_it(store: CouchStore) -> None:
    await store.put_action(_action(), expected_rev=None)

    deleted = await store.delete_action("guest", "hello")

    assert deleted is not None and deleted.name == "hello" and deleted.rev is not None
    assert await store.get_action("guest", "hello") is None
    assert await store.delete_action("guest", "hello") is None
    assert await store.count_actions("guest") == 0


async def test_concurrent_updates_from_one_revision_let_exactly_one_win(store: CouchStore) -> None:
    first = await store.put_action(_action(), expected_rev=None)

    outcomes = await asyncio.gather(
        *(store.put_action(_action(version=f"0.0.{n}"), expected_rev=first.rev) for n in range(2, 12)),
        return_exceptions=True,
    )

    winners = [o for o in outcomes if isinstance(o, Action)]
    assert len(winners) == 1
    assert all(isinstance(o, ConcurrentModification) for o in outcomes if o is not winners[0])
    fetched = await store.get_action("guest", "hello")
    assert fetched is not None and fetched.rev == winners[0].rev


async def test_list_actions_is_newest_updated_first_with_limit_and_skip(store: CouchStore) -> None:
    for i, updated in enumerate([300, 100, 500, 200, 400]):
        await store.put_action(_action(name=f"a{i}", updated=updated), expected_rev=None)
    await store.put_action(_action(name="elsewhere", namespace="other", updated=999), expected_rev=None)
    await store.put_action(_action(name="prefix", namespace="guests", updated=998), expected_rev=None)

    everything = await store.list_actions("guest", limit=200, skip=0)
    page = await store.list_actions("guest", limit=2, skip=1)

    assert [a.updated for a in everything] == [500, 400, 300, 200, 100]
    assert [a.name for a in page] == ["a4", "a0"]
    assert all(a.rev for a in everything)
    assert await store.list_actions("guest", limit=10, skip=5) == []
    assert await store.list_actions("guest", limit=0, skip=0) == []
    assert await store.count_actions("guest") == 5
    assert await store.count_actions("other") == 1
    assert await store.count_actions("empty") == 0


async def test_an_updated_action_moves_to_the_top_of_the_list(store: CouchStore) -> None:
    old = await store.put_action(_action(name="old", updated=100), expected_rev=None)
    await store.put_action(_action(name="new", updated=200), expected_rev=None)
    await store.put_action(_action(name="old", updated=300), expected_rev=old.rev)

    assert [a.name for a in await store.list_actions("guest", limit=10, skip=0)] == ["old", "new"]
    assert await store.count_actions("guest") == 2


# subjects and limits -----------------------------------------------------------------------------


async def _raw(store: CouchStore, doc_path: str) -> dict[str, Any]:
    """A document of the subjects database as CouchDB holds it."""
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{store._url}/{store.databases[0]}/{doc_path}")
    body: dict[str, Any] = response.json()
    return body


async def test_subject_is_a_document_named_by_the_subject_and_found_by_each_key_uuid(store: CouchStore) -> None:
    ada = _subject(
        "ada-lovelace",
        ("ada", "11111111-0000-4000-8000-000000000001"),
        ("team", "11111111-0000-4000-8000-000000000002"),
    )
    await store.put_subject(ada)

    assert await store.get_subject("ada-lovelace") == ada
    assert await store.get_subject_by_uuid("11111111-0000-4000-8000-000000000002") == ada
    assert await store.get_subject_by_uuid("00000000-0000-0000-0000-000000000000") is None
    # OpenWhisk's subject document shape, with the key replaced by its salted hash.
    raw = await _raw(store, "ada-lovelace")
    assert raw["subject"] == "ada-lovelace"
    assert [ns["name"] for ns in raw["namespaces"]] == ["ada", "team"]
    assert all(ns["key_hash"].startswith("hmac-sha256$") and "key" not in ns for ns in raw["namespaces"])


async def test_put_subject_replaces_its_namespaces_and_refuses_anothers_uuid(store: CouchStore) -> None:
    await store.put_subject(_subject("ada-lovelace", ("ada", "11111111-0000-4000-8000-000000000001")))
    await store.put_subject(_subject("ada-lovelace", ("team", "11111111-0000-4000-8000-000000000002")))
    assert await store.get_subject_by_uuid("11111111-0000-4000-8000-000000000001") is None
    with pytest.raises(Conflict):
        await store.put_subject(_subject("grace-hopper", ("grace", "11111111-0000-4000-8000-000000000002")))
    assert await store.get_subject("grace-hopper") is None


async def test_list_and_delete_subjects_next_to_limits_documents(store: CouchStore) -> None:
    await store.put_subject(_subject("grace-hopper", ("grace", "11111111-0000-4000-8000-000000000003")))
    await store.put_subject(
        _subject(
            "ada-lovelace",
            ("ada", "11111111-0000-4000-8000-000000000001"),
            ("team", "11111111-0000-4000-8000-000000000002"),
        )
    )
    await store.put_limits("team", NamespaceLimits(invocationsPerMinute=5))

    assert [s.subject for s in await store.list_subjects()] == ["ada-lovelace", "grace-hopper"]
    assert [s.subject for s in await store.list_subjects("team")] == ["ada-lovelace"]
    deleted = await store.delete_subject("ada-lovelace")
    assert deleted is not None and len(deleted.namespaces) == 2
    assert await store.delete_subject("ada-lovelace") is None
    assert await store.delete_subject("team/limits") is None  # a limits document is not a subject
    assert await store.get_subject_by_uuid("11111111-0000-4000-8000-000000000002") is None


async def test_limits_are_the_namespaces_limits_document(store: CouchStore) -> None:
    assert await store.get_limits("team") is None
    await store.put_limits("team", NamespaceLimits(invocationsPerMinute=5))
    await store.put_limits("team", NamespaceLimits(invocationsPerMinute=5, concurrentInvocations=0))
    assert await store.get_limits("team") == NamespaceLimits(invocationsPerMinute=5, concurrentInvocations=0)
    raw = await _raw(store, "team%2Flimits")
    assert raw["invocationsPerMinute"] == 5 and raw["concurrentInvocations"] == 0 and "firesPerMinute" not in raw
    assert await store.delete_limits("team") is True
    assert await store.delete_limits("team") is False
    assert await store.get_limits("team") is None


# activations ------------------------------------------------------------------------------------


@pytest.fixture
async def history(store: CouchStore) -> CouchStore:
    """Ten records of two actions (hello at even starts, other at odd), plus one of another namespace."""
    for n in range(10):
        await store.put_activation(_activation(_id(n), start=1000 + n * 100, name="hello" if n % 2 == 0 else "other"))
    await store.put_activation(_activation(_id(99), start=5000, namespace="someone"))
    await store.put_activation(_activation(_id(98), start=5000, namespace="guests"))
    return store


async def test_list_activations_since_and_upto_are_inclusive_epoch_ms(history: CouchStore) -> None:
    assert await _starts(history, since=1500) == [1900, 1800, 1700, 1600, 1500]
    assert await _starts(history, upto=1200) == [1200, 1100, 1000]
    assert await _starts(history, since=1300, upto=1500, name="other") == [1500, 1300]
    assert await _starts(history, since=1500, upto=1500) == [1500]
    assert await _starts(history, since=1600, upto=1500) == []


async def test_list_activations_limit_and_skip(history: CouchStore) -> None:
    assert await _starts(history, limit=3) == [1900, 1800, 1700]
    assert await _starts(history, limit=3, skip=2) == [1700, 1600, 1500]
    assert await _starts(history, limit=5, skip=8) == [1100, 1000]
    assert await _starts(history, skip=10) == []
    assert await _starts(history, limit=0) == []
    assert await _starts(history, name="other", since=1200, limit=2, skip=1) == [1700, 1500]


async def test_count_activations_ignores_limit_and_skip(history: CouchStore) -> None:
    assert await history.count_activations(ActivationQuery(namespace="guest", limit=1, skip=3)) == 10
    assert await history.count_activations(ActivationQuery(namespace="guest", name="other")) == 5
    assert await history.count_activations(ActivationQuery(namespace="guest", since=1850)) == 1
    assert await history.count_activations(ActivationQuery(namespace="guest", name="hello", upto=1400)) == 3
    assert await history.count_activations(ActivationQuery(namespace="guest", since=1600, upto=1500)) == 0
    assert await history.count_activations(ActivationQuery(namespace="nobody")) == 0


async def test_2000_concurrent_activation_writes_are_stored_once_in_few_requests(store: CouchStore) -> None:
    records = [_activation(_id(n), start=10_000 + n, name=f"a{n % 7}") for n in range(2000)]
    batches_before = store.activation_batches

    await asyncio.gather(*(store.put_activation(r) for r in records))

    batches = store.activation_batches - batches_before
    assert batches < len(records) // 10, f"{batches} _bulk_docs requests for {len(records)} records"
    assert await store.count_activations(ActivationQuery(namespace="guest")) == 2000
    listed = await store.list_activations(ActivationQuery(namespace="guest", limit=2000))
    assert [a.activationId for a in listed] == [r.activationId for r in reversed(records)]
    assert await store.count_activations(ActivationQuery(namespace="guest", name="a3")) == len(records[3::7])


async def test_concurrent_writes_of_duplicate_ids_make_one_record_each(store: CouchStore) -> None:
    records = [_activation(_id(n % 50), start=n) for n in range(200)]
    await asyncio.gather(*(store.put_activation(r) for r in records))
    assert await store.count_activations(ActivationQuery(namespace="guest")) == 50
    # Redeliveries after the fact are ignored too.
    await asyncio.gather(*(store.put_activation(r) for r in records[:50]))
    assert await store.count_activations(ActivationQuery(namespace="guest")) == 50


async def test_a_record_the_server_refuses_fails_only_its_own_caller(store: CouchStore, couchdb_url: str) -> None:  # noqa: F811
    # A validation function makes CouchDB refuse one document of the batch ("forbidden").
    async with httpx.AsyncClient(base_url=couchdb_url, timeout=30) as client:
        response = await client.put(
            f"/{store.databases[2]}/_design/refuse",
            json={
                "validate_doc_update": "function (doc) { if (doc.name === 'refused') "
                "{ throw({forbidden: 'not this one'}); } }"
            },
        )
        assert response.status_code == 201, response.text
    records = [_activation(_id(n), start=n, name="refused" if n == 5 else "fine") for n in range(20)]

    outcomes = await asyncio.gather(*(store.put_activation(r) for r in records), return_exceptions=True)

    assert [n for n, o in enumerate(outcomes) if o is not None] == [5]
    assert isinstance(outcomes[5], CouchDBError) and "not this one" in str(outcomes[5])
    assert await store.count_activations(ActivationQuery(namespace="guest")) == 19


async def test_close_writes_the_records_still_pending(couchdb_url: str) -> None:  # noqa: F811
    prefix = unique_db_prefix()
    writer = CouchStore(couchdb_url, db_prefix=prefix)
    await writer.start()
    try:
        puts = [asyncio.ensure_future(writer.put_activation(_activation(_id(n), start=n))) for n in range(100)]
        await asyncio.sleep(0)  # the puts are queued, not yet written
        await writer.close()
        await asyncio.gather(*puts)

        reader = CouchStore(couchdb_url, db_prefix=prefix)
        await reader.start()
        assert await reader.count_activations(ActivationQuery(namespace="guest")) == 100
        await reader.close()
    finally:
        await _drop(couchdb_url, prefix)


# retention --------------------------------------------------------------------------------------


async def test_purge_deletes_only_records_older_than_the_cutoff(store: CouchStore) -> None:
    now = int(time.time() * 1000)
    old = [_activation(_id(n), start=now - 10 * DAY_MS + n, namespace=f"ns{n % 3}") for n in range(30)]
    new = [_activation(_id(100 + n), start=now - n) for n in range(5)]
    edge = _activation(_id(200), start=now - 2 * DAY_MS)
    await asyncio.gather(*(store.put_activation(r) for r in [*old, *new, edge]))

    purged = await store.purge_activations_older_than(now - 2 * DAY_MS)

    assert purged == 30
    assert await store.get_activation("ns0", _id(0)) is None
    for n in range(3):
        assert await store.count_activations(ActivationQuery(namespace=f"ns{n}")) == 0
    assert await store.count_activations(ActivationQuery(namespace="guest")) == 6  # the edge is not older
    assert await store.purge_activations_older_than(now - 2 * DAY_MS) == 0


async def test_purge_walks_through_more_records_than_one_batch(couchdb_url: str) -> None:  # noqa: F811
    prefix = unique_db_prefix()
    store = CouchStore(couchdb_url, db_prefix=prefix, activation_batch_size=7)
    await store.start()
    try:
        await asyncio.gather(*(store.put_activation(_activation(_id(n), start=1000 + n)) for n in range(50)))
        assert await store.purge_activations_older_than(1040) == 40
        assert await _starts(store) == list(range(1049, 1039, -1))
    finally:
        await store.close()
        await _drop(couchdb_url, prefix)


async def test_retention_task_deletes_old_records_in_the_background(couchdb_url: str) -> None:  # noqa: F811
    prefix = unique_db_prefix()
    now = int(time.time() * 1000)
    seeding = CouchStore(couchdb_url, db_prefix=prefix)
    await seeding.start()
    await asyncio.gather(
        *(seeding.put_activation(_activation(_id(n), start=now - 3 * DAY_MS - n)) for n in range(10)),
        *(seeding.put_activation(_activation(_id(100 + n), start=now - n)) for n in range(3)),
    )
    await seeding.close()

    store = CouchStore(couchdb_url, db_prefix=prefix, retention_days=1, retention_interval_s=0.1)
    await store.start()
    try:
        deadline = time.monotonic() + 20
        while await store.count_activations(ActivationQuery(namespace="guest")) != 3:
            assert time.monotonic() < deadline, "retention did not purge within 20 s"
            await asyncio.sleep(0.1)
        assert await _starts(store) == [now, now - 1, now - 2]
    finally:
        await store.close()
        await _drop(couchdb_url, prefix)


@pytest.mark.skipif(os.environ.get("PYWHISK_TEST_COUCHDB_URL") is not None, reason="starts its own pouchdb-server")
def test_couchdb_sh_up_is_idempotent(couchdb_url: str) -> None:  # noqa: F811
    began = time.monotonic()
    assert couchdb_up() == couchdb_url
    assert time.monotonic() - began < 5
    assert httpx.get(f"{couchdb_url}/", timeout=5).status_code == 200
