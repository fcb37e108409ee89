"""Pure-ASGI middleware for every API response: transaction id, receipt time, CORS, size limit.

Written against ASGI directly (not BaseHTTPMiddleware) because it runs on every request of the
hot invoke path.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pywhisk import logs
from pywhisk.activation import new_activation_id
from pywhisk.errors import PayloadTooLarge, WhiskError

log = logging.getLogger("pywhisk.controller")

CORS_HEADERS = [
    (b"access-control-allow-origin", b"*"),
    (b"access-control-allow-methods", b"GET, DELETE, POST, PUT, HEAD"),
    (
        b"access-control-allow-headers",
        b"Authorization, Origin, X-Requested-With, Content-Type, Accept, User-Agent",
    ),
]


WEB_PREFIX = "/api/v1/web/"


class _TooLarge(Exception):
    def __init__(self, size: int) -> None:
        self.size = size


class WhiskMiddleware:
    """Stamps ``state.transid`` and ``state.receipt_ms`` (the origin of waitTime), answers
    ``OPTIONS``, rejects bodies over the limit with 413, and adds CORS and ``X-Request-ID``."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, max_action_put_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_action_put_bytes = max_action_put_bytes

    def _limit(self, scope: Scope) -> int:
        # Action PUTs carry code (OpenWhisk allows 48 MB); every other body is a payload (1 MB).
        if scope["method"] == "PUT" and "/actions/" in scope["path"]:
            return self.max_action_put_bytes
        return self.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        receipt_ms = time.time() * 1000.0
        transid = new_activation_id()  # the same shape: 32 hex characters
        state = scope.setdefault("state", {})
        state["transid"] = transid
        state["receipt_ms"] = receipt_ms
        logs.begin(transid)  # every line about this request carries its tid (pywhisk/logs.py)
        # Web actions send their own CORS headers and may answer OPTIONS themselves (web-custom-options):
        # controller/routes/web.py, as OpenWhisk's web route, which its API's CORS directive does not wrap.
        web = scope["path"].startswith(WEB_PREFIX)
        extra_headers = [*([] if web else CORS_HEADERS), (b"x-request-id", transid.encode())]

        if scope["method"] == "OPTIONS" and not web:
            await self._respond(send, 200, b"", extra_headers, content_type=None)
            return

        limit = self._limit(scope)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await self._reject(send, declared, limit, transid, extra_headers)
            return

        received = 0

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLarge(received)
            return message

        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", []), *extra_headers]
                if log.isEnabledFor(logging.DEBUG):  # [OW] BasicHttpService's line per request
                    log.debug("%s %s: %s", scope["method"], scope["path"], message["status"])
            await send(message)

        try:
            await self.app(scope, counted_receive, send_with_headers)
        except _TooLarge as exc:
            if not started:
                await self._reject(send, exc.size, limit, transid, extra_headers)
        except ClientDisconnect:
            # Gone before its body arrived (or timed out reading it, controller/server.py): nobody to answer.
            log.debug("client left during %s %s", scope["method"], scope["path"])
        except Exception:
            # Here rather than in an app exception handler: Starlette runs those outside every
            # middleware, and the 500 would lack X-Request-ID and CORS.
            log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            if not started:
                body = orjson.dumps({"error": WhiskError.default_message, "code": transid})
                await self._respond(send, 500, body, extra_headers)

    async def _reject(self, send: Send, size: int, limit: int, transid: str, headers: list[Any]) -> None:
        # Answered before the body is read, and the connection closed after it: the server reads no more
        # of the body than the lingering close discards (controller/server.py), so the client reads the 413.
        error = PayloadTooLarge(size, limit)
        body = orjson.dumps({"error": error.message, "code": transid})
        await self._respond(send, error.status_code, body, [*headers, (b"connection", b"close")])

    @staticmethod
    async def _respond(
        send: Send,
        status: int,
        body: bytes,
        headers: list[Any],
        content_type: bytes | None = b"application/json",
    ) -> None:
        all_headers = [*headers, (b"content-length", str(len(body)).encode())]
        if content_type:
            all_headers.append((b"content-type", content_type))
        await send({"type": "http.response.start", "status": status, "headers": all_headers})
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
