"""``pywhisk admin``: subjects, keys and namespace limits, straight in the store (like OpenWhisk's wskadmin).

The store is the standalone SQLite file when ``--data-dir`` is given (or ``--store sqlite``: then
``PYWHISK_DATA_DIR``), otherwise what the ``PYWHISK_*`` settings say (``PYWHISK_STORE``, CouchDB by default,
at ``PYWHISK_COUCHDB_URL`` with ``PYWHISK_COUCHDB_DB_PREFIX``). A running server sees the changes within its
identity cache's TTL (``PYWHISK_IDENTITY_CACHE_TTL_S``, 5 s); no restart is needed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Literal, TypeVar

import typer

from pywhisk.identity import NamespaceLimits
from pywhisk.settings import Settings
from pywhisk.store import Store
from pywhisk.system import seed_system_packages
from pywhisk.tenancy import TenancyError, create_user, delete_user, set_limits

T = TypeVar("T")

app = typer.Typer(help="Manage subjects, keys and namespace limits (like wskadmin).", no_args_is_help=True)
user_app = typer.Typer(help="Create, show, list and delete subjects and their keys.", no_args_is_help=True)
namespace_app = typer.Typer(help="Namespace settings.", no_args_is_help=True)
limits_app = typer.Typer(help="A namespace's own throttles (without them the system defaults apply).")
app.add_typer(user_app, name="user")
app.add_typer(namespace_app, name="namespace")
namespace_app.add_typer(limits_app, name="limits", no_args_is_help=True)

DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="Use the standalone SQLite store in this data directory")
]
StoreKind = Annotated[
    Literal["sqlite", "couchdb"] | None,
    typer.Option("--store", help="Which store (default: PYWHISK_STORE, else couchdb; sqlite with --data-dir)"),
]
NamespaceOption = Annotated[str | None, typer.Option("--namespace", "-ns", help="The namespace (default: NAME)")]


# user ---------------------------------------------------------------------------------------------


@user_app.command("create")
def user_create(
    name: Annotated[str, typer.Argument(help="The subject to create (at least 5 characters)")],
    namespace: NamespaceOption = None,
    auth: Annotated[
        str | None, typer.Option("--auth", "-u", help="Use this uuid:key instead of generating one")
    ] = None,
    data_dir: DataDir = None,
    store: StoreKind = None,
) -> None:
    """Create a subject with a key for NAMESPACE (default: NAME) and print the new uuid:key.

    The key is shown only now: the store keeps a salted hash of it. An existing subject gets a key for
    another namespace.
    """
    key = _run(data_dir, store, lambda s: create_user(s, name, namespace, auth))
    typer.echo(key.api_key)


@user_app.command("get")
def user_get(name: str, data_dir: DataDir = None, store: StoreKind = None) -> None:
    """Show a subject's namespaces and key uuids (keys are stored hashed and cannot be shown)."""

    async def get(s: Store) -> list[str]:
        subject = await s.get_subject(name)
        if subject is None:
            raise TenancyError(f'Subject "{name}" does not exist')
        return [f"{ns.name}\t{ns.uuid}" for ns in subject.namespaces]

    for line in _run(data_dir, store, get):
        typer.echo(line)


@user_app.command("list")
def user_list(
    namespace: Annotated[str | None, typer.Argument(help="Only subjects with a key for this namespace")] = None,
    data_dir: DataDir = None,
    store: StoreKind = None,
) -> None:
    """List subjects: one line per key, `uuid  subject  namespace`."""

    async def list_(s: Store) -> list[str]:
        return [
            f"{ns.uuid}\t{subject.subject}\t{ns.name}"
            for subject in await s.list_subjects(namespace)
            for ns in subject.namespaces
            if namespace is None or ns.name == namespace
        ]

    for line in _run(data_dir, store, list_):
        typer.echo(line)


