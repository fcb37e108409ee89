"""``pywhisk``: start the server roles, and ``pywhisk admin``.

The composition root and the components are imported inside each command, so ``pywhisk --help`` and
``pywhisk admin`` start without loading FastAPI, Wasmtime or Kafka clients.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from launcher.admin import app as admin_app
from launcher.process import exit_quietly_after_shutdown, raise_open_files_limit
from pywhisk import logs
from pywhisk.identity import GUEST_KEY, GUEST_UUID
from pywhisk.logs import LogFormat, LogSettings
from pywhisk.settings import Settings

app = typer.Typer(help="Run pywhisk server roles.", no_args_is_help=True, add_completion=False)
app.add_typer(admin_app, name="admin")
console = Console(stderr=True)


def main() -> None:
    """The ``pywhisk`` console script (and ``python -m pywhisk``)."""
    app()


@app.callback()
def _options(
    log_format: Annotated[LogFormat | None, typer.Option(help="Log lines as text or JSON (PYWHISK_LOG_FORMAT)")] = None,
) -> None:
    # Through the environment, as every setting: it reaches the worker processes uvicorn starts too.
    if log_format is not None:
        os.environ["PYWHISK_LOG_FORMAT"] = log_format


@app.command()
def standalone(
    port: Annotated[int | None, typer.Option(help="HTTP port of the API [default: 3233]")] = None,
    host: Annotated[str | None, typer.Option(help="Interface to listen on [default: 127.0.0.1]")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Store and module cache [default: ~/.pywhisk]")] = None,
    idle_timeout: Annotated[
        float | None, typer.Option(help="Seconds an idle warm instance is kept [default: 600]")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="Processes serving the port (SO_REUSEPORT), supervised [default: 1]")
    ] = None,
    worker_id: Annotated[int | None, typer.Option(hidden=True, help="Set by the supervisor of --workers")] = None,
) -> None:
    """Run controller, invoker and the WASM executor in one process (SQLite store and activation journal)."""
    from controller.server import uvicorn_options
    from launcher.compose import build_standalone
    from launcher.workers import run_api, standalone_worker, supervise

    settings = _settings(
        "standalone", port=port, host=host, data_dir=data_dir, idle_timeout_s=idle_timeout, workers=workers
    )
    if worker_id is None and settings.workers > 1:
        raise typer.Exit(supervise(settings, "standalone"))
    if worker_id is not None:
        settings = standalone_worker(settings, worker_id)
    raise_open_files_limit()
    exit_quietly_after_shutdown()
    run_api(
        build_standalone(settings, services=[_Banner(settings)]),
        worker=worker_id is not None,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        log_config=_log_config(settings, "standalone"),
        timeout_graceful_shutdown=int(settings.drain_timeout_s),
        backlog=settings.http_backlog,
        **uvicorn_options(settings),
    )


@app.command()
def controller(
    controller_id: Annotated[int | None, typer.Option("--id", help="Controller index C (topic completedC)")] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port of the API [default: 3233]")] = None,
    host: Annotated[str | None, typer.Option(help="Interface to listen on [default: 127.0.0.1]")] = None,
    workers: Annotated[
        int | None, typer.Option(help="Processes serving the port (SO_REUSEPORT), supervised [default: 1]")
    ] = None,
    worker_id: Annotated[int | None, typer.Option(hidden=True, help="Set by the supervisor of --workers")] = None,
) -> None:
    """Run a controller: the REST API and load balancer, over Kafka and CouchDB."""
    from controller.server import uvicorn_options
    from launcher.compose import build_controller
    from launcher.workers import controller_worker, run_api, supervise

    settings = _settings("controller", controller_id=controller_id, port=port, host=host, workers=workers)
    if worker_id is None and settings.workers > 1:
        raise typer.Exit(supervise(settings, "controller"))
    if worker_id is not None:
        settings = controller_worker(settings, worker_id)
    raise_open_files_limit()
    exit_quietly_after_shutdown()
    console.print(
        f"[bold green]pywhisk controller{settings.controller_id}[/] on http://{settings.host}:{settings.port} "
        f"(bus {settings.bus}, store {settings.store})"
    )
    run_api(
        build_controller(settings),
        worker=worker_id is not None,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        log_config=_log_config(settings, "controller"),
        backlog=settings.http_backlog,
        **uvicorn_options(settings),
    )


@app.command()
def invoker(
    invoker_id: Annotated[int | None, typer.Option("--id", help="Invoker index N (topic invokerN)")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Module cache [default: ~/.pywhisk]")] = None,
    metrics_port: Annotated[int | None, typer.Option(help="Serve GET /metrics here (0: off) [default: 0]")] = None,
) -> None:
    """Run an invoker: consumes its topic, runs actions, writes records."""
    import asyncio

    settings = _settings("invoker", invoker_id=invoker_id, data_dir=data_dir, invoker_metrics_port=metrics_port)
    asyncio.run(run_invoker(settings))


@app.command("executor-wasm")
def executor_wasm(
    port: Annotated[int | None, typer.Option(help="HTTP port [default: 9000]")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Module cache [default: ~/.pywhisk]")] = None,
) -> None:
    """Serve the Wasmtime executor over HTTP (/{id}/init, /{id}/run, /{id}/destroy)."""
    from executor_wasm.service import serve
    from executor_wasm.settings import WasmSettings, module_cache_dir

    settings = _settings("executor-wasm", data_dir=data_dir)
    wasm = WasmSettings()  # PYWHISK_WASM_*: threads, runs, grants, the default port
    raise_open_files_limit()
    exit_quietly_after_shutdown()
    serve(
        wasm,
        module_cache_dir(settings.data_dir),
        host=settings.host,
        port=port if port is not None else wasm.executor_port,
        log_level=settings.log_level,
    )


async def run_invoker(settings: Settings) -> None:
    """An invoker of the distributed mode, until SIGINT/SIGTERM; then it drains and stops."""
    import asyncio
    import signal

    from launcher.compose import build_invoker, instrumented_backends
    from launcher.gctune import tune_after_start_up
    from pywhisk.metrics import Metrics, serve_metrics

    # This process owns the bus and store (in standalone the controller's lifespan does), so it makes them.
    metrics = Metrics.from_settings(settings)
    store, bus = instrumented_backends(settings, metrics, f"invoker{settings.invoker_id}", invoker=True)
    invoker = build_invoker(settings, store=store, bus=bus, metrics=metrics)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await store.start()
    await bus.start()
    scrapes = None
    try:
        await invoker.start()
        tune_after_start_up()
        if settings.invoker_metrics_port:  # its own /metrics: an invoker has no API port (docs/deployment.md)
            scrapes = await serve_metrics(metrics, settings.host, settings.invoker_metrics_port)
        console.print(f"[bold green]pywhisk invoker{settings.invoker_id}[/] is consuming invoker{settings.invoker_id}")
        await stop.wait()
        console.print(f"invoker{settings.invoker_id}: draining")
        await invoker.close()
    finally:
        if scrapes is not None:
            scrapes.close()
        await bus.close()
        await store.close()


def _settings(command: str, **overrides: Any) -> Settings:
    settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    _configure_logs(settings, command)
    return settings


def _configure_logs(settings: Settings, command: str) -> None:
    logs.configure(_log_config(settings, command))
    if LogSettings().format == "json":  # the banners too: every line the process writes is one JSON object
        console.file = logs.LineLogger(logging.getLogger("pywhisk.launcher"))
        console.soft_wrap = True


def _log_config(settings: Settings, command: str) -> dict[str, Any]:
    """The command's logging (pywhisk/logs.py): for this process, and for uvicorn's, which applies it in every
    worker process it starts. Lines outside any request or activation name the command's component."""
    controller = f"controller{settings.controller_id}"  # standalone: the invoker binds its own name
    roles = {"standalone": controller, "controller": controller, "invoker": f"invoker{settings.invoker_id}"}
    return logs.dict_config(settings.log_level, LogSettings().format, roles.get(command, command))


class _Banner:
    """Prints where to reach the server once everything has started."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def start(self) -> None:
        apihost = f"http://{self.settings.host}:{self.settings.port}"
        console.print(f"[bold green]pywhisk standalone[/] is ready at [bold]{apihost}[/]")
        console.print(f"  data directory: {self.settings.data_dir}")
        console.print(f"  guest key:      {GUEST_UUID}:{GUEST_KEY}")
        console.print(f"  configure:      pywsk property set --apihost {apihost} --auth {GUEST_UUID}:{GUEST_KEY}")
        console.print("  stop with Ctrl-C")

    async def close(self) -> None:
        console.print("pywhisk standalone stopped")
