"""``HttpWasmExecutor``: the ``Executor`` seam over HTTP, to a ``pywhisk executor-wasm`` service.

Use it to run WASM actions in their own process (or several, one per core: short invocations are
bound by the Python wrappers at ~10 k/s per process, measurements.md). The wire format is the seam's
own models (service.py); every call has an explicit timeout and transport failures become
``ExecutorError``.
"""

from __future__ import annotations

import contextlib
from typing import Any

import httpx

from executor_wasm.executor import KINDS
from executor_wasm.python.executor import PYTHON_KINDS
from executor_wasm.settings import WasmSettings
from pywhisk.errors import ExecutorError
from pywhisk.executor import InitRequest, InstanceSpec, ProxyResult, RunRequest

# On top of the action's own timeout, for the service to answer (queueing, logs, the network).
MARGIN_S = 5.0
CONTROL_TIMEOUT_S = 10.0  # create, destroy


class HttpWasmExecutor:
    """Drives a remote Wasmtime executor service; same behaviour as ``WasmExecutor``.

    The service is at ``base_url`` if given, else at ``settings.executor_url``.
    """

    name = "wasm"

    def __init__(
        self,
        settings: WasmSettings,
        base_url: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        url = base_url or settings.executor_url
        if not url:
            raise ExecutorError("no wasm executor URL configured (PYWHISK_WASM_EXECUTOR_URL)")
        self.base_url = url.rstrip("/")
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._instances: set[str] = set()

    async def start(self) -> None:
        """Open the keep-alive connection pool."""
        if self._client is None:
            self._client = httpx.AsyncClient(
                base_url=self.base_url,
                transport=self._transport,
                timeout=CONTROL_TIMEOUT_S,
                limits=httpx.Limits(max_keepalive_connections=64, keepalive_expiry=30.0),
            )

    async def close(self) -> None:
        """Destroy the instances this client created, then close the connections."""
        if self._client is None:
            return
        for instance_id in list(self._instances):
            # If the service is gone, its instances went with it.
            with contextlib.suppress(ExecutorError):
                await self.destroy(instance_id)
        client, self._client = self._client, None
        await client.aclose()

    def kinds(self) -> set[str]:
        """``wasm:wasi`` and its alias ``wasm:default``, and the ``python:3`` kinds (the service runs both)."""
        return set(KINDS | PYTHON_KINDS)

    async def create(self, spec: InstanceSpec) -> None:
        """Record the instance in the service."""
        await self._post(f"/{spec.instance_id}/create", spec.model_dump(mode="json"), CONTROL_TIMEOUT_S)
        self._instances.add(spec.instance_id)

    async def init(self, instance_id: str, request: InitRequest, timeout_ms: int, log_limit_bytes: int) -> ProxyResult:
        """Send ``/init``; the service compiles or loads the module."""
        body = {
            "value": request.model_dump(mode="json"),
            "timeout_ms": timeout_ms,
            "log_limit_bytes": log_limit_bytes,
        }
        response = await self._post(f"/{instance_id}/init", body, timeout_ms / 1000 + MARGIN_S)
        return ProxyResult.model_validate_json(response.content)

    async def run(self, instance_id: str, request: RunRequest, timeout_ms: int, log_limit_bytes: int) -> ProxyResult:
        """Send ``/run``; the service enforces the timeout and the memory limit."""
        body = {
            "run": request.model_dump(mode="json"),
            "timeout_ms": timeout_ms,
            "log_limit_bytes": log_limit_bytes,
        }
        response = await self._post(f"/{instance_id}/run", body, timeout_ms / 1000 + MARGIN_S)
        return ProxyResult.model_validate_json(response.content)

    async def destroy(self, instance_id: str) -> None:
        """Remove the instance from the service; idempotent."""
        await self._post(f"/{instance_id}/destroy", None, CONTROL_TIMEOUT_S)
        self._instances.discard(instance_id)

    async def _post(self, path: str, body: Any, timeout_s: float) -> httpx.Response:
        if self._client is None:
            raise ExecutorError("the wasm executor client is not started")
        try:
            response = await self._client.post(path, json=body, timeout=timeout_s)
        except httpx.HTTPError as error:
            raise ExecutorError(f"wasm executor at {self.base_url}: {error!r}") from error
        if response.is_error:
            raise ExecutorError(
                f"wasm executor at {self.base_url}: POST {path} -> {response.status_code} {response.text}"
            )
        return response
