"""A tiny async OpenWhisk REST client: put an action, invoke it blocking, get an activation record.

Only what the experiments need, over httpx with one connection per request in flight (loadgen/transport.py, far
cheaper per request than httpx's own pool), so the client never queues requests itself. Invocations never raise
for a failed request: the outcome (record, HTTP status or transport error) is returned, because the experiments
must record failures.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from loadgen.config import Target
from loadgen.errors import LoadgenError
from loadgen.transport import LendingTransport

# Statuses an activation record can carry in `response.status` (reference/openwhisk.md §3).
SUCCESS = "success"
JSON = "application/json"
# How long an idle pooled connection is reused: below the server's keep-alive timeout (pywhisk's
# PYWHISK_HTTP_KEEP_ALIVE_S is 30 s, uvicorn's default 5 s, OpenWhisk's nginx 10 s). With httpx's default,
# also 5 s, a server at 5 s may close an idle connection just as a request is sent on it: the request is lost with
# a ReadError (the server's kernel resets a socket closed with unread data), and a POST must not be retried,
# since it cannot be known whether it arrived. Seen once in 900 POSTs sent ~1 s apart to a 1 s keep-alive
# (none in 2,000 more, none at a 0.5 s client expiry): rare, but free to rule out (docs/benchmarks.md, issue 17).
KEEPALIVE_EXPIRY_S = 2.0

# httpcore asks which async library runs by importing sniffio, for each lock and event it makes (4 per request),
# and falls back to asyncio when that fails. Without the package (httpx no longer requires it) every attempt
# searches sys.path again: 50-280 µs each, ~10-20 % of the client's CPU per non-blocking invoke (py-spy, issue 17).
# A None entry makes the import fail at once, with the same outcome.
if importlib.util.find_spec("sniffio") is None:
    sys.modules.setdefault("sniffio", None)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Invocation:
    """The outcome of one blocking invoke, as the client saw it.

    ``record`` is the activation record (the blocking answer, or fetched by polling after a 202); ``status`` is
    the record's ``response.status``, or ``"http <code>"`` / ``"transport error"`` / ``"accepted"`` (a 202 whose
    record was not fetched) when there is no record.
    """

    action: str
    activation_id: str | None
    http_status: int | None
    client_ms: float
    issued_at: float
    completed_at: float
    record: dict[str, Any] | None
    status: str
    error: str | None = None
    polled: bool = False
    blocking: bool = True

    @property
    def succeeded(self) -> bool:
        """A successful activation: answered in time by the blocking invoke, or (non-blocking) recorded."""
        if not self.blocking:
            return self.status == SUCCESS
        return self.http_status == 200 and self.status == SUCCESS and not self.polled

    @property
    def message(self) -> str | None:
        """The record's ``response.result.error`` (what OpenWhisk says went wrong), else the HTTP error text."""
        response = (self.record or {}).get("response")
        result = response.get("result") if isinstance(response, dict) else None
        if isinstance(result, dict) and isinstance(result.get("error"), str):
            return str(result["error"])
        return self.error

    def annotation(self, key: str) -> Any:
        """The value of an annotation of the record (``waitTime``, ``initTime``, ...), or None."""
        if self.record is None:
            return None
        for pair in self.record.get("annotations") or []:
            if isinstance(pair, dict) and pair.get("key") == key:
                return pair.get("value")
        return None


