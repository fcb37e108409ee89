"""`pywsk`: a `wsk`-compatible command line for OpenWhisk (and pywhisk) servers.

A pure HTTP client of the REST API (reference/openwhisk.md §1, §6): it talks to whatever server the properties
file, `--apihost` or the default (`pywhisk standalone` at http://127.0.0.1:3233) names.
"""

from __future__ import annotations

import httpx
import typer

from pywsk.commands_action import action_app
from pywsk.commands_activation import activation_app
from pywsk.commands_property import namespace_app, property_app
from pywsk.context import Config, RootGroup, get_config, with_global_flags

app = typer.Typer(
    name="pywsk",
    cls=RootGroup,
    help="pywsk: work with OpenWhisk actions and activations, like wsk.",
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(action_app, name="action")
app.add_typer(activation_app, name="activation")
app.add_typer(namespace_app, name="namespace")
app.add_typer(property_app, name="property")


@app.callback()
@with_global_flags
def root(ctx: typer.Context) -> None:
    """pywsk: work with OpenWhisk actions and activations, like wsk."""
    get_config(ctx)


def main(argv: list[str] | None = None, *, transport: httpx.BaseTransport | None = None) -> None:
    """The `pywsk` console script; `transport` replaces the network (tests pass an `httpx.MockTransport`)."""
    app(args=argv, obj=Config(transport=transport), prog_name="pywsk")


if __name__ == "__main__":
    main()
