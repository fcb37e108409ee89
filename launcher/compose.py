"""The composition root: standalone, controller and invoker assembled from ``Settings``.

Every role is built here and only here, through the kernel's backend factories (``pywhisk.backends``).
Each builder takes keyword overrides for the parts a caller brings itself (a test's store double, a
bus it holds on to, scripted executors, a manifest with test kinds); a part left ``None`` is built from
the settings, as the ``pywhisk`` commands do.
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import FastAPI

from controller.app import create_app
from invoker.invoker import Invoker
from pywhisk.backends import create_bus, create_store
from pywhisk.bus import Bus
from pywhisk.executor import Executor, ExecutorEnvironment, load_executors
from pywhisk.lifecycle import Service
from pywhisk.metrics import MeteredBus, Metrics
from pywhisk.runtimes import RuntimeManifest
from pywhisk.settings import Settings
from pywhisk.store import Store


def build_standalone(
    settings: Settings,
    *,
    store: Store | None = None,
    bus: Bus | None = None,
    executors: dict[str, Executor] | None = None,
    manifest: RuntimeManifest | None = None,
    services: Sequence[Service] = (),
) -> FastAPI:
    """Controller + invoker + executors in one process, over the SQLite-journalled bus and SQLite.

    Standalone is always one process: the store is forced to ``sqlite`` and the bus to ``sqlite`` (every
    accepted activation journalled in the data directory, run after a crash) unless the settings ask
    for ``memory`` (not durable; benchmarks and tests). ``services`` start after the invoker (e.g. the
    banner that says the server is ready) and close before it.
    """
    standalone_bus = "memory" if settings.bus == "memory" else "sqlite"
    settings = settings.model_copy(update={"bus": standalone_bus, "store": "sqlite"})
    metrics = Metrics.from_settings(settings)  # one endpoint with the controller's and the invoker's series
    store, bus = instrumented_backends(settings, metrics, "standalone", store=store, bus=bus)
    manifest = manifest if manifest is not None else RuntimeManifest.load_default()
    if executors is None:
        # Worker 0 (or the only process) also cleans up after standalone workers that no longer run.
        adopts = settings.workers if settings.invoker_id == 0 else None
        environment = ExecutorEnvironment.from_settings(settings).model_copy(update={"adopts_invokers_from": adopts})
        executors = load_executors(environment)
    invoker = build_invoker(settings, store=store, bus=bus, executors=executors, manifest=manifest, metrics=metrics)
    return create_app(
        settings,
        store,
        bus,
        manifest=manifest,
        services=[invoker, *services],
        seed_guest=settings.seed_guest,
        metrics=metrics,
    )


def build_controller(settings: Settings, *, store: Store | None = None, bus: Bus | None = None) -> FastAPI:
    """A controller of the distributed mode: the API over Kafka and CouchDB (or what settings say)."""
    metrics = Metrics.from_settings(settings)
    client_id = f"controller{settings.controller_id}"
    store, bus = instrumented_backends(settings, metrics, client_id, store=store, bus=bus)
    return create_app(settings, store, bus, seed_guest=settings.seed_guest, metrics=metrics)


def build_invoker(
    settings: Settings,
    *,
    store: Store | None = None,
    bus: Bus | None = None,
    executors: dict[str, Executor] | None = None,
    manifest: RuntimeManifest | None = None,
    metrics: Metrics | None = None,
) -> Invoker:
    """An invoker over the given (or configured) bus and store, with every available executor plugin.

    The invoker does not start or close the bus and store: whoever runs it owns them (the controller's
    lifespan in standalone, ``run_invoker`` in the distributed mode).
    """
    return Invoker(
        settings,
        bus if bus is not None else create_bus(settings, client_id=f"invoker{settings.invoker_id}"),
        store if store is not None else create_store(settings),
        executors if executors is not None else load_executors(ExecutorEnvironment.from_settings(settings)),
        manifest if manifest is not None else RuntimeManifest.load_default(),
        metrics,
    )


def instrumented_backends(
    settings: Settings,
    metrics: Metrics,
    client_id: str,
    *,
    store: Store | None = None,
    bus: Bus | None = None,
    invoker: bool = False,
) -> tuple[Store, Bus]:
    """The given (or configured) store and bus, reporting group commits and publishes to ``metrics``; a given
    store is left as it is (its writer was built without the hook). ``invoker``: a distributed invoker's own
    (its records may linger for company, ``create_store``)."""
    if store is None:
        store = create_store(settings, on_flush=metrics.record_store_flush(settings.store), invoker=invoker)
    return store, MeteredBus(bus if bus is not None else create_bus(settings, client_id=client_id), metrics)
