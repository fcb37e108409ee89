"""An identity in use is read again ahead of its expiry, in the background (controller/auth.py, issue 12).

The reload used to sit on a request's path once per TTL: a store read on the store's reader thread, which beside an
event loop kept busy by another namespace waited for the GIL and held that request for seconds. The clock is
injected: every step below is at a stated time, none waits for real time to pass.
"""

from __future__ import annotations

import asyncio
import base64
import threading

import pytest

from controller.auth import REFRESH_AHEAD, Authenticator
from pywhisk.errors import Unauthorized
from pywhisk.identity import NamespaceLimits, Subject
from pywhisk.store.sqlite import SqliteStore
from pywhisk.tenancy import create_user, delete_user, set_limits

pytestmark = pytest.mark.unit

TTL = 5.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class GatedReads:
    """Counts the store's subject reads; while ``gate`` is clear each read waits for it."""

    def __init__(self, store: SqliteStore) -> None:
        self.reads = 0
        self.gate = asyncio.Event()
        self.gate.set()
        self._read = store.get_subject_by_uuid

    async def __call__(self, uuid: str) -> Subject | None:
        self.reads += 1
        await self.gate.wait()
        return await self._read(uuid)


def _basic(credential: str) -> str:
    return "Basic " + base64.b64encode(credential.encode()).decode()


async def test_a_request_near_the_expiry_is_answered_from_the_cache_while_the_reload_runs(store: SqliteStore) -> None:
    key = await create_user(store, "ada-lovelace", namespace="team-a")
    reads = GatedReads(store)
    store.get_subject_by_uuid = reads  # type: ignore[method-assign]
    clock = Clock()
    authenticator = Authenticator(store, cache_ttl_s=TTL, clock=clock)
    assert (await authenticator.identify(_basic(key.api_key))).limits == NamespaceLimits()
    await set_limits(store, "team-a", invocations_per_minute=7)

    clock.now += TTL * (1 - REFRESH_AHEAD) - 0.5  # not yet in the refresh window: the cache alone
    await authenticator.identify(_basic(key.api_key))
    assert reads.reads == 1

    clock.now += 1.0  # in the window: the store is slow now, and the request must not wait for it
    reads.gate.clear()
    identity = await asyncio.wait_for(authenticator.identify(_basic(key.api_key)), 5)
    assert identity.limits == NamespaceLimits(), "answered from the cache"
    await asyncio.wait_for(authenticator.identify(_basic(key.api_key)), 5)
    assert reads.reads == 2, "one reload in the background, however many requests meanwhile"

    reloading = authenticator._loading[key.uuid]
    reads.gate.set()
    await asyncio.wait_for(asyncio.shield(reloading), 5)
    refreshed = await authenticator.identify(_basic(key.api_key))
    assert refreshed.limits == NamespaceLimits(invocationsPerMinute=7), "the reload's identity from now on"
    assert refreshed.authkey.api_key == key.api_key


async def test_an_entry_past_its_ttl_is_never_served_so_a_deleted_key_stops_within_the_ttl(
    store: SqliteStore,
) -> None:
    key = await create_user(store, "ada-lovelace", namespace="team-a")
    reads = GatedReads(store)
    store.get_subject_by_uuid = reads  # type: ignore[method-assign]
    clock = Clock()
    authenticator = Authenticator(store, cache_ttl_s=TTL, clock=clock)
    await authenticator.identify(_basic(key.api_key))
    await delete_user(store, "ada-lovelace")

    clock.now += TTL  # expired, and no request came in the refresh window
    reads.gate.clear()
    pending = asyncio.ensure_future(authenticator.identify(_basic(key.api_key)))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert not pending.done(), "an expired entry waits for the store"
    reads.gate.set()
    with pytest.raises(Unauthorized):
        await asyncio.wait_for(pending, 5)


async def test_an_identity_is_read_on_the_loop_not_behind_the_reader_thread(store: SqliteStore) -> None:
    """Standalone's identity reads are point reads on the event loop (``SqliteStore._read_at_once``): beside a busy
    loop a thread waits for the GIL without bound, so a read queued for the reader thread held a request for
    minutes. Here the reader thread is held by another read; the identity is read regardless."""
    key = await create_user(store, "ada-lovelace", namespace="team-a")
    started, release = threading.Event(), threading.Event()

    def held() -> None:  # a long read (an activation list) in progress on the reader thread
        started.set()
        release.wait(10)

    holding = asyncio.get_running_loop().run_in_executor(store._reader, held)
    try:
        await asyncio.to_thread(started.wait, 10)
        authenticator = Authenticator(store, cache_ttl_s=TTL)
        identity = await asyncio.wait_for(authenticator.identify(_basic(key.api_key)), 5)
        assert identity.namespace.name == "team-a"
    finally:
        release.set()
        await holding
