"""The controller's metrics: ``GET /metrics``, and requests counted by route template.

``/metrics`` is the Prometheus text exposition of this process (``pywhisk/metrics.py``): the controller's
series, and in standalone the invoker's too, from one endpoint. It needs no OpenWhisk key (a scraper has
none); with ``PYWHISK_METRICS_TOKEN`` set it asks for ``Authorization: Bearer <token>``, else operators
keep it off the public edge (docs/deployment.md, "Metrics").
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable

from fastapi import APIRouter, FastAPI, Request, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pywhisk.errors import Unauthorized
from pywhisk.metrics import CONTENT_TYPE, OTHER, Metrics

router = APIRouter()

# The route label of every invoke: served ahead of FastAPI's routing (controller/app.py ControllerApp), it has
# no matched template, and its package form (.../actions/{package}/{name}) counts under this one.
API_PREFIX = "/api/v1"
INVOKE_ROUTE = f"{API_PREFIX}/namespaces/{{namespace}}/actions/{{name}}"
# HTTP methods by name; anything else a client sends counts as "other" (the label stays bounded).
METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"))


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    token: str | None = request.app.state.settings.metrics_token
    if token is not None:
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            raise Unauthorized()
    registry: Metrics = request.app.state.metrics
    return Response(await registry.scrape(), media_type=CONTENT_TYPE)


def install_metrics(app: FastAPI, metrics: Metrics, invoker_statuses: Callable[[], dict[int, str]]) -> None:
    """Serve ``/metrics``, count every request (outermost middleware) and watch the invokers' health
    (``invoker_statuses``: invoker index → up, unhealthy or offline, as the balancer sees them)."""
    app.state.metrics = metrics
    app.include_router(router)
    metrics.watch_invoker_health(invoker_statuses)
    app.add_middleware(RequestMetrics, metrics=metrics)


class RequestMetrics:
    """Pure-ASGI middleware for ``pywhisk_http_requests_total`` and ``pywhisk_http_request_duration_seconds``.

    The route label is the template FastAPI matched (``scope["route"]``, set while routing, read after the
    response), or ``route`` for an app that serves one route (the invoke path, ahead of FastAPI's routing);
    a path that matched nothing is ``other``, so a client cannot mint label values. Costs ~3 µs a request.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics, route: str | None = None) -> None:
        self.app = app
        self.metrics = metrics
        self.route = route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before it answers (WhiskMiddleware's 500)

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            method = scope["method"]
            self.metrics.record_request(
                self.route or _route_of(scope),
                method if method in METHODS else OTHER,
                status,
                time.perf_counter() - started,
            )


def _route_of(scope: Scope) -> str:
    path = getattr(scope.get("route"), "path", None)
    if not isinstance(path, str):
        return OTHER
    # FastAPI 0.16x routes an included router's request through its original route, whose path lacks the
    # include's prefix; every prefixed router here is under the API's (controller/app.py).
    if not path.startswith(API_PREFIX) and scope["path"].startswith(API_PREFIX + "/"):
        return API_PREFIX + path
    return path
