"""An httpx transport that lends each request a connection of its own, in O(1) per request.

Why not httpx's own pool: httpcore's pool looks at every connection it holds each time a request joins or
leaves it (a readability poll of each idle connection, and an idle count that is quadratic in the pool's
size). With the 24-128 connections a load keeps open, the client spent 3-5 ms of CPU per request, against
1.5 ms with one connection (docs/benchmarks.md, "The load client's own CPU"), on the same two cores as the
server it measures: the load measured its own client.

Here each connection is an httpx transport of its own (a pool of one, which stays cheap), and the free ones
wait on a stack. The most recently used is lent first, so a light load keeps reusing a few warm connections
and the others expire idle. A request waits for a free connection at most the ``pool`` timeout it was sent
with (``httpx.PoolTimeout``), as with httpx's pool. The connection goes back when the response is closed, which
``AsyncClient`` does for every request not sent with ``stream()``.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable

import httpx

TransportFactory = Callable[[], httpx.AsyncBaseTransport]


class LendingTransport(httpx.AsyncBaseTransport):
    """``connections`` one-connection transports, each lent to one request at a time (module docstring)."""

    def __init__(
        self,
        connections: int,
        *,
        keepalive_expiry: float | None = 5.0,
        transport_factory: TransportFactory | None = None,
    ) -> None:
        if connections < 1:
            raise ValueError("a LendingTransport needs at least one connection")
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1, keepalive_expiry=keepalive_expiry)
        factory = transport_factory or (lambda: httpx.AsyncHTTPTransport(limits=limits))
        self._transports = [factory() for _ in range(connections)]
        self._free = list(self._transports)  # a stack: the last one given back is lent first
        self._waiters: deque[asyncio.Future[httpx.AsyncBaseTransport]] = deque()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        transport = await self._borrow(request)
        try:
            response = await transport.handle_async_request(request)
        except BaseException:
            self._give_back(transport)
            raise
        response.stream = _LentStream(response.stream, lambda: self._give_back(transport))
        return response

    async def aclose(self) -> None:
        for transport in self._transports:
            await transport.aclose()

    # lending ----------------------------------------------------------------------------------------

    async def _borrow(self, request: httpx.Request) -> httpx.AsyncBaseTransport:
        if self._free:
            return self._free.pop()
        waiter: asyncio.Future[httpx.AsyncBaseTransport] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        timeout = request.extensions.get("timeout", {}).get("pool")
        try:
            async with asyncio.timeout(timeout):
                return await waiter
        except BaseException as error:
            if waiter.done() and not waiter.cancelled():
                self._give_back(waiter.result())  # lent just as this request gave up: pass it on
            else:
                waiter.cancel()
                self._waiters.remove(waiter)
            if isinstance(error, TimeoutError):
                raise httpx.PoolTimeout(f"no free connection within {timeout} s") from error
            raise

    def _give_back(self, transport: httpx.AsyncBaseTransport) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(transport)
                return
        self._free.append(transport)


class _LentStream(httpx.AsyncByteStream):
    """A response body whose close gives its connection back, once."""

    def __init__(self, stream: httpx.SyncByteStream | httpx.AsyncByteStream, give_back: Callable[[], None]) -> None:
        assert isinstance(stream, httpx.AsyncByteStream)
        self._stream = stream
        self._give_back: Callable[[], None] | None = give_back

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            give_back, self._give_back = self._give_back, None
            if give_back is not None:
                give_back()
