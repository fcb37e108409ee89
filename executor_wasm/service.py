"""The Wasmtime executor as an HTTP service (``pywhisk executor-wasm``), driven by ``HttpWasmExecutor``.

Routes follow the action-proxy verbs per instance (reference/openwhisk.md §4): ``POST /{id}/create``,
``/{id}/init``, ``/{id}/run``, ``/{id}/destroy``. ``init`` and ``run`` always answer 200 with the
``ProxyResult`` as JSON (the action's own status is inside it); 404 means the instance is unknown.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from executor_wasm.executor import UnknownInstance, WasmExecutor
from executor_wasm.js.executor import WasmJavaScriptExecutor
from executor_wasm.settings import WasmSettings
from pywhisk.errors import ExecutorError
from pywhisk.executor import InitRequest, InstanceSpec, ProxyResult, RunRequest


class InitBody(BaseModel):
    """``POST /{id}/init``: the OpenWhisk init ``value`` plus the limits the proxy call runs under."""

    value: InitRequest
    timeout_ms: int = Field(gt=0)
    log_limit_bytes: int = Field(ge=0)


class RunBody(BaseModel):
    """``POST /{id}/run``: the OpenWhisk run body plus the limits."""

    run: RunRequest
    timeout_ms: int = Field(gt=0)
    log_limit_bytes: int = Field(ge=0)


def create_app(wasm: WasmExecutor) -> FastAPI:
    """The service app for ``wasm``; its lifespan starts and closes the executor."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await wasm.start()
        try:
            yield
        finally:
            await wasm.close()

    app = FastAPI(title="pywhisk wasm executor", lifespan=lifespan)
    app.state.executor = wasm

    @app.exception_handler(UnknownInstance)
    async def unknown_instance(request: Request, error: UnknownInstance) -> JSONResponse:
        return JSONResponse({"error": str(error)}, status_code=404)

    @app.exception_handler(ExecutorError)
    async def executor_error(request: Request, error: ExecutorError) -> JSONResponse:
        return JSONResponse({"error": str(error)}, status_code=400)

    @app.get("/health")
    async def health() -> dict[str, object]:
        return {"ok": True, "kinds": sorted(wasm.kinds())}

    @app.post("/{instance_id}/create", status_code=204)
    async def create(instance_id: str, spec: InstanceSpec) -> Response:
        await wasm.create(spec.model_copy(update={"instance_id": instance_id}))
        return Response(status_code=204)

    @app.post("/{instance_id}/init")
    async def init(instance_id: str, body: InitBody) -> Response:
        result = await wasm.init(instance_id, body.value, body.timeout_ms, body.log_limit_bytes)
        return _proxy_result(result)

    @app.post("/{instance_id}/run")
    async def run(instance_id: str, body: RunBody) -> Response:
        result = await wasm.run(instance_id, body.run, body.timeout_ms, body.log_limit_bytes)
        return _proxy_result(result)

    @app.post("/{instance_id}/destroy", status_code=204)
    async def destroy(instance_id: str) -> Response:
        await wasm.destroy(instance_id)
        return Response(status_code=204)

    return app


def serve(settings: WasmSettings, module_cache_dir: Path, *, host: str, port: int, log_level: str) -> None:
    """Serve a ``WasmJavaScriptExecutor`` on ``host:port`` until interrupted (blocking).

    The caller chooses the port (``pywhisk executor-wasm``: ``--port``, else ``settings.executor_port``).
    """
    uvicorn.run(
        create_app(WasmJavaScriptExecutor(settings, module_cache_dir)),
        host=host,
        port=port,
        log_level=log_level.lower(),
    )


def _proxy_result(result: ProxyResult) -> Response:
    # Serialised by pydantic directly: skips FastAPI's jsonable_encoder pass on the hot path.
    return Response(result.model_dump_json(), media_type="application/json")
