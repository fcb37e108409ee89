"""Small helpers shared by the integration tests (a real server, real Wasmtime)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx

from tests.conftest import wasm_code


def create_wasm_action(api: httpx.Client, name: str, module: str, **limits: int) -> dict[str, Any]:
    body: dict[str, Any] = {"exec": {"kind": "wasm:wasi", "code": wasm_code(module)}}
    if limits:
        body["limits"] = limits
    response = api.put(f"/namespaces/_/actions/{name}", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def invoke(api: httpx.Client, name: str, params: dict[str, Any] | None = None, **query: str) -> httpx.Response:
    return api.post(f"/namespaces/_/actions/{name}", params={"blocking": "true", **query}, json=params or {})


def annotations(record: dict[str, Any]) -> dict[str, Any]:
    return {pair["key"]: pair.get("value") for pair in record["annotations"]}


def wait_for_record(api: httpx.Client, activation_id: str, timeout_s: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        response = api.get(f"/namespaces/_/activations/{activation_id}")
        if response.status_code == 200:
            return dict(response.json())
        assert response.status_code == 404, response.text
        time.sleep(0.05)
    raise AssertionError(f"no record for {activation_id} after {timeout_s} s")


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    """Poll ``condition`` every 50 ms until it holds; fail naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not after {timeout_s} s")
        time.sleep(0.05)


def record_counts(
    api: httpx.Client, names: list[str], expected: set[str], timeout_s: float, activations: str
) -> dict[str, int]:
    """Activation id -> how many records list it, once every expected id has one (or the deadline passed).

    ``activations`` is the list path as ``api`` reaches it (e.g. "/api/v1/namespaces/_/activations"); every page
    of every name is read, so a duplicate record shows up as a count of 2.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        counts: dict[str, int] = {}
        for name in names:
            skip = 0
            while True:
                page = api.get(activations, params={"name": name, "limit": 200, "skip": skip})
                assert page.status_code == 200, page.text
                for record in page.json():
                    counts[record["activationId"]] = counts.get(record["activationId"], 0) + 1
                if len(page.json()) < 200:
                    break
                skip += 200
        if expected <= set(counts) or time.monotonic() > deadline:
            return {activation_id: n for activation_id, n in counts.items() if activation_id in expected}
        time.sleep(0.2)


def stored_in_couchdb(couchdb_url: str, db_prefix: str, activation_id: str, namespace: str = "guest") -> bool:
    """Whether CouchDB itself holds the record ``activation_id`` (read past the controller, whose read-your-writes
    answers before the store has it: controller/recent_results.py)."""
    doc_id = quote(f"{namespace}/{activation_id}", safe="")
    response = httpx.get(f"{couchdb_url}/{db_prefix}activations/{doc_id}", timeout=10)
    assert response.status_code in (200, 404), response.text
    return response.status_code == 200
