"""`pywsk rule ...`: create, update, enable, disable, status, get, list and delete rules ([CLI] commands/rule.go,
[GOC] whisk/rule.go).

The request body is the Go client's `Rule`: `name`, `status` (always sent, empty on a PUT), and `trigger` and
`action` fully qualified with the properties' namespace (`/_/T` by default, [CLI] `getQualifiedName`). A rule's
status lives with its trigger on the server, so a listing holds no status: like wsk, `rule list` and `pywsk list`
GET each rule for it.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from pywsk.client import WhiskClient
from pywsk.context import command, get_config
from pywsk.entities import parse_namespace_argument, parse_qualified_name
from pywsk.formatting import rule_row, rule_summary, sort_by_qualified_name
from pywsk.output import CliError, ok, print_json, reporting

rule_app = typer.Typer(help="Work with rules.", no_args_is_help=True)

# `rule get NAME FIELD` accepts the Go client's `Rule` fields, case-insensitively ([CLI] `fieldExists`).
RULE_FIELDS = {field.lower(): field for field in (
    "namespace", "name", "version", "annotations", "status", "trigger", "action", "publish")}  # fmt: skip
ACTIVE = "active"
INACTIVE = "inactive"

NameArg = Annotated[str, typer.Argument(metavar="RULE_NAME", help="Rule name: NAME or /NS/NAME.")]
TriggerArg = Annotated[str, typer.Argument(metavar="TRIGGER_NAME", help="The trigger: NAME or /NS/NAME.")]
ActionArg = Annotated[
    str, typer.Argument(metavar="ACTION_NAME", help="The action: NAME, PKG/NAME, /NS/NAME or /NS/PKG/NAME.")
]


@command(rule_app, "create")
def create(ctx: typer.Context, name: NameArg, trigger: TriggerArg, action: ActionArg) -> None:
    """Create a new rule: firing TRIGGER_NAME invokes ACTION_NAME (the rule is active from the start)."""
    _put_rule(ctx, name, trigger, action, update=False)


@command(rule_app, "update")
def update(ctx: typer.Context, name: NameArg, trigger: TriggerArg, action: ActionArg) -> None:
    """Update an existing rule, or create a rule if it does not exist."""
    _put_rule(ctx, name, trigger, action, update=True)


@command(rule_app, "enable")
def enable(ctx: typer.Context, name: NameArg) -> None:
    """Enable a rule."""
    _set_state(ctx, name, ACTIVE)


@command(rule_app, "disable")
def disable(ctx: typer.Context, name: NameArg) -> None:
    """Disable a rule."""
    _set_state(ctx, name, INACTIVE)


@command(rule_app, "status")
def status(ctx: typer.Context, name: NameArg) -> None:
    """Get a rule's status."""
    config = get_config(ctx)
    qname = parse_qualified_name(name, config.namespace())
    with config.client() as client, reporting(f"Unable to get status of rule '{qname.entity}'"):
        rule = client.get_rule(qname.namespace, qname.entity)
    ok(f"rule {qname.entity} is {rule.get('status', '') if isinstance(rule, dict) else ''}")


@command(rule_app, "get")
def get(
    ctx: typer.Context,
    name: NameArg,
    field: Annotated[
        str | None, typer.Argument(metavar="FIELD_FILTER", help="Show only this field, e.g. status.")
    ] = None,
    summary: Annotated[bool, typer.Option("-s", "--summary", help="Summarize rule details.")] = False,
) -> None:
    """Get a rule, with its status."""
    config = get_config(ctx)
    if field is not None and field.lower() not in RULE_FIELDS:
        raise CliError(f"Invalid field filter '{field}'.")
    qname = parse_qualified_name(name, config.namespace())
    with config.client() as client, reporting(f"Unable to get rule '{qname.entity}'"):
        rule = client.get_rule(qname.namespace, qname.entity)
    if summary:
        for line in rule_summary(rule):
            typer.echo(line)
    elif field is not None:
        ok(f"got rule {qname.entity}, displaying field {field}")
        print_json(rule.get(RULE_FIELDS[field.lower()]) if isinstance(rule, dict) else None)
    else:
        ok(f"got rule {qname.entity}")
        print_json(rule)


