"""The HTTP side of the CouchDB store: one keep-alive client, errors, documents, views and retries.

Everything the document families (``subjects``, ``entities``, ``activations``) share: how a request is sent
and its failure named (an unreachable server or a 5xx is ``CouchDBUnavailable``, a ``StoreUnavailable``, so
the API answers 503), how a document is read, replaced or deleted whatever its current revision, and how a
JavaScript map view with the ``_count`` reduce is listed newest first or counted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from pywhisk.errors import ConcurrentModification, StoreUnavailable

__all__ = ["RETRIES", "CouchClient", "CouchDBError", "CouchDBUnavailable", "Designs", "doc_path", "json_param"]

Designs = dict[str, dict[str, dict[str, str]]]
"""Design documents of one database: design name → view name → ``{"map": ..., "reduce": ...}``."""

# Optimistic-concurrency retries for writes without a caller-supplied revision (identities, deletes).
RETRIES = 5


class CouchDBError(Exception):
    """CouchDB answered with an error: the HTTP status and CouchDB's ``error``/``reason``."""

    def __init__(self, message: str, status: int | None = None, error: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error = error


class CouchDBUnavailable(CouchDBError, StoreUnavailable):
    """CouchDB could not be reached (refused, unresolvable, or timed out) or answered 5xx."""


class CouchClient:
    """One CouchDB server over one keep-alive HTTP client, with Basic auth when a username is given.

    The password never stays in the URL (``url`` is without it), so it cannot show in an error message.
    """

    def __init__(
        self,
        url: str,
        username: str | None = None,
        password: str | None = None,
        *,
        timeout_s: float = 60.0,
        connect_timeout_s: float = 5.0,
    ) -> None:
        parsed = httpx.URL(url)
        if username is None and parsed.username:
            username, password = parsed.username, parsed.password
        self.url = str(parsed.copy_with(username=None, password=None)).rstrip("/")
        """The server's URL, without credentials."""
        self._client = httpx.AsyncClient(
            base_url=self.url,
            auth=httpx.BasicAuth(username, password or "") if username else None,
            # The read timeout is generous because the first query after many writes builds the view index.
            timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
            headers={"Accept": "application/json"},
        )

    async def close(self) -> None:
        """Close the HTTP client and its connections."""
        await self._client.aclose()

    # requests -------------------------------------------------------------------------------------

    async def request(
        self, method: str, path: str, *, params: dict[str, str] | None = None, json: Any = None
    ) -> tuple[int, Any]:
        """Send ``json`` (if given) and return the status and the decoded body; ``CouchDBUnavailable`` when
        the server cannot be reached. Error statuses are returned, for the caller to interpret."""
        content = orjson.dumps(json) if json is not None else None
        return await self.send(method, path, params=params, content=content)

    async def send(
        self, method: str, path: str, *, params: dict[str, str] | None = None, content: bytes | None = None
    ) -> tuple[int, Any]:
        """As ``request``, with a body serialised already."""
        headers = {"Content-Type": "application/json"} if content is not None else None
        try:
            response = await self._client.request(method, path, params=params, content=content, headers=headers)
        except httpx.TransportError as exc:  # refused, DNS, TLS, timeouts: say where we tried to go
            raise CouchDBUnavailable(
                f"CouchDB at {self.url} is unreachable ({method} {path}): {type(exc).__name__}: {exc}"
            ) from exc
        try:
            body = orjson.loads(response.content) if response.content else None
        except orjson.JSONDecodeError:
            body = {"error": "not_json", "reason": response.text[:200]}
        return response.status_code, body

    def error(self, status: int, body: Any, what: str) -> CouchDBError:
        """The exception for an unexpected answer: ``what`` failed, with CouchDB's status and reason."""
        error = body.get("error") if isinstance(body, dict) else None
        reason = body.get("reason") if isinstance(body, dict) else None
        hint = " (check the CouchDB username and password)" if status in (401, 403) else ""
        message = f"{what}: CouchDB at {self.url} answered {status} {error}: {reason}{hint}"
        # A server error is CouchDB's trouble, not the request's: callers retry or answer 503.
        kind = CouchDBUnavailable if status >= 500 else CouchDBError
        return kind(message, status, error)

    # databases and design documents ---------------------------------------------------------------

    async def ensure_database(self, db: str) -> None:
        """Create the database unless it exists."""
        status, body = await self.request("PUT", f"/{db}")
        # 412 (CouchDB, pouchdb-server) or 409: it exists already, which is what a restart sees.
        if status not in (201, 202, 409, 412):
            raise self.error(status, body, f"could not create database {db}")

    async def prepare(self, db: str, designs: Designs) -> None:
        """Create the database and write its design documents, each only if missing or different."""
        await self.ensure_database(db)
        await self.ensure_designs(db, designs)

    async def ensure_designs(self, db: str, designs: Designs) -> None:
        """Write each design document unless it holds these views already (an older pywhisk's are replaced)."""
        for name, views in designs.items():
            await self._ensure_design(db, name, views)

    async def _ensure_design(self, db: str, name: str, views: dict[str, dict[str, str]]) -> None:
        path = f"/{db}/_design/{name}"
        for _ in range(RETRIES):
            status, current = await self.request("GET", path)
            if status == 200 and current.get("views") == views and current.get("language") == "javascript":
                return
            if status not in (200, 404):
                raise self.error(status, current, f"could not read design document {db}/_design/{name}")
            doc: dict[str, Any] = {"_id": f"_design/{name}", "language": "javascript", "views": views}
            if status == 200:
                doc["_rev"] = current["_rev"]  # an older pywhisk's views: replace them
            status, body = await self.request("PUT", path, json=doc)
            if status in (201, 202):
                return
            if status != 409:  # 409: another process wrote it at the same moment; look again
                raise self.error(status, body, f"could not write design document {db}/_design/{name}")
        raise CouchDBError(f"design document {db}/_design/{name} keeps changing under us", 409, "conflict")

    # documents ------------------------------------------------------------------------------------

    async def get_doc(self, db: str, doc_id: str) -> dict[str, Any] | None:
        """The document, or None if there is none."""
        status, body = await self.request("GET", doc_path(db, doc_id))
        if status == 404:
            return None
        if status != 200:
            raise self.error(status, body, f"could not read {db}/{doc_id}")
        return dict(body)

    async def put_replacing(self, db: str, doc_id: str, doc: dict[str, Any]) -> None:
        """Create or replace the document, whatever revision is current (last writer wins)."""
        for _ in range(RETRIES):
            status, body = await self.request("PUT", doc_path(db, doc_id), json=doc)
            if status in (201, 202):
                return
            if status != 409:
                raise self.error(status, body, f"could not store {db}/{doc_id}")
            current = await self.get_doc(db, doc_id)  # replace whatever revision is there now
            if current is None:
                doc.pop("_rev", None)
            else:
                doc["_rev"] = current["_rev"]
        raise ConcurrentModification()

    async def delete_current(
        self, db: str, doc_id: str, wanted: Callable[[dict[str, Any]], bool]
    ) -> dict[str, Any] | None:
        """Delete the current revision of the document if ``wanted(doc)``; returns what was deleted, or None."""
        for _ in range(RETRIES):
            doc = await self.get_doc(db, doc_id)
            if doc is None or not wanted(doc):
                return None
            status, body = await self.request("DELETE", doc_path(db, doc_id), params={"rev": doc["_rev"]})
            if status in (200, 202):
                return doc
            # Changed or deleted between our read and the delete (CouchDB 409, pouchdb-server 404): re-read.
            if status not in (404, 409):
                raise self.error(status, body, f"could not delete {db}/{doc_id}")
        raise ConcurrentModification()

    async def bulk_docs(self, db: str, payload: bytes) -> list[dict[str, Any]]:
        """POST a ``{"docs": [...]}`` body serialised already; returns CouchDB's per-document results."""
        status, body = await self.send("POST", f"/{db}/_bulk_docs", content=payload)
        if status not in (201, 202) or not isinstance(body, list):
            raise self.error(status, body, f"_bulk_docs on {db} failed")
        return body

    # views ----------------------------------------------------------------------------------------

    async def view_rows(
        self,
        db: str,
        design: str,
        view: str,
        *,
        low: list[Any],
        high: list[Any],
        limit: int,
        skip: int,
        include_docs: bool = True,
    ) -> list[dict[str, Any]]:
        """Rows of the inclusive key range ``low``..``high``, highest key first; with their documents if
        ``include_docs``, else only with the value the view emits (a summary: CouchDB reads no document)."""
        # Newest first: walk the index backwards from the high key to the low key.
        params = {
            "startkey": json_param(high),
            "endkey": json_param(low),
            "descending": "true",
            "reduce": "false",
            "include_docs": "true" if include_docs else "false",
            "limit": str(limit),
            "skip": str(skip),
        }
        status, body = await self.request("GET", f"/{db}/_design/{design}/_view/{view}", params=params)
        if status != 200:
            raise self.error(status, body, f"could not query view {db}/_design/{design}/_view/{view}")
        return list(body["rows"])

    async def view_count(self, db: str, design: str, view: str, *, low: list[Any], high: list[Any]) -> int:
        """How many rows the inclusive key range holds, by the view's ``_count`` reduce."""
        params = {"startkey": json_param(low), "endkey": json_param(high), "reduce": "true"}
        status, body = await self.request("GET", f"/{db}/_design/{design}/_view/{view}", params=params)
        if status != 200:
            raise self.error(status, body, f"could not count view {db}/_design/{design}/_view/{view}")
        rows = body["rows"]
        return int(rows[0]["value"]) if rows else 0  # an empty range reduces to no row at all


def doc_path(db: str, doc_id: str) -> str:
    """The URL path of a document. Our ids hold '/', which must reach CouchDB as %2F to stay one segment."""
    return f"/{db}/{quote(doc_id, safe='')}"


def json_param(value: Any) -> str:
    """A view key as a query parameter (JSON text)."""
    return orjson.dumps(value).decode()
