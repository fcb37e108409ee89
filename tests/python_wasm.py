"""Shared by the Python-on-WASM tests: the runner component, built once per machine and cached."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from executor_wasm.cache import create_engine
from executor_wasm.python.build import load_runner
from executor_wasm.python.runner import Runner, create_runner
from executor_wasm.settings import WasmSettings


@pytest.fixture(scope="session")
def python_runner() -> Iterator[Runner]:
    """The compiled Python runner, built here first if the cache is empty (~10 s idle, ~1 min under load),
    so servers started by the tests find it cached instead of building it inside an activation."""
    engine = create_engine()
    yield create_runner(engine, load_runner(engine, WasmSettings().python_cache_dir))


def create_wasm_python_action(api: httpx.Client, name: str, code: str, **limits: int) -> dict[str, Any]:
    """A ``python:3`` action pinned to the WASM executor (what ``pywsk ... --executor wasm`` sends)."""
    body: dict[str, Any] = {
        "exec": {"kind": "python:3", "code": code},
        "annotations": [{"key": "executor", "value": "wasm"}],
    }
    if limits:
        body["limits"] = limits
    response = api.put(f"/namespaces/_/actions/{name}", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())
