"""Entry point ``pywhisk.executors: wasm`` (declared in pyproject.toml)."""

from __future__ import annotations

from pywhisk.executor import Executor
from pywhisk.settings import Settings


def create_executor(settings: Settings) -> Executor:
    """The Wasmtime executor: a client of the service at ``wasm_executor_url`` if set, else in-process."""
    if settings.wasm_executor_url:
        from executor_wasm.client import HttpWasmExecutor

        return HttpWasmExecutor(settings)
    from executor_wasm.executor import WasmExecutor

    return WasmExecutor(settings)
