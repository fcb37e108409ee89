"""Small helpers shared by the integration tests (a real server, real Wasmtime)."""

from __future__ import annotations

import time
from typing import Any

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
