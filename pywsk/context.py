"""How pywsk's commands get their configuration, and the typer plumbing that makes the CLI read like `wsk`.

- `Config` is the `typer.Context.obj` every command reads: the global flags, plus the seams tests replace
  (the httpx transport, sleeping and the clock). `main(transport=...)` or `CliRunner.invoke(app, obj=Config(...))`
  inject them.
- Global flags (`--apihost`, `-u/--auth`, `-i/--insecure`, `-v/--verbose`) are accepted before the command group
  and after the command, as cobra's persistent flags are in `wsk` (`pywsk action invoke hello -i`).
- `-p KEY VALUE` and `-a KEY VALUE` take two values per occurrence, which typer cannot declare; see `WskCommand`.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import httpx
import typer
from typer.core import TyperCommand, TyperGroup

from pywsk import props
from pywsk.client import ClientError, WhiskClient
from pywsk.output import CliError, print_error

P = ParamSpec("P")
R = TypeVar("R")

PAIR_OPTIONS = frozenset({"-p", "--param", "-a", "--annotation"})


@dataclass
class Config:
    """Global flags and injected seams; the rest of the configuration comes from the properties file."""

    apihost: str | None = None
    auth: str | None = None
    insecure: bool = False
    verbose: bool = False
    transport: httpx.BaseTransport | None = None
    props_file: Path | None = None
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic

    def props_path(self) -> Path:
        return self.props_file if self.props_file is not None else props.props_path()

    @functools.cached_property
    def properties(self) -> dict[str, str]:
        """The properties file's keys, read once per command."""
        return props.read_props(self.props_path())

    def configured_apihost(self) -> str:
        """The API host as configured (flag, then properties file, then the standalone default)."""
        return self.apihost or self.properties.get("APIHOST") or props.DEFAULT_APIHOST

    def configured_auth(self) -> str:
        return self.auth or self.properties.get("AUTH") or props.GUEST_AUTH

    def namespace(self) -> str:
        """The namespace of names that do not start with `/NS/`: NAMESPACE from the properties file, else `_`."""
        return self.properties.get("NAMESPACE") or props.DEFAULT_NAMESPACE

    def apiversion(self) -> str:
        return self.properties.get("APIVERSION") or props.DEFAULT_APIVERSION

    def client(self, *, apihost: str | None = None, auth: str | None = None) -> WhiskClient:
        """A client for the configured server; `apihost`/`auth` override it (for `property set`)."""
        return WhiskClient(
            props.normalize_apihost(apihost or self.configured_apihost()),
            auth or self.configured_auth(),
            apiversion=self.apiversion(),
            insecure=self.insecure,
            transport=self.transport,
            log=_log_to_stderr if self.verbose else None,
        )


def get_config(ctx: typer.Context) -> Config:
    return ctx.ensure_object(Config)


def command(group: typer.Typer, name: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Register a pywsk command: it takes the global flags and `KEY VALUE` pairs. The docstring is its help."""

    def register(func: Callable[P, R]) -> Callable[P, R]:
        wrapped = with_global_flags(func)
        group.command(name, cls=WskCommand)(wrapped)
        return wrapped

    return register


class WskCommand(TyperCommand):
    """A command whose `-p`/`-a` options take `KEY VALUE`, two values per occurrence, as in wsk.

    Typer options take a fixed number of values and cannot repeat a pair, so the options are declared as
    repeatable single values and each pair is split into two occurrences here (`-p K V` → `-p K -p V`);
    `pairs()` joins them again. An odd count therefore means a key without its value.
    """

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, split_pairs(args))


def split_pairs(args: list[str]) -> list[str]:
    """Split each `-p K V` / `-a K V` into two occurrences of the option (nothing after `--` is touched)."""
    out: list[str] = []
    rest = iter(args)
    for token in rest:
        if token == "--":
            return [*out, token, *rest]
        if token in PAIR_OPTIONS:
            operands = list(itertools.islice(rest, 2))
            for operand in operands:
                out += [token, operand]
            if not operands:
                out.append(token)  # let typer report the missing value
            continue
        out.append(token)
    return out


def pairs(values: list[str] | None, option: str) -> list[tuple[str, str]]:
    """Re-join the values of a `KEY VALUE` option split by `WskCommand`."""
    if not values:
        return []
    if len(values) % 2:
        raise CliError(f"Arguments for '{option}' must be a KEY VALUE pair.")
    return list(zip(values[0::2], values[1::2], strict=True))


class RootGroup(TyperGroup):
    """The `pywsk` group: renders `CliError` (and any client failure) as `error: ...` with wsk's exit code."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except CliError as exc:
            print_error(exc.message)
            raise typer.Exit(exc.exit_code) from exc
        except ClientError as exc:
            print_error(str(exc))
            raise typer.Exit(exc.exit_code) from exc


# -- global flags ---------------------------------------------------------------------------------------------

_GLOBAL_PANEL = "Global flags"


def _set_apihost(ctx: typer.Context, value: str | None) -> None:
    if value is not None:
        get_config(ctx).apihost = value


def _set_auth(ctx: typer.Context, value: str | None) -> None:
    if value is not None:
        get_config(ctx).auth = value


def _set_insecure(ctx: typer.Context, value: bool) -> None:
    if value:
        get_config(ctx).insecure = True


def _set_verbose(ctx: typer.Context, value: bool) -> None:
    if value:
        get_config(ctx).verbose = True


def _global_flag(
    name: str, default: Any, annotation: Any, *decls: str, callback: Callable[..., None], help: str
) -> Any:
    option = typer.Option(
        *decls, help=help, callback=callback, expose_value=False, rich_help_panel=_GLOBAL_PANEL, show_default=False
    )
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=Annotated[annotation, option]
    )


_GLOBAL_FLAGS = (
    _global_flag("global_apihost", None, str | None, "--apihost", callback=_set_apihost,
          help="Whisk API HOST (default from the properties file, else http://127.0.0.1:3233)."),
    _global_flag("global_auth", None, str | None, "-u", "--auth", callback=_set_auth,
          help="Authorization KEY (uuid:key)."),
    _global_flag("global_insecure", False, bool, "-i", "--insecure", callback=_set_insecure,
          help="Bypass certificate checking."),
    _global_flag("global_verbose", False, bool, "-v", "--verbose", callback=_set_verbose,
          help="Verbose mode: print each HTTP request and response to stderr."),
)  # fmt: skip


def with_global_flags(func: Callable[P, R]) -> Callable[P, R]:
    """Add the global flags to a command's signature; their callbacks store them in `Config`."""
    names = {flag.name for flag in _GLOBAL_FLAGS}

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        for name in names:
            kwargs.pop(name, None)  # typer passes them even with expose_value=False
        return func(*args, **kwargs)

    signature = inspect.signature(func, eval_str=True)
    wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[*signature.parameters.values(), *_GLOBAL_FLAGS]
    )
    return wrapper


def _log_to_stderr(line: str) -> None:
    typer.echo(line, err=True)
