"""`pywsk property` (the properties file), `pywsk namespace` and `pywsk list` ([CLI] commands/property.go,
namespace.go)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from pywsk import props
from pywsk.client import USER_AGENT, ClientError
from pywsk.commands_package import print_package_list
from pywsk.commands_rule import print_rule_list, with_statuses
from pywsk.commands_trigger import print_trigger_list
from pywsk.context import command, get_config
from pywsk.entities import parse_namespace_argument
from pywsk.formatting import action_row, sort_actions
from pywsk.output import CliError, ok, reporting

property_app = typer.Typer(help="Work with whisk properties.", no_args_is_help=True)
namespace_app = typer.Typer(help="Work with namespaces.", no_args_is_help=True)


@property_app.command("set")
def property_set(
    ctx: typer.Context,
    apihost: Annotated[str | None, typer.Option("--apihost", metavar="HOST", help="Whisk API HOST.")] = None,
    auth: Annotated[str | None, typer.Option("-u", "--auth", metavar="KEY", help="Authorization KEY.")] = None,
    namespace: Annotated[
        str | None,
        typer.Option("--namespace", metavar="NAMESPACE", help="Whisk NAMESPACE (must be one of yours)."),
    ] = None,
    apiversion: Annotated[
        str | None, typer.Option("--apiversion", metavar="VERSION", help="Whisk API VERSION.")
    ] = None,
) -> None:
    """Set properties in the properties file (~/.wskprops, or $WSK_CONFIG_FILE)."""
    config = get_config(ctx)
    updates: dict[str, str | None] = {}
    messages: list[str] = []
    if auth:
        updates["AUTH"] = auth
        messages.append("whisk auth set. Run 'pywsk property get --auth' to see the new value.")
    if apihost:
        updates["APIHOST"] = apihost
        messages.append(f"whisk API host set to {apihost}")
    if apiversion:
        updates["APIVERSION"] = apiversion
        messages.append(f"whisk API version set to {apiversion}")
    if namespace:
        # wsk only accepts a namespace the (possibly new) credentials can use.
        with config.client(apihost=apihost, auth=auth) as client:
            try:
                names = [_namespace_name(item) for item in client.list_namespaces()]
            except ClientError as exc:
                raise CliError(
                    f"Authenticated user does not have namespace '{namespace}'; set command failed: {exc}",
                    exc.exit_code,
                ) from exc
        if namespace not in names:
            raise CliError(f"Namespace '{namespace}' is not in the list of entitled namespaces")
        updates["NAMESPACE"] = namespace
        messages.append(f"whisk namespace set to {namespace}")
    _write(config.props_path(), updates, "Unable to set the property value(s)")
    for message in messages:
        ok(message)


@property_app.command("unset")
def property_unset(
    ctx: typer.Context,
    auth: Annotated[bool, typer.Option("--auth", help="Remove the authorization key.")] = False,
    apihost: Annotated[bool, typer.Option("--apihost", help="Remove the whisk API host.")] = False,
    namespace: Annotated[bool, typer.Option("--namespace", help="Remove the whisk namespace.")] = False,
    apiversion: Annotated[bool, typer.Option("--apiversion", help="Remove the whisk API version.")] = False,
) -> None:
    """Remove properties from the properties file; the defaults apply again."""
    removals = {"AUTH": auth, "APIHOST": apihost, "NAMESPACE": namespace, "APIVERSION": apiversion}
    _write(get_config(ctx).props_path(), {key: None for key, chosen in removals.items() if chosen},
           "Unable to unset the property value")  # fmt: skip
    if auth:
        ok("whisk auth unset.")
    if apihost:
        ok("whisk API host unset.")
    if namespace:
        ok(f"whisk namespace unset; the default value of {props.DEFAULT_NAMESPACE} will be used.")
    if apiversion:
        ok(f"whisk API version unset; the default value of {props.DEFAULT_APIVERSION} will be used.")


@property_app.command("get")
def property_get(
    ctx: typer.Context,
    auth: Annotated[bool, typer.Option("--auth", help="Authorization key.")] = False,
    apihost: Annotated[bool, typer.Option("--apihost", help="Whisk API host.")] = False,
    apiversion: Annotated[bool, typer.Option("--apiversion", help="Whisk API version.")] = False,
    namespace: Annotated[bool, typer.Option("--namespace", help="Whisk namespace.")] = False,
    cliversion: Annotated[bool, typer.Option("--cliversion", help="pywsk version.")] = False,
    apibuild: Annotated[bool, typer.Option("--apibuild", help="Whisk API build version (asks the server).")] = False,
    apibuildno: Annotated[bool, typer.Option("--apibuildno", help="Whisk API build number (asks the server).")] = False,
    all_: Annotated[bool, typer.Option("--all", help="All properties (the default).")] = False,
) -> None:
    """Show properties; with no option, all of them."""
    config = get_config(ctx)
    everything = all_ or not any((auth, apihost, apiversion, namespace, cliversion, apibuild, apibuildno))
    # The layout (names and tabs) is wsk's.
    if everything or auth:
        typer.echo(f"whisk auth\t\t{config.configured_auth()}")
    if everything or apihost:
        typer.echo(f"whisk API host\t\t{config.configured_apihost()}")
    if everything or apiversion:
        typer.echo(f"whisk API version\t{config.apiversion()}")
    if everything or namespace:
        typer.echo(f"whisk namespace\t\t{config.namespace()}")
    if everything or cliversion:
        typer.echo(f"whisk CLI version\t{USER_AGENT.partition('/')[2]}")
    if everything or apibuild or apibuildno:
        failure: ClientError | None = None
        info: dict[str, Any] = {}
        try:
            with config.client() as client:
                answer = client.info()
            info = answer if isinstance(answer, dict) else {}
        except ClientError as exc:
            failure = exc
        if everything or apibuild:
            typer.echo(f"whisk API build\t\t{info.get('build', 'Unknown')}")
        if everything or apibuildno:
            typer.echo(f"whisk API build number\t{info.get('buildno', 'Unknown')}")
        if failure is not None:
            raise CliError(f"Unable to obtain API build information: {failure}", failure.exit_code)


@command(namespace_app, "list")
def namespace_list(ctx: typer.Context) -> None:
    """List the namespaces your credentials can use."""
    with get_config(ctx).client() as client, reporting("Unable to obtain the list of available namespaces"):
        names = client.list_namespaces()
    typer.echo("namespaces")
    for item in names:
        typer.echo(_namespace_name(item))


@command(namespace_app, "get")
def namespace_get(
    ctx: typer.Context,
    namespace: Annotated[str | None, typer.Argument(metavar="NAMESPACE", help="/NAMESPACE (default: yours).")] = None,
    name_sort: Annotated[bool, typer.Option("-n", "--name-sort", help="Sort each list by name.")] = False,
) -> None:
    """List the packages, actions, triggers and rules of a namespace."""
    list_entities(ctx, namespace, name_sort=name_sort)


def list_entities(ctx: typer.Context, namespace: str | None, *, name_sort: bool) -> None:
    """`wsk list` / `wsk namespace get`: every collection of the namespace, all of it (limit 0 = the server's
    maximum), one block per collection; rules with the status a GET of each answers ([CLI] commands/namespace.go
    `namespaceGetCmd`)."""
    config = get_config(ctx)
    listed = parse_namespace_argument(namespace, config.namespace())
    with config.client() as client:
        with reporting(f"Unable to obtain the list of entities for namespace '{listed}'"):
            packages = client.list_packages(listed, limit=0, skip=0)
            actions = client.list_actions(listed, limit=0, skip=0)
            triggers = client.list_collection(listed, "triggers", limit=0, skip=0)
            rules = client.list_collection(listed, "rules", limit=0, skip=0)
        rules = with_statuses(client, listed, rules)
    typer.echo(f"Entities in namespace: {listed}")
    print_package_list(packages, name_sort=name_sort)
    typer.echo("actions")
    for action in sort_actions(actions) if name_sort else actions:
        typer.echo(action_row(action))
    print_trigger_list(triggers, name_sort=name_sort)
    print_rule_list(rules, name_sort=name_sort)


def _namespace_name(item: Any) -> str:
    # OpenWhisk answers plain names; some servers answer {"name": ...} objects.
    return str(item.get("name")) if isinstance(item, dict) else str(item)


def _write(path: Path, updates: dict[str, str | None], failure: str) -> None:
    try:
        props.write_props(path, updates)
    except OSError as exc:
        raise CliError(f"{failure}: {exc}") from exc
