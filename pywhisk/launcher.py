"""``pywhisk``: start the server roles. Components are imported lazily, inside each command."""

from __future__ import annotations

import logging
import resource
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from pywhisk.admin import app as admin_app
from pywhisk.identity import GUEST_KEY, GUEST_UUID
from pywhisk.settings import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI

    from pywhisk.executor import Executor

app = typer.Typer(help="Run pywhisk server roles.", no_args_is_help=True, add_completion=False)
app.add_typer(admin_app, name="admin")
console = Console(stderr=True)
log = logging.getLogger("pywhisk")


def main() -> None:
    app()


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


def load_executors(settings: Settings) -> dict[str, Executor]:
    """Every installed executor plugin that can be built on this machine."""
    from pywhisk.executor import load_executor_factories

    executors: dict[str, Executor] = {}
    for name, factory in load_executor_factories().items():
        try:
            executors[name] = factory(settings)
        except Exception as exc:  # one missing backend (e.g. no Docker daemon) must not stop the rest
            log.warning("executor %r is not available: %s", name, exc)
    return executors


def build_standalone(settings: Settings) -> FastAPI:
    """Controller + invoker + executors in one process, over the in-memory bus and SQLite."""
    from controller.app import create_app
    from invoker.invoker import Invoker
    from pywhisk.bus.memory import MemoryBus
    from pywhisk.runtimes import RuntimeManifest
    from pywhisk.store.sqlite import SqliteStore

    store = SqliteStore(settings.store_path, retention_days=settings.activation_retention_days)
    bus = MemoryBus()
    manifest = RuntimeManifest.load_default()
    invoker = Invoker(settings, bus, store, load_executors(settings), manifest)
    return create_app(
        settings, store, bus, manifest=manifest, services=[invoker, _Banner(settings)], seed_guest=settings.seed_guest
    )


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


@app.command()
def standalone(
    port: Annotated[int | None, typer.Option(help="HTTP port of the API [default: 3233]")] = None,
    host: Annotated[str | None, typer.Option(help="Interface to listen on [default: 127.0.0.1]")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Store and module cache [default: ~/.pywhisk]")] = None,
    idle_timeout: Annotated[
        float | None, typer.Option(help="Seconds an idle warm instance is kept [default: 600]")
    ] = None,
) -> None:
    """Run controller, invoker and the WASM executor in one process (in-memory bus, SQLite)."""
    import uvicorn

    settings = _settings(port=port, host=host, data_dir=data_dir, idle_timeout_s=idle_timeout)
    _raise_open_files_limit()
    _exit_quietly_after_shutdown()
    uvicorn.run(
        build_standalone(settings),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        timeout_graceful_shutdown=int(settings.drain_timeout_s),
        backlog=settings.http_backlog,
    )


def _raise_open_files_limit() -> None:
    """Raise the open-files limit as far as allowed: thousands of simultaneous activations each hold a
    connection, and a WASM run holds ~4 descriptors (its stdio memfds) while it is in progress. A
    privileged process may go up to the kernel's ``fs.nr_open`` (capped at 2^20); others to their
    hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        ceiling = min(int(Path("/proc/sys/fs/nr_open").read_text()), 1 << 20)
    except (OSError, ValueError):
        ceiling = hard
    for target in (max(ceiling, hard), hard):
        if soft >= target:
            return
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, max(target, hard)))
            return
        except (ValueError, OSError):  # not privileged: stay within the hard limit
            continue


def _exit_quietly_after_shutdown() -> None:
    """uvicorn re-raises SIGINT/SIGTERM once its graceful shutdown is done; by then everything is
    closed, so the re-raised signal should end the process with status 0, not kill it."""
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: None)


def build_controller(settings: Settings) -> FastAPI:
    """A controller of the distributed mode: the API over Kafka and CouchDB (or what settings say)."""
    from controller.app import create_app
    from pywhisk.backends import create_bus, create_store

    bus = create_bus(settings, client_id=f"controller{settings.controller_id}")
    return create_app(settings, create_store(settings), bus, seed_guest=settings.seed_guest)


async def run_invoker(settings: Settings) -> None:
    """An invoker of the distributed mode, until SIGINT/SIGTERM; then it drains and stops."""
    import asyncio
    import signal

    from invoker.invoker import Invoker
    from pywhisk.backends import create_bus, create_store
    from pywhisk.runtimes import RuntimeManifest

    store = create_store(settings)
    bus = create_bus(settings, client_id=f"invoker{settings.invoker_id}")
    invoker = Invoker(settings, bus, store, load_executors(settings), RuntimeManifest.load_default())
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


@app.command()
def controller(
    controller_id: Annotated[int | None, typer.Option("--id", help="Controller index C (topic completedC)")] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port of the API [default: 3233]")] = None,
    host: Annotated[str | None, typer.Option(help="Interface to listen on [default: 127.0.0.1]")] = None,
) -> None:
    """Run a controller: the REST API and load balancer, over Kafka and CouchDB."""
    import uvicorn

    settings = _settings(controller_id=controller_id, port=port, host=host)
    _raise_open_files_limit()
    _exit_quietly_after_shutdown()
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

    settings = _settings(wasm_executor_port=port, data_dir=data_dir)
    _raise_open_files_limit()
    _exit_quietly_after_shutdown()
    serve(settings)
