"""The CouchDB store against a real CouchDB-API server (pouchdb-server from deploy/local/couchdb.sh).

The shared Store contract (tests/store_contract.py), plus what only a networked store has: databases created on
first start, OpenWhisk's document shapes, batched writes, credentials, and clear errors when the server is not
there.
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

from controller.sequence_journal import JOURNAL_NAMESPACE, LOST_MESSAGE, SequenceJournal, lost_response
from pywhisk.identity import NamespaceLimits
from pywhisk.store import ActivationQuery, SequenceJournalStore
from pywhisk.store.couchdb import CouchDBError, CouchDBUnavailable, CouchStore
from pywhisk.store.sqlite import SqliteStore
from tests.conftest import free_port
from tests.couchdb_service import (  # noqa: F401  (couchdb_url is a fixture)
    couchdb_down,
    couchdb_up,
    couchdb_url,
    drop_databases,
    unique_db_prefix,
)
from tests.store_contract import StoreContract, make_action, make_activation, make_subject, record_id, starts

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


class TestCouchStoreContract(StoreContract):
    """Every test of tests/store_contract.py, against fresh databases (this module's ``store``)."""


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
        stored = await first.put_action(make_action(), expected_rev=None)
        await first.put_activation(make_activation(record_id(1), start=1000))
        await first.close()

        second = CouchStore(couchdb_url, db_prefix=prefix)
        await second.start()
        try:
            action = await second.get_action("guest", "hello")
            assert action is not None and action.rev == stored.rev
            assert await second.count_activations(ActivationQuery(namespace="guest")) == 1
            updated = await second.put_action(make_action(version="0.0.2"), expected_rev=stored.rev)
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
        await store.put_activation(make_activation(record_id(1), start=1))
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
        await good.put_action(make_action(), expected_rev=None)
        await good.put_activation(make_activation(record_id(1), start=1000))
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


# subjects and limits -----------------------------------------------------------------------------


async def _raw(store: CouchStore, doc_path: str) -> dict[str, Any]:
    """A document of the subjects database as CouchDB holds it."""
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{store.url}/{store.databases[0]}/{doc_path}")
    body: dict[str, Any] = response.json()
    return body


async def test_subject_is_a_document_named_by_the_subject_and_found_by_each_key_uuid(store: CouchStore) -> None:
    ada = make_subject(
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


async def test_2000_concurrent_activation_writes_are_stored_once_in_few_requests(store: CouchStore) -> None:
    records = [make_activation(record_id(n), start=10_000 + n, name=f"a{n % 7}") for n in range(2000)]
    batches_before = store.activation_batches

    await asyncio.gather(*(store.put_activation(r) for r in records))

    batches = store.activation_batches - batches_before
    assert batches < len(records) // 10, f"{batches} _bulk_docs requests for {len(records)} records"
    assert await store.count_activations(ActivationQuery(namespace="guest")) == 2000
    listed = await store.list_activations(ActivationQuery(namespace="guest", limit=2000))
    assert [a.activationId for a in listed] == [r.activationId for r in reversed(records)]
    assert await store.count_activations(ActivationQuery(namespace="guest", name="a3")) == len(records[3::7])


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
    records = [make_activation(record_id(n), start=n, name="refused" if n == 5 else "fine") for n in range(20)]

    outcomes = await asyncio.gather(*(store.put_activation(r) for r in records), return_exceptions=True)

    assert [n for n, o in enumerate(outcomes) if o is not None] == [5]
    assert isinstance(outcomes[5], CouchDBError) and "not this one" in str(outcomes[5])
    assert await store.count_activations(ActivationQuery(namespace="guest")) == 19


async def test_close_writes_the_records_still_pending(couchdb_url: str) -> None:  # noqa: F811
    prefix = unique_db_prefix()
    writer = CouchStore(couchdb_url, db_prefix=prefix)
    await writer.start()
    try:
        puts = [
            asyncio.ensure_future(writer.put_activation(make_activation(record_id(n), start=n))) for n in range(100)
        ]
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
    old = [make_activation(record_id(n), start=now - 10 * DAY_MS + n, namespace=f"ns{n % 3}") for n in range(30)]
    new = [make_activation(record_id(100 + n), start=now - n) for n in range(5)]
    edge = make_activation(record_id(200), start=now - 2 * DAY_MS)
    await asyncio.gather(*(store.put_activation(r) for r in [*old, *new, edge]))

    purged = await store.purge_activations_older_than(now - 2 * DAY_MS)

    assert purged == 30
    assert await store.get_activation("ns0", record_id(0)) is None
    for n in range(3):
        assert await store.count_activations(ActivationQuery(namespace=f"ns{n}")) == 0
    assert await store.count_activations(ActivationQuery(namespace="guest")) == 6  # the edge is not older
    assert await store.purge_activations_older_than(now - 2 * DAY_MS) == 0


async def test_purge_walks_through_more_records_than_one_batch(couchdb_url: str) -> None:  # noqa: F811
    prefix = unique_db_prefix()
    store = CouchStore(couchdb_url, db_prefix=prefix, activation_batch_size=7)
    await store.start()
    try:
        await asyncio.gather(*(store.put_activation(make_activation(record_id(n), start=1000 + n)) for n in range(50)))
        assert await store.purge_activations_older_than(1040) == 40
        assert await starts(store) == list(range(1049, 1039, -1))
    finally:
        await store.close()
        await _drop(couchdb_url, prefix)


async def test_retention_task_deletes_old_records_in_the_background(couchdb_url: str) -> None:  # noqa: F811
    prefix = unique_db_prefix()
    now = int(time.time() * 1000)
    seeding = CouchStore(couchdb_url, db_prefix=prefix)
    await seeding.start()
    await asyncio.gather(
        *(seeding.put_activation(make_activation(record_id(n), start=now - 3 * DAY_MS - n)) for n in range(10)),
        *(seeding.put_activation(make_activation(record_id(100 + n), start=now - n)) for n in range(3)),
    )
    await seeding.close()

    store = CouchStore(couchdb_url, db_prefix=prefix, retention_days=1, retention_interval_s=0.1)
    await store.start()
    try:
        deadline = time.monotonic() + 20
        while await store.count_activations(ActivationQuery(namespace="guest")) != 3:
            assert time.monotonic() < deadline, "retention did not purge within 20 s"
            await asyncio.sleep(0.1)
        assert await starts(store) == [now, now - 1, now - 2]
    finally:
        await store.close()
        await _drop(couchdb_url, prefix)


@pytest.mark.skipif(os.environ.get("PYWHISK_TEST_COUCHDB_URL") is not None, reason="starts its own pouchdb-server")
def test_couchdb_sh_up_is_idempotent(couchdb_url: str) -> None:  # noqa: F811
    began = time.monotonic()
    assert couchdb_up() == couchdb_url
    assert time.monotonic() - began < 5
    assert httpx.get(f"{couchdb_url}/", timeout=5).status_code == 200


# The sequence journal's entries have a database of their own. Every controller scans the journal every few
# seconds through a view, and a CouchDB view query first indexes every document written to its database since the
# last query: with the entries among the activation records, each scan made pouchdb-server run the activations
# views' map functions over every record, 600-1,000 µs of its CPU per warm invoke under load (docs/benchmarks.md,
# issue 15).


async def _journal_doc_ids(store: CouchStore, db: str) -> list[str]:
    async with httpx.AsyncClient(timeout=30) as client:
        rows = (await client.get(f"{store.url}/{db}/_all_docs")).json()["rows"]
    return [row["id"] for row in rows if not row["id"].startswith("_design/")]


async def test_a_lost_sequence_is_journalled_apart_and_recorded_without_querying_the_activations_views(
    store: CouchStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The composition root's choice (controller/app.py): a store that has a journal of its own gives it.
    assert isinstance(store, SequenceJournalStore)
    journal = SequenceJournal(store, entries=store.sequence_journal)
    for n in range(3):  # records of other activations, as under load
        await store.put_activation(make_activation(f"{n:032x}", start=1_000 + n))
    lost = make_activation("a" * 32, start=int(time.time() * 1000) - 60_000, name="seq").model_copy(
        update={"response": lost_response()}
    )
    await journal.begin(lost, deadline_ms=int(time.time() * 1000) - 1_000)  # its deadline has passed
    paths: list[str] = []
    send = store.sequence_journal._client.send

    async def spy(method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        paths.append(path)
        return await send(method, path, **kwargs)

    monkeypatch.setattr(store.sequence_journal._client, "send", spy)

    await journal.start()  # scans at once (at_once), from an hour back
    deadline = time.monotonic() + 30
    while await store.get_activation("guest", lost.activationId) is None:
        assert time.monotonic() < deadline, "the lost sequence was not recorded"
        await asyncio.sleep(0.05)
    await journal.close()

    recorded = await store.get_activation("guest", lost.activationId)
    assert recorded is not None and recorded.response.result == {"error": LOST_MESSAGE}
    activations_db, journal_db = store.activations.db, store.sequence_journal.db
    assert journal_db == activations_db.removesuffix("activations") + "sequences"
    # The entry is in the journal's database only; the records (and the lost one) in the activations database.
    assert all(doc_id.startswith(f"{JOURNAL_NAMESPACE}/") for doc_id in await _journal_doc_ids(store, journal_db))
    assert len(await _journal_doc_ids(store, journal_db)) == 1
    assert not any(doc_id.startswith(JOURNAL_NAMESPACE) for doc_id in await _journal_doc_ids(store, activations_db))
    # The scan read the journal's view, never one of the activations database's (which would index every record).
    assert any(path.startswith(f"/{journal_db}/_design/") for path in paths)
    assert not any(path.startswith(f"/{activations_db}/_design/") for path in paths)


async def test_sqlite_journals_among_its_records(tmp_path: Any) -> None:
    # SQLite keeps its indexes on write: a scan costs no indexing, so it has no journal store of its own.
    store = SqliteStore(tmp_path / "pywhisk.db")
    await store.start()
    try:
        assert not isinstance(store, SequenceJournalStore)
    finally:
        await store.close()
