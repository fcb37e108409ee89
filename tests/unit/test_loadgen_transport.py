"""loadgen/transport.py: each connection serves one request at a time, is given back when its response is
closed (also after an error or a cancelled wait), and a wait for one ends with httpx's PoolTimeout."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from loadgen.transport import LendingTransport

pytestmark = pytest.mark.unit


class Body(httpx.AsyncByteStream):
    def __init__(self, data: bytes) -> None:
        self.data = data

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.data


class Connection(httpx.AsyncBaseTransport):
    """One 'connection': answers after ``release`` is set, counting what it serves and how many at once."""

    def __init__(self, release: asyncio.Event, fail: bool = False) -> None:
        self.release = release
        self.fail = fail
        self.served = 0
        self.in_flight = 0
        self.most_in_flight = 0
        self.closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await self.release.wait()
            if self.fail:
                raise httpx.ConnectError("refused")
            self.served += 1
            return httpx.Response(200, stream=Body(b"{}"))  # read lazily, as off a socket
        finally:
            self.in_flight -= 1

    async def aclose(self) -> None:
        self.closed = True


# A short wait for a free connection: these tests expect either one at once or a PoolTimeout.
QUICK = httpx.Timeout(5.0, pool=0.05)


def lending(
    connections: int, release: asyncio.Event | None = None, fail: bool = False
) -> tuple[LendingTransport, list[Connection]]:
    """A transport over ``connections`` doubles; without ``release`` they answer at once."""
    if release is None:
        release = asyncio.Event()
        release.set()
    made: list[Connection] = []

    def factory() -> Connection:
        made.append(Connection(release, fail))
        return made[-1]

    return LendingTransport(connections, transport_factory=factory), made


def client(transport: LendingTransport) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=transport, base_url="http://x")


async def test_each_connection_serves_one_request_at_a_time_and_all_are_answered() -> None:
    release = asyncio.Event()
    transport, connections = lending(3, release)
    async with client(transport) as api:
        calls = [asyncio.create_task(api.get("/")) for _ in range(20)]
        await asyncio.sleep(0)  # let every call reach the transport
        release.set()
        responses = await asyncio.gather(*calls)

    assert [r.status_code for r in responses] == [200] * 20
    assert len(connections) == 3
    assert all(c.most_in_flight == 1 for c in connections)
    assert sum(c.served for c in connections) == 20
    assert all(c.closed for c in connections), "closing the client closes every connection"


async def test_the_connection_last_given_back_is_lent_first() -> None:
    transport, connections = lending(4)
    async with client(transport) as api:
        for _ in range(5):
            assert (await api.get("/")).status_code == 200

    assert [c.served for c in connections] == [0, 0, 0, 5], "a sequential load keeps to one warm connection"


async def test_a_streamed_response_holds_its_connection_until_closed_and_others_time_out_waiting() -> None:
    transport, _ = lending(1)
    async with client(transport) as api:
        async with api.stream("GET", "/") as held:
            assert held.status_code == 200
            with pytest.raises(httpx.PoolTimeout):
                await api.get("/", timeout=QUICK)
        # Closed: the connection is free again.
        assert (await api.get("/", timeout=QUICK)).status_code == 200


async def test_a_failed_request_gives_its_connection_back() -> None:
    transport, connections = lending(1, fail=True)
    async with client(transport) as api:
        for _ in range(3):
            with pytest.raises(httpx.ConnectError):
                await api.get("/", timeout=QUICK)
        connections[0].fail = False
        assert (await api.get("/", timeout=QUICK)).status_code == 200


async def test_a_cancelled_wait_leaves_no_waiter_and_loses_no_connection() -> None:
    release = asyncio.Event()
    transport, connections = lending(1, release)
    async with client(transport) as api:
        first = asyncio.create_task(api.get("/"))
        await asyncio.sleep(0)
        waiting = asyncio.create_task(api.get("/"))
        await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        release.set()
        assert (await first).status_code == 200
        assert (await api.get("/", timeout=QUICK)).status_code == 200
    assert connections[0].served == 2


async def test_a_connection_given_back_as_its_waiter_is_cancelled_passes_to_the_next() -> None:
    transport, _ = lending(1)
    async with client(transport) as api:
        async with api.stream("GET", "/") as held:
            waiting = asyncio.create_task(api.get("/"))
            later = asyncio.create_task(api.get("/"))
            await asyncio.sleep(0)
            await held.aclose()  # lends the connection to `waiting`, which is cancelled before it runs
            waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert (await asyncio.wait_for(later, 5)).status_code == 200


def test_at_least_one_connection() -> None:
    with pytest.raises(ValueError):
        LendingTransport(0)