class WhiskClient:
    """An OpenWhisk API client for one namespace; use as ``async with WhiskClient(target, ...) as client``."""

    def __init__(
        self,
        target: Target,
        *,
        max_connections: int = 32,
        timeout_s: float = 180.0,
        namespace: str = "_",
        poll_timeout_s: float = 300.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.target = target
        self.namespace = namespace
        self.poll_timeout_s = poll_timeout_s
        # Non-blocking invokes and polls wait here rather than in httpx's pool, whose queue costs O(waiters)
        # per request handed out: 10,000 waiting there kept the client at 100 % CPU and the server idle.
        self._in_flight = asyncio.Semaphore(max_connections)
        self._http = httpx.AsyncClient(
            base_url=f"{target.apihost}/api/v1",
            auth=target.credentials,
            timeout=httpx.Timeout(timeout_s, connect=30.0, pool=None),
            transport=transport or LendingTransport(max_connections, keepalive_expiry=KEEPALIVE_EXPIRY_S),
        )

    async def __aenter__(self) -> WhiskClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def check(self) -> dict[str, Any]:
        """The API's info document (``GET /api/v1``), after checking the key works; a LoadgenError otherwise."""
        try:
            info = await self._http.get(f"{self.target.apihost}/api/v1", timeout=10.0)
            listing = await self._http.get(f"/namespaces/{self.namespace}/actions", params={"limit": 1}, timeout=10.0)
        except httpx.HTTPError as error:
            raise LoadgenError(f"cannot reach the API host {self.target.apihost}: {_describe(error)}") from error
        if listing.status_code in (401, 403):
            raise LoadgenError(f"the API host {self.target.apihost} refused the auth key (HTTP {listing.status_code})")
        if listing.status_code != 200:
            raise LoadgenError(f"{self.target.apihost} does not answer like an OpenWhisk API: {_error_text(listing)}")
        try:
            body = info.json()
        except ValueError:
            body = {}
        return body if isinstance(body, dict) else {}

    async def put_action(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create or update (``overwrite=true``) an action; the stored document. Every update is a new revision."""
        try:
            response = await self._http.put(
                f"/namespaces/{self.namespace}/actions/{quote(name, safe='')}",
                params={"overwrite": "true"},
                json=body,
            )
        except httpx.HTTPError as error:
            raise LoadgenError(f"PUT action {name} failed: {_describe(error)}") from error
        if response.status_code != 200:
            raise LoadgenError(f"PUT action {name}: HTTP {response.status_code}: {_error_text(response)}")
        document: dict[str, Any] = response.json()
        return document

    async def get_activation(self, activation_id: str) -> dict[str, Any] | None:
        """The activation record, or None while it does not exist yet (404)."""
        response = await self._http.get(f"/namespaces/{self.namespace}/activations/{activation_id}")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise LoadgenError(f"GET activation {activation_id}: HTTP {response.status_code}: {_error_text(response)}")
        record: dict[str, Any] = response.json()
        return record

    async def invoke(
        self, name: str, params: dict[str, Any] | None, *, poll: bool = True, content: bytes | None = None
    ) -> Invocation:
        """Invoke blocking (``blocking=true&result=false``, as WoW's tools do) and time it on the client.

        A 202 means the server stopped waiting (OpenWhisk's 60 s blocking limit): with ``poll`` the record is then
        fetched until it exists (``polled`` is set, so callers can tell it did not finish within the blocking wait).
        ``content`` sends that JSON text as the parameters instead (JSON ``json.dumps`` would refuse to write).
        """
        issued = time.monotonic()
        body: dict[str, Any] = (
            {"json": params} if content is None else {"content": content, "headers": {"content-type": JSON}}
        )
        try:
            response = await self._http.post(
                f"/namespaces/{self.namespace}/actions/{quote(name, safe='')}",
                params={"blocking": "true", "result": "false"},
                **body,
            )
        except httpx.HTTPError as error:
            done = time.monotonic()
            return Invocation(
                name, None, None, (done - issued) * 1000, issued, done, None, "transport error", _describe(error)
            )
        done = time.monotonic()
        client_ms = (done - issued) * 1000
        activation_id = response.headers.get("x-openwhisk-activation-id")
        body = _json_or_none(response)
        if isinstance(body, dict) and isinstance(body.get("activationId"), str):
            activation_id = body["activationId"]
        if response.status_code == 202 and activation_id:
            if not poll:
                return Invocation(name, activation_id, 202, client_ms, issued, done, None, "accepted")
            record = await self._poll(activation_id)
            status = _record_status(record) if record else "accepted"
            missing = None if record else f"no record after {self.poll_timeout_s:.0f} s of polling"
            return Invocation(name, activation_id, 202, client_ms, issued, done, record, status, missing, polled=True)
        if isinstance(body, dict) and isinstance(body.get("response"), dict):
            return Invocation(
                name, activation_id, response.status_code, client_ms, issued, done, body, _record_status(body)
            )
        return Invocation(
            name,
            activation_id,
            response.status_code,
            client_ms,
            issued,
            done,
            None,
            f"http {response.status_code}",
            _error_text(response),
        )

    async def invoke_nonblocking(self, name: str, params: dict[str, Any] | None, *, poll_after_s: float) -> Invocation:
        """Invoke non-blocking (``blocking=false``) and fetch the record by polling, from ``poll_after_s`` after
        the 202 on: the server holds no connection while the activation runs, so the number in progress is not
        bounded by descriptors on either side (each blocking invoke holds a socket in the client and the server).
        This is the thesis tools' fallback for an answer without a record (reference §6.1): ``GET
        activations/<id>``. ``client_ms`` is the time to the 202, ``completed_at`` when the record was fetched.
        """
        issued = time.monotonic()
        try:
            async with self._in_flight:
                response = await self._http.post(
                    f"/namespaces/{self.namespace}/actions/{quote(name, safe='')}",
                    params={"blocking": "false"},
                    json=params,
                )
        except httpx.HTTPError as error:
            done = time.monotonic()
            return Invocation(
                name,
                None,
                None,
                (done - issued) * 1000,
                issued,
                done,
                None,
                "transport error",
                _describe(error),
                blocking=False,
            )
        accepted = time.monotonic()
        body = _json_or_none(response)
        activation_id = body.get("activationId") if isinstance(body, dict) else None
        if response.status_code != 202 or not isinstance(activation_id, str):
            return Invocation(
                name,
                None,
                response.status_code,
                (accepted - issued) * 1000,
                issued,
                accepted,
                None,
                f"http {response.status_code}",
                _error_text(response),
                blocking=False,
            )
        await asyncio.sleep(max(0.0, poll_after_s - (time.monotonic() - accepted)))
        record = await self._poll(activation_id)
        status = _record_status(record) if record else "accepted"
        missing = None if record else f"no record after {self.poll_timeout_s:.0f} s of polling"
        return Invocation(
            name,
            activation_id,
            202,
            (accepted - issued) * 1000,
            issued,
            time.monotonic(),
            record,
            status,
            missing,
            polled=True,
            blocking=False,
        )

    async def request(
        self,
        method: str,
        path: str,
        *,
        label: str,
        params: dict[str, Any] | None = None,
        json: Any = None,
        content: bytes | None = None,
    ) -> Invocation:
        """Any other API call (``path`` under ``/api/v1``), timed, never raising: the outcome as an
        :class:`Invocation` labelled ``label``, with status ``"http <code>"`` (``"transport error"``) and the
        error text of a failed answer. The body is dropped (lists of big records must not pile up here)."""
        issued = time.monotonic()
        try:
            response = await self._http.request(method, path, params=params, json=json, content=content)
        except httpx.HTTPError as failure:
            done = time.monotonic()
            return Invocation(
                label, None, None, (done - issued) * 1000, issued, done, None, "transport error", _describe(failure)
            )
        done = time.monotonic()
        error = None if response.is_success else _error_text(response)
        return Invocation(
            label,
            None,
            response.status_code,
            (done - issued) * 1000,
            issued,
            done,
            None,
            f"http {response.status_code}",
            error,
        )

    async def get_json(self, path: str) -> Any:
        """``GET path`` (under ``/api/v1``) as JSON; a LoadgenError unless it answers 200."""
        try:
            response = await self._http.get(path)
        except httpx.HTTPError as error:
            raise LoadgenError(f"GET {path} failed: {_describe(error)}") from error
        if response.status_code != 200:
            raise LoadgenError(f"GET {path}: HTTP {response.status_code}: {_error_text(response)}")
        return response.json()

    async def _poll(self, activation_id: str) -> dict[str, Any] | None:
        deadline = time.monotonic() + self.poll_timeout_s
        while time.monotonic() < deadline:
            try:
                async with self._in_flight:
                    record = await self.get_activation(activation_id)
            except (httpx.HTTPError, LoadgenError):
                record = None
            if record is not None:
                return record
            await asyncio.sleep(0.5)
        return None


def _record_status(record: dict[str, Any]) -> str:
    response = record.get("response")
    if isinstance(response, dict) and isinstance(response.get("status"), str):
        return str(response["status"])
    return "unknown"


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _error_text(response: httpx.Response) -> str:
    body = _json_or_none(response)
    if isinstance(body, dict) and "error" in body:
        return str(body["error"])
    return response.text[:200] or response.reason_phrase


def _describe(error: httpx.HTTPError) -> str:
    text = str(error) or type(error).__name__
    return f"{type(error).__name__}: {text}" if text != type(error).__name__ else text
