"""``/api/v1`` info, ``/namespaces`` and ``/namespaces/{ns}/limits``."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from controller.auth import authenticate, entitled_namespace
from controller.responses import JSONResponse
from pywhisk.entities import CONCURRENCY, LOGS_MB, MEMORY_MB, TIMEOUT_MS
from pywhisk.errors import NotFound
from pywhisk.identity import Identity

router = APIRouter()

BUILD = "pywhisk-0.1.0"


@router.get("")
async def api_info() -> JSONResponse:
    # `wsk property get --apibuild` reads `build` from here ([OW] RestAPIs.info).
    return JSONResponse(
        {
            "description": "OpenWhisk API",
            "api_version": "1.0.0",
            "api_version_path": "v1",
            "build": BUILD,
            "buildno": BUILD,
            "swagger_paths": {"ui": "/docs", "api-docs": "/api/v1/openapi.json"},
        }
    )


@router.get("/namespaces")
@router.get("/namespaces/", include_in_schema=False)  # [OW] pathEndOrSingleSlash, as every collection
async def list_namespaces(identity: Identity = Depends(authenticate)) -> JSONResponse:
    return JSONResponse([identity.namespace.name])


@router.get("/namespaces/{namespace}/limits")
async def namespace_limits(
    request: Request, namespace: str, identity: Identity = Depends(authenticate)
) -> JSONResponse:
    """The namespace's effective limits: its own (``pywhisk admin namespace limits set``) over the system
    defaults, for the whole namespace (each of N controllers enforces its share, controller/throttles.py)."""
    entitled_namespace(identity, namespace)
    settings = request.app.state.settings
    own = identity.limits
    return JSONResponse(
        {
            "invocationsPerMinute": _own_or(own.invocationsPerMinute, settings.invocations_per_minute),
            "concurrentInvocations": _own_or(own.concurrentInvocations, settings.concurrent_invocations),
            "firesPerMinute": _own_or(own.firesPerMinute, settings.fires_per_minute),
            "minActionMemory": MEMORY_MB.minimum * 1024 * 1024,
            "maxActionMemory": MEMORY_MB.maximum * 1024 * 1024,
            "minActionTimeout": TIMEOUT_MS.minimum,
            "maxActionTimeout": TIMEOUT_MS.maximum,
            "minActionLogs": LOGS_MB.minimum * 1024 * 1024,
            "maxActionLogs": LOGS_MB.maximum * 1024 * 1024,
            "maxActionConcurrency": CONCURRENCY.maximum,
            "minActionConcurrency": CONCURRENCY.minimum,
        }
    )


def _own_or(own: int | None, default: int) -> int:
    return default if own is None else own


@router.get("/namespaces/{namespace}/{collection}", include_in_schema=False)
@router.get("/namespaces/{namespace}/{collection}/", include_in_schema=False)
async def unknown_collection(
    namespace: str, collection: str, identity: Identity = Depends(authenticate)
) -> JSONResponse:
    """Actions, packages, triggers and rules have routes of their own (registered before this one); any other
    collection is 404, after the entitlement check, so another namespace's is 403 as in OpenWhisk."""
    entitled_namespace(identity, namespace)
    raise NotFound()
