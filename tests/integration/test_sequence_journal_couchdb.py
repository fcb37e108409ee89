"""The sequence journal in CouchDB keeps its entries in a database of their own (pouchdb-server, real).

Every controller scans the journal every few seconds through a view. A CouchDB view query first indexes every
document written to its database since the last query, so with the entries among the activation records each scan
made pouchdb-server run the activations views' map functions over every record: 600-1,000 µs of its CPU per warm
invoke under load (docs/benchmarks.md, issue 15). These tests hold the composition to the separate database and
check that a lost sequence is still recorded, in the activations database, by the scan.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from controller.sequence_journal import JOURNAL_NAMESPACE, LOST_MESSAGE, SequenceJournal, lost_response
from pywhisk.store import SequenceJournalStore
from pywhisk.store.couchdb import CouchStore
from pywhisk.store.sqlite import SqliteStore
from tests.couchdb_service import (  # noqa: F401  (couchdb_url is a fixture)
    couchdb_url,
    drop_databases,
    unique_db_prefix,
)
from tests.store_contract import make_activation

pytestmark = pytest.mark.integration


@pytest.fixture
async def store(couchdb_url: str) -> AsyncIterator[CouchStore]:  # noqa: F811
    prefix = unique_db_prefix()
    store = CouchStore(couchdb_url, db_prefix=prefix)
    await store.start()
    yield store
    await store.close()
    await asyncio.to_thread(drop_databases, couchdb_url, prefix)


async def _doc_ids(store: CouchStore, db: str) -> list[str]:
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
    assert all(doc_id.startswith(f"{JOURNAL_NAMESPACE}/") for doc_id in await _doc_ids(store, journal_db))
    assert len(await _doc_ids(store, journal_db)) == 1
    assert not any(doc_id.startswith(JOURNAL_NAMESPACE) for doc_id in await _doc_ids(store, activations_db))
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
