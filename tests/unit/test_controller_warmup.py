"""The controller builds at start what frameworks leave to the first request (controller/warmup.py): no request
pays it on the event loop, whichever router or namespace comes first."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fastapi.routing
import httpx
import pytest

from controller.warmup import build_included_routes
from launcher.compose import build_standalone
from pywhisk.bus.memory import MemoryBus
from pywhisk.identity import GUEST_KEY, GUEST_UUID
from pywhisk.settings import Settings
from pywhisk.store.sqlite import SqliteStore
from tests.doubles import ScriptedExecutor

pytestmark = pytest.mark.unit

EFFECTIVE_ROUTE = getattr(fastapi.routing, "_EffectiveRouteContext", None)
needs_lazy_routes = pytest.mark.skipif(
    EFFECTIVE_ROUTE is None, reason="this FastAPI builds its routes when they are included, not at the first request"
)
# One request reaching each included router of the API.
FIRST_REQUESTS = [
    ("GET", "/api/v1/namespaces/_/actions"),
    ("GET", "/api/v1/namespaces/_/packages"),
    ("GET", "/api/v1/namespaces/_/activations"),
    ("GET", "/api/v1/namespaces/_/triggers"),
    ("GET", "/api/v1/namespaces/_/rules"),
    ("GET", "/api/v1/namespaces"),
    ("GET", "/api/v1/web/guest/default/nothing.json"),
    ("POST", "/api/v1/namespaces/_/actions/nothing"),
    ("GET", "/invokers"),
]


@needs_lazy_routes
async def test_no_first_request_builds_a_route_on_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert EFFECTIVE_ROUTE is not None
    settings = Settings(data_dir=tmp_path)
    app = build_standalone(
        settings, store=SqliteStore(settings.store_path), bus=MemoryBus(), executors={"wasm": ScriptedExecutor()}
    )
    built: list[str] = []
    real = EFFECTIVE_ROUTE.from_api_route

    def counted(*args: Any, **kwargs: Any) -> Any:
        built.append(str(kwargs.get("original_route", args[0] if args else "?")))
        return real(*args, **kwargs)

    async with app.router.lifespan_context(app):
        monkeypatch.setattr(EFFECTIVE_ROUTE, "from_api_route", counted)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://whisk.test", auth=(GUEST_UUID, GUEST_KEY)
        ) as api:
            statuses = [(await api.request(method, path, json={})).status_code for method, path in FIRST_REQUESTS]

    assert all(status < 500 for status in statuses), statuses
    assert built == [], f"{len(built)} routes built by the first requests"


@needs_lazy_routes
def test_included_routers_are_built_nested_ones_too() -> None:
    inner, outer = fastapi.APIRouter(), fastapi.APIRouter()

    @inner.get("/leaf")
    def leaf() -> dict[str, str]:
        return {}

    outer.include_router(inner, prefix="/inner")
    app = fastapi.FastAPI()
    app.include_router(outer, prefix="/outer")

    assert build_included_routes(app.router.routes) == 2
    assert build_included_routes([object()]) == 0