@command(rule_app, "list")
def list_rules(
    ctx: typer.Context,
    namespace: Annotated[str | None, typer.Argument(metavar="NAMESPACE", help="List the rules of /NAMESPACE.")] = None,
    limit: Annotated[int, typer.Option("-l", "--limit", help="Show at most LIMIT rules (max 200).")] = 30,
    skip: Annotated[int, typer.Option("-s", "--skip", help="Skip the first SKIP rules.")] = 0,
    name_sort: Annotated[bool, typer.Option("-n", "--name-sort", help="Sort the list by name.")] = False,
) -> None:
    """List rules, with their status."""
    config = get_config(ctx)
    listed = parse_namespace_argument(namespace, config.namespace())
    with config.client() as client:
        with reporting(f"Unable to obtain the list of rules for namespace '{listed}'"):
            rules = client.list_collection(listed, "rules", limit=limit, skip=skip)
        rules = with_statuses(client, listed, rules)
    print_rule_list(rules, name_sort=name_sort)


@command(rule_app, "delete")
def delete(
    ctx: typer.Context,
    name: NameArg,
    disable_first: Annotated[
        bool, typer.Option("--disable", help="Automatically disable the rule before deleting it.")
    ] = False,
) -> None:
    """Delete a rule."""
    config = get_config(ctx)
    qname = parse_qualified_name(name, config.namespace())
    with config.client() as client:
        if disable_first:
            with reporting(f"Unable to disable rule '{qname.entity}'"):
                client.set_rule_state(qname.namespace, qname.entity, INACTIVE)
        with reporting(f"Unable to delete rule '{qname.entity}'"):
            client.delete_rule(qname.namespace, qname.entity)
    ok(f"deleted rule {qname.entity}")


def with_statuses(client: WhiskClient, namespace: str, rules: Any) -> list[dict[str, Any]]:
    """The listed rules, each with the `status` a GET of it answers ([CLI] rule.go and namespace.go, #312)."""
    found = [rule for rule in rules if isinstance(rule, dict)] if isinstance(rules, list) else []
    completed = []
    for rule in found:
        rule_name = str(rule.get("name", ""))
        with reporting(f"Unable to get status of rule '{rule_name}'"):
            answer = client.get_rule(namespace, rule_name)
        completed.append({**rule, "status": answer.get("status", "") if isinstance(answer, dict) else ""})
    return completed


def print_rule_list(rules: list[dict[str, Any]], *, name_sort: bool) -> None:
    """`rules` and a row per rule with its status (`pywsk list` prints the same block)."""
    typer.echo("rules")
    for rule in sort_by_qualified_name(rules) if name_sort else rules:
        typer.echo(rule_row(rule))


def _put_rule(ctx: typer.Context, name: str, trigger: str, action: str, *, update: bool) -> None:
    config = get_config(ctx)
    qname = parse_qualified_name(name, config.namespace())
    body = {
        "name": qname.entity,
        "status": "",
        "trigger": str(parse_qualified_name(trigger, config.namespace())),
        "action": str(parse_qualified_name(action, config.namespace())),
    }
    failure = f"Unable to {'update' if update else 'create'} rule '{qname.entity}'"
    with config.client() as client, reporting(failure):
        client.put_rule(qname.namespace, qname.entity, body, overwrite=update)
    ok(f"{'updated' if update else 'created'} rule {qname.entity}")


def _set_state(ctx: typer.Context, name: str, state: str) -> None:
    config = get_config(ctx)
    qname = parse_qualified_name(name, config.namespace())
    verb = "enable" if state == ACTIVE else "disable"
    with config.client() as client, reporting(f"Unable to {verb} rule '{qname.entity}'"):
        client.set_rule_state(qname.namespace, qname.entity, state)
    ok(f"{verb}d rule {qname.entity}")
