"""The store cannot grow without limit: retention in both stores, and records of bounded size.

Both real stores: SQLite (standalone) and the CouchDB-API server (pouchdb-server). The size bound is
applied where the invoker builds the record (invoker/results.py ``bound_record``), so the last test
goes through a real standalone server and an action that prints more than a record may hold.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest

from invoker.results import bound_record
from pywhisk.activation import Activation, ActivationResponse, Messages, StatusCode, format_log_line
from pywhisk.store import ActivationQuery, Store
from pywhisk.store.couchdb import CouchStore
from pywhisk.store.sqlite import SqliteStore
from tests.conftest import start_standalone, stop_standalone, wasm_code
from tests.couchdb_service import couchdb_url, drop_databases, unique_db_prefix  # noqa: F401
from tests.integration.helpers import invoke

pytestmark = pytest.mark.integration

DAY_MS = 86_400_000
COUCHDB_MAX_DOCUMENT_BYTES = 8_000_000  # CouchDB 3's default max_document_size
AnyStore = SqliteStore | CouchStore


def activation(n: int, start: int, logs: list[str] | None = None) -> Activation:
    return Activation(
        activationId=f"{n:032x}",
        namespace="guest",
        name="bounded",
        subject="guest",
        start=start,
        end=start + 1,
        duration=1,
        response=ActivationResponse.of(StatusCode.SUCCESS, {"n": n}),
        logs=logs if logs is not None else [f"line {n}"],
    )


@pytest.fixture(params=["sqlite", "couchdb"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., AnyStore]]:
    """A factory of stores over one database: ``open_store(**retention)``; both real backends."""
    prefix = unique_db_prefix()
    url = request.getfixturevalue("couchdb_url") if request.param == "couchdb" else ""

    def factory(retention_days: float | None = None, retention_interval_s: float = 3600.0) -> AnyStore:
        if request.param == "sqlite":
            return SqliteStore(tmp_path / "store.sqlite3", retention_days, retention_interval_s)
        return CouchStore(
            url, db_prefix=prefix, retention_days=retention_days, retention_interval_s=retention_interval_s
        )

    yield factory
    if url:
        drop_databases(url, prefix)


async def ids(store: Store) -> list[int]:
    found = await store.list_activations(ActivationQuery(namespace="guest", limit=200))
    return sorted(int(a.activationId, 16) for a in found)


async def test_purge_deletes_only_records_older_than_the_cutoff(open_store: Callable[..., AnyStore]) -> None:
    store = open_store()
    await store.start()
    try:
        now = int(time.time() * 1000)
        await asyncio.gather(
            *(store.put_activation(activation(n, now - 5 * DAY_MS - n)) for n in range(20)),
            *(store.put_activation(activation(100 + n, now - n)) for n in range(3)),
            store.put_activation(activation(200, now - 2 * DAY_MS)),  # exactly at the cutoff: kept
        )
        assert await store.purge_activations_older_than(now - 2 * DAY_MS) == 20
        assert await ids(store) == [100, 101, 102, 200]
        assert await store.purge_activations_older_than(now - 2 * DAY_MS) == 0
    finally:
        await store.close()


async def test_retention_deletes_old_records_in_the_background(open_store: Callable[..., AnyStore]) -> None:
    now = int(time.time() * 1000)
    seeding = open_store()
    await seeding.start()
    await asyncio.gather(
        *(seeding.put_activation(activation(n, now - 3 * DAY_MS - n)) for n in range(10)),
        *(seeding.put_activation(activation(100 + n, now - n)) for n in range(3)),
    )
    await seeding.close()

    store = open_store(retention_days=1, retention_interval_s=0.1)
    await store.start()
    try:
        deadline = time.monotonic() + 20
        while await ids(store) != [100, 101, 102]:
            assert time.monotonic() < deadline, "retention did not purge within 20 s"
            await asyncio.sleep(0.1)
        await store.put_activation(activation(300, now - 2 * DAY_MS))  # written late, purged next round
        while await ids(store) != [100, 101, 102]:
            assert time.monotonic() < deadline, "retention stopped after its first round"
            await asyncio.sleep(0.1)
    finally:
        await store.close()


async def test_a_record_with_ten_megabytes_of_logs_is_stored_bounded(open_store: Callable[..., AnyStore]) -> None:
    # OpenWhisk's largest log limit (10 MB), as lines: more than CouchDB takes in one document.
    lines = [format_log_line("stdout", f"{n:08d} " + "x" * 90) for n in range(80_000)]
    assert len(orjson.dumps(lines)) > 10_000_000
    record = bound_record(activation(1, int(time.time() * 1000), lines), 7_000_000)
    store = open_store()
    await store.start()
    try:
        await store.put_activation(record)
        stored = await store.get_activation("guest", record.activationId)
    finally:
        await store.close()
    assert stored is not None
    assert len(orjson.dumps(stored.model_dump(mode="json"))) <= 7_000_000 < COUCHDB_MAX_DOCUMENT_BYTES
    assert stored.logs[-1].endswith(f"stderr: {Messages.truncated_logs(7_000_000)}")
    assert stored.logs[:-1] == lines[: len(stored.logs) - 1]
    assert stored.response.result == {"n": 1}


def test_the_invoker_stores_a_bounded_record_for_an_action_printing_past_the_bound(tmp_path: Path) -> None:
    limit = 1_500_000
    server = start_standalone(tmp_path / "server", env={"PYWHISK_ACTIVATION_MAX_BYTES": str(limit)})
    try:
        with server.client() as api:
            body = {"exec": {"kind": "wasm:wasi", "code": wasm_code("logs")}, "limits": {"logs": 10}}
            assert api.put("/namespaces/_/actions/chatty", json=body).status_code == 200
            response = invoke(api, "chatty", {"count": 100_000})  # ~1 MB of output, ~5 MB as log lines
            record = response.json()
            stored = api.get(f"/namespaces/_/activations/{record['activationId']}").json()
    finally:
        assert stop_standalone(server) == 0
    assert record["response"]["result"] == {"lines": 100_000}
    assert stored["response"]["result"] == {"lines": 100_000}
    assert len(orjson.dumps(stored)) <= limit
    assert stored["logs"][-1].endswith(f"stderr: {Messages.truncated_logs(limit)}")
    assert stored["logs"][0].endswith("stdout: line 1")
    assert len(stored["logs"]) > 10_000
