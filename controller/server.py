"""The HTTP edge: how uvicorn serves the API, with the two guards uvicorn lacks.

uvicorn closes an idle keep-alive connection (``timeout_keep_alive``), but it has no deadline for reading a
request: a client that sends its head or body one byte at a time (slowloris) holds a connection and a task
for ever, and so does a connection that never sends anything. And when the API answers before the whole
body has arrived (413 for an oversized upload), closing the socket with unread bytes in it makes the
kernel send a reset, which can destroy the 413 before the client reads it.

``GuardedHttpToolsProtocol`` adds both on top of uvicorn's httptools protocol:

- **request-read deadline**: from the moment a connection is ready for a request (accepted, or its previous
  response sent), the whole request (head and body) must arrive within ``request_read_s``; otherwise the
  client gets a 408 in OpenWhisk's shape (if no answer was started) and the connection is closed. The app,
  if it was reading the body, sees a disconnect.
- **lingering close** (as nginx's ``lingering_close``): when the connection is closed while a request is
  still arriving, the server first sends FIN after its answer and reads and discards what the client still
  sends, for at most ``LINGER_S`` seconds and ``LINGER_MAX_BYTES`` bytes, so the client's writes do not meet
  a reset before it reads the answer.
- **small rests drained, not closed**: an answer before the body has arrived (a 401 or a 503 from the
  authentication, which runs before the body is read) closes the connection only when the rest may be big
  (no length, or more than ``DRAIN_MAX_BYTES``). A small rest is read and dropped and the connection kept:
  closing it raced the client, which could send its next request on the connection after reading the answer
  and before the FIN arrived, and that request was then dropped unanswered.

``uvicorn_options`` is what the launcher passes to ``uvicorn.run`` for every role that serves the API.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from pywhisk.activation import new_activation_id
from pywhisk.settings import Settings

# How long and how much a lingering close reads and discards before it closes for good.
LINGER_S = 5.0
LINGER_MAX_BYTES = 8 * 1024 * 1024
# The largest declared rest of a body that an early answer reads and drops to keep the connection.
DRAIN_MAX_BYTES = 64 * 1024


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """``uvicorn.run`` keywords for the API server: the guarded protocol and the keep-alive timeout."""
    return {
        "http": guarded_protocol(settings.http_request_read_s),
        # uvicorn takes whole seconds; at least one.
        "timeout_keep_alive": max(1, round(settings.http_keep_alive_s)),
    }


def guarded_protocol(request_read_s: float) -> type[GuardedHttpToolsProtocol]:
    """The protocol class with this request-read deadline (uvicorn builds one instance per connection)."""
    return type("GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,), {"request_read_s": request_read_s})


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a request-read deadline and a lingering close (module docstring)."""

    request_read_s = 60.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_timer: asyncio.TimerHandle | None = None
        self._in_request = False  # a request's first byte arrived, its last one not yet
        self._head_done = False
        self._lingering = False
        self._discarded = 0
        self._raw_transport: asyncio.Transport | None = None

    # connection ---------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._raw_transport = transport
        super().connection_made(_LingeringTransport(transport, self))  # type: ignore[arg-type]
        self._arm_read_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_read_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            self._discarded += len(data)
            if self._discarded > LINGER_MAX_BYTES:
                self._close_now()
            return
        super().data_received(data)

    # parser callbacks ---------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._in_request, self._head_done = True, False
        if self._read_timer is None:  # e.g. a pipelined request after a complete one
            self._arm_read_timer()
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._head_done = True
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        drained = self._in_request and self.cycle is not None and self.cycle.response_complete
        self._in_request = False
        self._cancel_read_timer()
        super().on_message_complete()
        if drained and not self._lingering:
            # The rest of an early-answered body has been dropped: idle now, as after any answer (uvicorn armed
            # its keep-alive timeout at the answer, and the rest's bytes cancelled it).
            self._unset_keepalive_if_required()
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )
            self._arm_read_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._in_request and self._head_done and self.cycle.response_complete:
            # Answered before its body arrived: a big or unknown rest (413) is not read, the connection is
            # closed, lingering; a small one is read and dropped by uvicorn, within the read deadline.
            if not self._rest_is_small():
                self._close()
        elif not self._in_request and not self._lingering:
            self._arm_read_timer()  # the next request must arrive in time too

    def _rest_is_small(self) -> bool:
        for name, value in self.headers or ():
            if name == b"content-length":
                return value.strip().isdigit() and int(value) <= DRAIN_MAX_BYTES
        return False  # chunked, or no body framing we can judge

    # the deadline -------------------------------------------------------------------------------

    def _arm_read_timer(self) -> None:
        self._cancel_read_timer()
        self._read_timer = self.loop.call_later(self.request_read_s, self._request_read_timed_out)

    def _cancel_read_timer(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _request_read_timed_out(self) -> None:
        self._read_timer = None
        raw = self._raw_transport
        if raw is None or raw.is_closing() or self._lingering:
            return
        cycle = self.cycle if self._head_done else None
        if self._in_request and (cycle is None or not cycle.response_started):
            transid = (self.scope or {}).get("state", {}).get("transid") if self._head_done else None
            raw.write(_timeout_response(transid or new_activation_id(), self.request_read_s))
        if cycle is not None and not cycle.response_complete:
            # The app may be waiting for the rest of the body: it gets a disconnect, and its answer is dropped.
            cycle.disconnected = True
            cycle.message_event.set()
        self._close_now()

    # closing ------------------------------------------------------------------------------------

    def _close(self) -> None:
        """``transport.close()`` as uvicorn calls it: lingering while a request is still arriving."""
        raw = self._raw_transport
        if raw is None or raw.is_closing() or self._lingering:
            return
        if not self._in_request or not raw.can_write_eof():
            raw.close()
            return
        self._lingering = True
        self._cancel_read_timer()
        raw.write_eof()  # FIN after the answer: the client reads it, then sees the end
        raw.resume_reading()
        self.loop.call_later(LINGER_S, self._close_now)

    def _close_now(self) -> None:
        self._cancel_read_timer()
        if self._raw_transport is not None and not self._raw_transport.is_closing():
            self._raw_transport.close()


class _LingeringTransport:
    """The transport uvicorn's protocol and cycles see: the real one, except that ``close`` lingers."""

    def __init__(self, transport: asyncio.Transport, protocol: GuardedHttpToolsProtocol) -> None:
        self._transport = transport
        self._protocol = protocol

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def close(self) -> None:
        self._protocol._close()

    def is_closing(self) -> bool:
        return self._protocol._lingering or self._transport.is_closing()


def _timeout_response(transid: str, request_read_s: float) -> bytes:
    body = orjson.dumps(
        {
            "error": f"The request was not received in time: it must arrive within {request_read_s:g} seconds.",
            "code": transid,
        }
    )
    head = (
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nx-request-id: {transid}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body
