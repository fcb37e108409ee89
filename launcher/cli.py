"""``pywhisk``: start the server roles, and ``pywhisk admin``.

The composition root and the components are imported inside each command, so ``pywhisk --help`` and
``pywhisk admin`` start without loading FastAPI, Wasmtime or Kafka clients.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from launcher.admin import app as admin_app
from launcher.process import exit_quietly_after_shutdown, raise_open_files_limit
from pywhisk.identity import GUEST_KEY, GUEST_UUID
from pywhisk.settings import Settings

app = typer.Typer(help="Run pywhisk server roles.", no_args_is_help=True, add_completion=False)
app.add_typer(admin_app, name="admin")
console = Console(stderr=True)


def main() -> None:
    """The ``pywhisk`` console script (and ``python -m pywhisk``)."""
    app()


@app.command()
def standalone(
    port: Annotated[int | None, typer.Option(help="HTTP port of the API [default: 3233]")] = None,
    host: Annotated[str | None, typer.Option(help="Interface to listen on [default: 127.0.0.1]")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Store and module cache [default: ~/.pywhisk]")] = None,
    idle_timeout: Annotated[
        float | None, typer.Option(help="Seconds an idle warm instance is kept [default: 600]")
    ] = None,
) -> None:
    """Run controller, invoker and the WASM executor in one process (SQLite store and activation journal)."""
    import uvicorn

    from controller.server import uvicorn_options
    from launcher.compose import build_standalone

    settings = _settings(port=port, host=host, data_dir=data_dir, idle_timeout_s=idle_timeout)
    raise_open_files_limit()
    exit_quietly_after_shutdown()
    uvicorn.run(
        build_standalone(settings, services=[_Banner(settings)]),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        timeout_graceful_shutdown=int(settings.drain_timeout_s),
        backlog=settings.http_backlog,
        **uvicorn_options(settings),
    )


@app.command()
def controller(
    controller_id: Annotated[int | None, typer.Option("--id", help="Controller index C (topic completedC)")] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port of the API [default: 3233]")] = None,
    host: Annotated[str | None, typer.Option(help="Interface to listen on [default: 127.0.0.1]")] = None,
) -> None:
    """Run a controller: the REST API and load balancer, over Kafka and CouchDB."""
    import uvicorn

    from controller.server import uvicorn_options
    from launcher.compose import build_controller

    settings = _settings(controller_id=controller_id, port=port, host=host)
    raise_open_files_limit()
    exit_quietly_after_shutdown()
    console.print(
        f"[bold green]pywhisk controller{settings.controller_id}[/] on http://{settings.host}:{settings.port} "
        f"(bus {settings.bus}, store {settings.store})"
    )
    uvicorn.run(
        build_controller(settings),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        backlog=settings.http_backlog,
        **uvicorn_options(settings),
    )


@app.command()
def invoker(
    invoker_id: Annotated[int | None, typer.Option("--id", help="Invoker index N (topic invokerN)")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Module cache [default: ~/.pywhisk]")] = None,
) -> None:
    """Run an invoker: consumes its topic, runs actions, writes records."""
    import asyncio

    asyncio.run(run_invoker(_settings(invoker_id=invoker_id, data_dir=data_dir)))


@app.command("executor-wasm")
def executor_wasm(
    port: Annotated[int | None, typer.Option(help="HTTP port [default: 9000]")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Module cache [default: ~/.pywhisk]")] = None,
) -> None:
    """Serve the Wasmtime executor over HTTP (/{id}/init, /{id}/run, /{id}/destroy)."""
    from executor_wasm.service import serve
    from executor_wasm.settings import WasmSettings, module_cache_dir

    settings = _settings(data_dir=data_dir)
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

    from launcher.compose import build_invoker
    from pywhisk.backends import create_bus, create_store

    # This process owns the bus and store (in standalone the controller's lifespan does), so it makes them.
    store = create_store(settings)
    bus = create_bus(settings, client_id=f"invoker{settings.invoker_id}")
    invoker = build_invoker(settings, store=store, bus=bus)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await store.start()
    await bus.start()
    try:
        await invoker.start()
        console.print(f"[bold green]pywhisk invoker{settings.invoker_id}[/] is consuming invoker{settings.invoker_id}")
        await stop.wait()
        console.print(f"invoker{settings.invoker_id}: draining")
        await invoker.close()
    finally:
        await bus.close()
        await store.close()


def _settings(**overrides: Any) -> Settings:
    settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    # Client libraries log every request or reconnect attempt at INFO; keep the log about pywhisk.
    for noisy in ("httpx", "aiokafka"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    return settings


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
