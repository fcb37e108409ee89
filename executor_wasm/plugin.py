"""Entry point ``pywhisk.executors: wasm`` (declared in pyproject.toml)."""

from __future__ import annotations

from pywhisk.executor import Executor
from pywhisk.settings import Settings


def create_executor(settings: Settings) -> Executor:
    """The Wasmtime executor: a client of the service at ``wasm_executor_url`` if set, else in-process."""
    if settings.wasm_executor_url:
        from executor_wasm.client import HttpWasmExecutor

        return HttpWasmExecutor(settings)
    # The WasmExecutor with python:3 actions on the Python runner component (issue 7).
    from executor_wasm.python.executor import WasmPythonExecutor

    return WasmPythonExecutor(settings)