@user_app.command("delete")
def user_delete(
    name: str, namespace: NamespaceOption = None, data_dir: DataDir = None, store: StoreKind = None
) -> None:
    """Delete a subject and all its keys, or with --namespace only its key for that namespace."""
    _run(data_dir, store, lambda s: delete_user(s, name, namespace))
    typer.echo("Namespace deleted" if namespace else "Subject deleted")


# namespace limits -----------------------------------------------------------------------------------


@limits_app.command("set")
def limits_set(
    namespace: str,
    invocations_per_minute: Annotated[
        int | None, typer.Option("--invocations-per-minute", "--invocationsPerMinute", min=0, help="Invokes per minute")
    ] = None,
    concurrent_invocations: Annotated[
        int | None,
        typer.Option("--concurrent-invocations", "--concurrentInvocations", min=0, help="Activations in flight"),
    ] = None,
    fires_per_minute: Annotated[
        int | None, typer.Option("--fires-per-minute", "--firesPerMinute", min=0, help="Trigger fires per minute")
    ] = None,
    data_dir: DataDir = None,
    store: StoreKind = None,
) -> None:
    """Set a namespace's own limits; limits not given keep their value (0 refuses every invoke)."""
    _run(
        data_dir,
        store,
        lambda s: set_limits(
            s,
            namespace,
            invocations_per_minute=invocations_per_minute,
            concurrent_invocations=concurrent_invocations,
            fires_per_minute=fires_per_minute,
        ),
    )
    typer.echo(f'Limits successfully set for "{namespace}"')


@limits_app.command("get")
def limits_get(namespace: str, data_dir: DataDir = None, store: StoreKind = None) -> None:
    """Show a namespace's effective limits, marking the system defaults."""
    settings = _settings(data_dir, store)
    own = _run(data_dir, store, lambda s: s.get_limits(namespace)) or NamespaceLimits()
    defaults = {
        "invocationsPerMinute": settings.invocations_per_minute,
        "concurrentInvocations": settings.concurrent_invocations,
        "firesPerMinute": settings.fires_per_minute,
    }
    for name, default in defaults.items():
        value = getattr(own, name)
        typer.echo(f"{name} = {default} (system default)" if value is None else f"{name} = {value}")


@limits_app.command("delete")
def limits_delete(namespace: str, data_dir: DataDir = None, store: StoreKind = None) -> None:
    """Drop a namespace's own limits: the system defaults apply again."""
    if not _run(data_dir, store, lambda s: s.delete_limits(namespace)):
        typer.echo(f'No limits found for "{namespace}", default system limits apply', err=True)
        raise typer.Exit(1)
    typer.echo("Limits deleted")


# system packages ------------------------------------------------------------------------------------


@app.command("system-packages")
def system_packages(data_dir: DataDir = None, store: StoreKind = None) -> None:
    """Install (or bring up to this release) the published whisk.system packages: utils (echo) and alarms.

    Servers do this at every start; this command is for a store no server has started on yet."""
    written = _run(data_dir, store, seed_system_packages)
    typer.echo("\n".join(f"installed {name}" for name in written) if written else "System packages are up to date")


# helpers --------------------------------------------------------------------------------------------


def _settings(data_dir: Path | None, store: str | None) -> Settings:
    settings = Settings()
    if data_dir is not None:
        return settings.model_copy(update={"data_dir": data_dir, "store": "sqlite"})
    if store is not None:
        return settings.model_copy(update={"store": store})
    return settings


def _run(data_dir: Path | None, store_kind: str | None, operation: Callable[[Store], Awaitable[T]]) -> T:
    """Open the chosen store, run one operation, close it; errors become a message and exit status 1."""
    from pywhisk.backends import create_store

    store = create_store(_settings(data_dir, store_kind))

    async def run() -> T:
        await store.start()
        try:
            return await operation(store)
        finally:
            await store.close()

    try:
        return asyncio.run(run())
    except TenancyError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    except Exception as exc:  # the store is unreachable or refused: say so without a traceback
        typer.echo(f"{type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(1) from None
