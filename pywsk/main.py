"""`pywsk`: a `wsk`-compatible command line for OpenWhisk (and pywhisk) servers.

A pure HTTP client of the REST API (reference/openwhisk.md §1, §6): it talks to whatever server the properties
file, `--apihost` or the default (`pywhisk standalone` at http://127.0.0.1:3233) names.
"""

from __future__ import annotations

from typing import Annotated

import httpx
import typer

from pywsk.commands_action import action_app
from pywsk.commands_activation import activation_app
from pywsk.commands_package import package_app
from pywsk.commands_property import list_entities, namespace_app, property_app
from pywsk.commands_rule import rule_app
from pywsk.commands_trigger import trigger_app
from pywsk.context import Config, RootGroup, command, get_config, with_global_flags

app = typer.Typer(
    name="pywsk",
    cls=RootGroup,
    help="pywsk: work with OpenWhisk actions, packages, triggers, rules and activations, like wsk.",
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(action_app, name="action")
app.add_typer(activation_app, name="activation")
app.add_typer(namespace_app, name="namespace")
app.add_typer(package_app, name="package")
app.add_typer(property_app, name="property")
app.add_typer(rule_app, name="rule")
app.add_typer(trigger_app, name="trigger")


@command(app, "list")
def list_namespace(
    ctx: typer.Context,
    namespace: Annotated[str | None, typer.Argument(metavar="NAMESPACE", help="/NAMESPACE (default: yours).")] = None,
    name_sort: Annotated[bool, typer.Option("-n", "--name-sort", help="Sort each list by name.")] = False,
) -> None:
    """List entities in the current namespace: packages, actions, triggers and rules."""
    list_entities(ctx, namespace, name_sort=name_sort)


@app.callback()
@with_global_flags
def root(ctx: typer.Context) -> None:
    """pywsk: work with OpenWhisk actions, packages, triggers, rules and activations, like wsk."""
    get_config(ctx)


def main(argv: list[str] | None = None, *, transport: httpx.BaseTransport | None = None) -> None:
    """The `pywsk` console script; `transport` replaces the network (tests pass an `httpx.MockTransport`)."""
    app(args=argv, obj=Config(transport=transport), prog_name="pywsk")


if __name__ == "__main__":
    main()
