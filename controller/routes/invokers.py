"""``GET /invokers``: the health of every invoker as this controller sees it ([OW] Controller.scala
``internalInvokerHealth``: a map of invoker name to "up", "down" or "unhealthy")."""

from __future__ import annotations

from fastapi import APIRouter, Request

from controller.loadbalancer import LoadBalancer
from controller.responses import JSONResponse

router = APIRouter()

_OPENWHISK_NAMES = {"up": "up", "offline": "down", "unhealthy": "unhealthy"}


@router.get("/invokers")
async def invoker_health(request: Request) -> JSONResponse:
    balancer: LoadBalancer = request.app.state.balancer
    statuses = balancer.invokers.statuses()
    return JSONResponse({f"invoker{i}": _OPENWHISK_NAMES[status] for i, status in statuses.items()})
