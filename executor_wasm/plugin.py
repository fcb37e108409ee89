"""Entry point ``pywhisk.executors: wasm`` (declared in pyproject.toml)."""

from __future__ import annotations

from executor_wasm.settings import WasmSettings, module_cache_dir
from pywhisk.executor import Executor, ExecutorEnvironment


def create_executor(environment: ExecutorEnvironment) -> Executor:
    """The Wasmtime executor, configured by ``PYWHISK_WASM_*`` (settings.py).

    A client of the ``pywhisk executor-wasm`` service at ``PYWHISK_WASM_EXECUTOR_URL`` if set, else
    in-process, with its compiled modules under the invoker's data directory.
    """
    settings = WasmSettings()
    if settings.executor_url:
        from executor_wasm.client import HttpWasmExecutor

        return HttpWasmExecutor(settings)
    # The WasmExecutor with python:3 actions on the Python runner component (issue 7) and nodejs actions on
    # the JavaScript runner component (issue 16).
    from executor_wasm.js.executor import WasmJavaScriptExecutor

    return WasmJavaScriptExecutor(settings, module_cache_dir(environment.data_dir))
