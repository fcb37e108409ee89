"""The echo floor: the smallest ASGI app doing what a blocking invoke must at least do (not a test).

    python bench/floors/echo_floor.py --port 8101

Per request it parses Basic auth (base64, ``uuid:key``, a constant-time compare with the guest key), reads the
whole JSON body, parses it and answers a JSON object, served by uvicorn with uvloop and httptools as pywhisk is.
No routing framework, no store, no bus, no record: what any Python server pays per request
(bench/throughput.py sets pywhisk's figure against it).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hmac
from typing import Any

import orjson
import uvicorn

from pywhisk.identity import GUEST_KEY, GUEST_UUID

Scope = dict[str, Any]
GUEST = f"{GUEST_UUID}:{GUEST_KEY}".encode()


def authorized(scope: Scope) -> bool:
    """The request carries ``Basic base64(uuid:key)`` of the guest."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, encoded = value.partition(b" ")
            if scheme.lower() != b"basic":
                return False
            try:
                return hmac.compare_digest(base64.b64decode(encoded.strip(), validate=True), GUEST)
            except (binascii.Error, ValueError):
                return False
    return False


async def read_json(receive: Any) -> Any:
    """The request body, parsed (``{}`` when empty)."""
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    body = b"".join(chunks)
    return orjson.loads(body) if body else {}


async def respond(send: Any, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def handle(params: Any) -> Any:
    """What the echo floor answers: the parameters back."""
    return params


async def app(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] != "http":  # lifespan: nothing to start
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
        return
    if not authorized(scope):
        await respond(send, 401, b'{"error":"The supplied authentication is invalid"}')
        return
    try:
        params = await read_json(receive)
    except orjson.JSONDecodeError:
        await respond(send, 400, b'{"error":"The request content was malformed"}')
        return
    await respond(send, 200, orjson.dumps({"response": {"result": handle(params)}}))


def serve(asgi: Any, description: str) -> None:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(asgi, host="127.0.0.1", port=args.port, loop="uvloop", http="httptools", log_level="warning")


if __name__ == "__main__":
    serve(app, __doc__.splitlines()[0])
