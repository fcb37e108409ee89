"""The controller's FastAPI application, built explicitly from its parts."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from controller.activator import Activator
from controller.alarms import AlarmFeeds, AlarmScheduler
from controller.auth import Authenticator
from controller.conductors import ConductorRunner
from controller.entity_cache import CachedEntityStore, EntityChangeFeed
from controller.loadbalancer import LoadBalancer
from controller.metrics import INVOKE_ROUTE, RequestMetrics, install_metrics
from controller.middleware import WhiskMiddleware
from controller.openapi import install_openapi
from controller.responses import JSONResponse
from controller.routes import actions, activations, invoke, invokers, namespaces, packages, rules, triggers, web
from controller.routes.console import install_console
from controller.sequence_journal import SequenceJournal
from controller.sequences import SequenceRunner
from controller.throttles import Throttles
from controller.triggers import TriggerFirer
from controller.warmup import warm_up
from pywhisk.bus import Bus
from pywhisk.errors import BadRequest, MethodNotAllowed, NotFound, ServiceUnavailable, StoreUnavailable, WhiskError
from pywhisk.lifecycle import Service
from pywhisk.metrics import Metrics
from pywhisk.runtimes import RuntimeManifest
from pywhisk.settings import Settings
from pywhisk.store import ActivationStore, ScheduleStore, SequenceJournalStore, Store, SubjectStore
from pywhisk.system import seed_system_packages
from pywhisk.tenancy import seed_guest_subject

log = logging.getLogger("pywhisk.controller")

API_PREFIX = "/api/v1"
MAX_ACTION_PUT_BYTES = 50 * 1024 * 1024
STORE_UNAVAILABLE = "The service is temporarily unavailable: the database cannot be reached. Try again later."


def create_app(
    settings: Settings,
    store: Store,
    bus: Bus,
    *,
    manifest: RuntimeManifest | None = None,
    services: Sequence[Service] = (),
    seed_guest: bool = True,
    metrics: Metrics | None = None,
) -> FastAPI:
    """The controller app. ``store`` and ``bus`` are started by its lifespan, then ``services``
    (e.g. the in-process invoker of standalone mode), and all are closed in reverse order.

    Only this function holds the whole ``store``; each part gets the narrow protocol it uses: the
    authenticator and the guest seeding its ``SubjectStore`` side, the routes ``app.state.entities``
    (``EntityStore``) and ``app.state.activations`` (``ActivationStore``)."""
    subjects: SubjectStore = store
    # Read through a cache, invalidated on every write here and, over the bus, on every other controller.
    entities = CachedEntityStore(
        store,
        bus,
        instance=f"controller{settings.controller_id}",
        max_bytes=settings.entity_cache_mb * 1024 * 1024,
        ttl_s=settings.entity_cache_ttl_s,
        # Standalone workers share the SQLite file but no bus: each follows the store's entity changes instead.
        changes=store if settings.workers > 1 and isinstance(store, EntityChangeFeed) else None,
        poll_s=settings.entity_cache_poll_s,
    )
    activation_records: ActivationStore = store
    balancer = LoadBalancer(bus, store, settings)
    # One per process: standalone's invoker reports to the same one (launcher/compose.py).
    metrics = metrics if metrics is not None else Metrics.from_settings(settings)
    throttles = Throttles(settings, balancer, on_throttle=metrics.record_throttle)
    activator = Activator(balancer, activation_records, throttles, settings.controller_id)
    # Run by this controller, component after component through the activator; closed first, so the
    # sequences it cancels can still record themselves.
    journal = SequenceJournal(
        activation_records,
        entries=store.sequence_journal if isinstance(store, SequenceJournalStore) else None,
        period_s=settings.sequence_journal_period_s,
        timeout_addon_ms=settings.composition_timeout_addon_ms,
    )
    sequences = SequenceRunner(entities, activation_records, activator, journal)
    activator.run_sequences_with(sequences)
    # Compositions likewise, journalled in the same journal (the sequence runner runs its scan); closed before
    # the sequences, whose journal they use.
    conductors = ConductorRunner(entities, activation_records, activator, sequences, journal)
    activator.run_conductors_with(conductors)
    # The alarms feeds run here too, and every controller's scheduler fires the due alarms, each tick claimed
    # once in the store (controller/alarms/scheduler.py); it fires through app.state.triggers as the API does.
    schedules: ScheduleStore = store
    alarms = AlarmScheduler(
        schedules, entities, lambda namespace: app.state.authenticator.owner_of(namespace), lambda: app.state.triggers
    )
    # The feeds' writes wake this controller's scheduler: it polls the store only for other controllers' writes.
    activator.run_feeds_with(AlarmFeeds(alarms.watching(schedules), entities, activation_records))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        started: list[Service] = []
        try:
            chain: list[Service] = [store, bus, entities, balancer, *services, sequences, conductors, alarms]
            for service in chain:
                await service.start()
                started.append(service)
            if seed_guest:
                await seed_guest_subject(subjects)
            # Every start brings whisk.system up to this release's (idempotent; safe with two controllers).
            await seed_system_packages(entities)
            warm_up(app)  # before the first connection: no request builds the routes on the loop
            yield
        finally:
            for service in reversed(started):
                try:
                    await service.close()
                except Exception:
                    log.exception("error while closing %s", type(service).__name__)

    app = ControllerApp(
        title="pywhisk",
        version="0.1.0",
        description="OpenWhisk-compatible REST API",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        lifespan=lifespan,
        default_response_class=JSONResponse,
        # Starlette would answer a path with a trailing slash by a redirect to the client's own Host header;
        # OpenWhisk routes collections with or without it (the routes list both) and 404s the rest.
        redirect_slashes=False,
    )
    app.state.settings = settings
    app.state.entities = entities
    app.state.activations = activation_records
    app.state.balancer = balancer
    app.state.manifest = manifest or RuntimeManifest.load_default()
    app.state.authenticator = Authenticator(subjects, settings.identity_cache_ttl_s)
    app.state.throttles = throttles
    app.state.activator = activator
    app.state.sequences = sequences
    app.state.alarms = alarms
    # Fires triggers for the API and for feeds the controller runs (alarms): one path, one throttle.
    app.state.triggers = TriggerFirer(entities, activation_records, activator, throttles)

    # namespaces last: its catch-all collection route must not shadow the others.
    for module in (actions, packages, invoke, activations, web, triggers, rules, namespaces):
        app.include_router(module.router, prefix=API_PREFIX)
    app.include_router(invokers.router)  # at the root, as in OpenWhisk
    install_console(app)  # /console: static files for the browser, which talk to the API above
    install_openapi(app)

    _install_error_handlers(app)
    app.add_middleware(
        WhiskMiddleware,
        max_body_bytes=settings.max_payload_bytes,
        max_action_put_bytes=MAX_ACTION_PUT_BYTES,
    )
    install_metrics(app, metrics, balancer.invokers.statuses)  # its middleware outermost: counts every answer
    return app


class ControllerApp(FastAPI):
    """The FastAPI app, with the invoke route served before FastAPI's own layers (controller/routes/invoke.py)."""

    _edge: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and invoke.INVOKE_PATH.fullmatch(scope["path"]):
            if self._edge is None:  # WhiskMiddleware's stamps, limits and headers, as on every other route
                settings: Settings = self.state.settings
                self._edge = RequestMetrics(
                    WhiskMiddleware(
                        self._serve_invoke,
                        max_body_bytes=settings.max_payload_bytes,
                        max_action_put_bytes=MAX_ACTION_PUT_BYTES,
                    ),
                    self.state.metrics,
                    route=INVOKE_ROUTE,
                )
            scope["app"] = self
            await self._edge(scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    async def _serve_invoke(self, scope: Scope, receive: Receive, send: Send) -> None:
        served = await invoke.serve_invoke(scope, receive, send, _render_error)
        assert served, f"expected an invoke, got {scope['method']} {scope['path']}"


def _render_error(request: Request, exc: Exception) -> JSONResponse | None:
    """What the exception handlers below answer for ``exc`` on the invoke path; None for the rest."""
    if isinstance(exc, WhiskError):
        return _error_response(request, exc)
    if isinstance(exc, StoreUnavailable):
        log.warning("%s %s: %s", request.method, request.url.path, exc)
        return _error_response(request, ServiceUnavailable(STORE_UNAVAILABLE))
    return None


def _error_response(request: Request, error: WhiskError) -> JSONResponse:
    transid = getattr(request.state, "transid", "")
    headers = {"WWW-Authenticate": 'Basic realm="OpenWhisk secure realm"'} if error.status_code == 401 else None
    return JSONResponse({"error": error.message, "code": transid}, status_code=error.status_code, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(WhiskError)
    async def whisk_error(request: Request, exc: WhiskError) -> JSONResponse:
        return _error_response(request, exc)

    @app.exception_handler(StoreUnavailable)
    async def store_unavailable(request: Request, exc: StoreUnavailable) -> JSONResponse:
        # The store is down or restarting (its message names the backend; logged, not shown).
        log.warning("%s %s: %s", request.method, request.url.path, exc)
        return _error_response(request, ServiceUnavailable(STORE_UNAVAILABLE))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error_response(request, BadRequest(f"The request content was malformed:\n{exc.errors()}"))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        error: WhiskError
        if exc.status_code == 404:
            error = NotFound()
        elif exc.status_code == 405:
            error = MethodNotAllowed()
        else:
            error = WhiskError(str(exc.detail))
            error.status_code = exc.status_code
        return _error_response(request, error)
