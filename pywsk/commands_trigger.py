"""`pywsk trigger ...`: create, update, get, list, delete and fire triggers, and the client side of feeds
([CLI] commands/trigger.go, [GOC] whisk/trigger.go).

Feeds are configured by the client, as `wsk` does it (OpenWhisk docs/feeds.md): `trigger create T --feed F` creates
the trigger with the annotation `feed: /ns/F`, then invokes F blocking with the `-p` parameters plus
`lifecycleEvent: CREATE`, `triggerName: /ns/T` and `authKey: <uuid:key>`; a failed feed deletes the trigger again
(through `trigger delete`, which tells the feed DELETE first). `trigger get` of a feed trigger shows the feed's
READ answer instead of the trigger, and `trigger update` of one sends the feed UPDATE instead of a PUT: both are
wsk's behaviour, kept as it is because users and scripts rely on it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any

import typer

from pywsk.client import ApiError, ClientError, WhiskClient
from pywsk.context import Config, command, get_config, pairs
from pywsk.entities import (
    QualifiedName,
    as_key_value_list,
    key_values,
    parse_namespace_argument,
    parse_qualified_name,
)
from pywsk.formatting import annotation, entity_summary, sort_by_qualified_name, trigger_row
from pywsk.options import AnnotationFileOpt, AnnotationOpt, ParamFileOpt
from pywsk.output import TIMEOUT_EXIT_CODE, CliError, ok, print_json, reporting

trigger_app = typer.Typer(help="Work with triggers.", no_args_is_help=True)

# The feed protocol's parameter names and lifecycle events ([CLI] commands/trigger.go, OpenWhisk docs/feeds.md).
FEED_LIFECYCLE_EVENT = "lifecycleEvent"
FEED_TRIGGER_NAME = "triggerName"
FEED_AUTH_KEY = "authKey"
FEED_ANNOTATION = "feed"
# `trigger get NAME FIELD` accepts the Go client's `Trigger` fields, case-insensitively ([CLI] `fieldExists`).
TRIGGER_FIELDS = {
    field.lower(): field
    for field in ("namespace", "name", "version", "activationId", "annotations", "parameters", "limits", "publish",
                  "rules")
}  # fmt: skip

NameArg = Annotated[str, typer.Argument(metavar="TRIGGER_NAME", help="Trigger name: NAME or /NS/NAME.")]
ParamOpt = Annotated[
    list[str] | None,
    typer.Option("-p", "--param", metavar="KEY VALUE",
                 help="Parameter KEY VALUE (repeatable); VALUE is parsed as JSON if it is valid JSON, else a string. "
                      "With --feed, the parameters go to the feed action instead of the trigger."),
]  # fmt: skip


@command(trigger_app, "create")
def create(
    ctx: typer.Context,
    name: NameArg,
    param: ParamOpt = None,
    param_file: ParamFileOpt = None,
    annotation_: AnnotationOpt = None,
    annotation_file: AnnotationFileOpt = None,
    feed: Annotated[
        str | None,
        typer.Option("-f", "--feed", metavar="ACTION_NAME",
                     help="Trigger feed ACTION_NAME, e.g. /whisk.system/alarms/interval."),
    ] = None,
) -> None:  # fmt: skip
    """Create a new trigger (and configure its feed)."""
    config = get_config(ctx)
    qname = parse_qualified_name(name, config.namespace())
    params = key_values(pairs(param, "-p"), param_file, "parameter")
    annotations = key_values(pairs(annotation_, "-a"), annotation_file, "annotation")
    feed_name = parse_qualified_name(feed, config.namespace()) if feed else None
    with config.client() as client:
        _create(client, config, qname, params, annotations, feed_name)
    ok(f"created trigger {qname.entity}")


@command(trigger_app, "update")
def update(
    ctx: typer.Context,
    name: NameArg,
    param: ParamOpt = None,
    param_file: ParamFileOpt = None,
    annotation_: AnnotationOpt = None,
    annotation_file: AnnotationFileOpt = None,
) -> None:
    """Update an existing trigger, or create a trigger if it does not exist.

    A trigger with a feed is not changed here: its feed is told UPDATE with the parameters, as wsk does.
    """
    config = get_config(ctx)
    qname = parse_qualified_name(name, config.namespace())
    params = key_values(pairs(param, "-p"), param_file, "parameter")
    annotations = key_values(pairs(annotation_, "-a"), annotation_file, "annotation")
    with config.client() as client:
        try:
            existing = client.get_trigger(qname.namespace, qname.entity)
        except ApiError as exc:
            if exc.status != 404:
                raise CliError(f"Unable to get trigger '{qname.entity}': {exc}", exc.exit_code) from exc
            _create(client, config, qname, params, annotations, None)
            ok(f"created trigger {qname.entity}")
            return
        except ClientError as exc:
            raise CliError(str(exc), exc.exit_code) from exc
        feed = _feed_of(existing)
        if feed is not None:
            failure = _configure_feed(client, config, feed, qname, "UPDATE", params)
            if failure is not None:
                # wsk says "create" here too ([CLI] `Trigger.Update`).
                raise CliError(f"Unable to create trigger '{qname.entity}': {failure.message}", failure.exit_code)
        else:
            body: dict[str, Any] = {"name": qname.entity, **_key_value_fields(params, annotations)}
            with reporting(f"Unable to update trigger '{qname.entity}'"):
                client.put_trigger(qname.namespace, qname.entity, body, overwrite=True)
    ok(f"updated trigger {qname.entity}")


@command(trigger_app, "get")
def get(
    ctx: typer.Context,
    name: NameArg,
    field: Annotated[
        str | None, typer.Argument(metavar="FIELD_FILTER", help="Show only this field, e.g. parameters.")
    ] = None,
    summary: Annotated[
        bool,
        typer.Option("-s", "--summary", help='Summarize trigger details; parameters with prefix "*" are bound.'),
    ] = False,
) -> None:
    """Get a trigger; for a trigger with a feed, what its feed action answers to READ."""
    config = get_config(ctx)
    if field is not None and field.lower() not in TRIGGER_FIELDS:
        raise CliError(f"Invalid field filter '{field}'.")
    qname = parse_qualified_name(name, config.namespace())
    with config.client() as client:
        with reporting(f"Unable to get trigger '{qname.entity}'"):
            trigger = client.get_trigger(qname.namespace, qname.entity)
        feed = _feed_of(trigger)
        if feed is not None:
            # wsk prints the feed's READ activation and ignores a failed READ (its output says what went wrong).
            _configure_feed(client, config, feed, qname, "READ", {})
            return
    if summary:
        for line in entity_summary("trigger", f"/{trigger.get('namespace', '')}/{trigger.get('name', '')}", trigger):
            typer.echo(line)
    elif field is not None:
        ok(f"got trigger {qname.entity}, displaying field {field}")
        print_json(trigger.get(TRIGGER_FIELDS[field.lower()]))
    else:
        ok(f"got trigger {qname.entity}")
        print_json(trigger)


@command(trigger_app, "list")
def list_triggers(
    ctx: typer.Context,
    namespace: Annotated[
        str | None, typer.Argument(metavar="NAMESPACE", help="List the triggers of /NAMESPACE.")
    ] = None,
    limit: Annotated[int, typer.Option("-l", "--limit", help="Show at most LIMIT triggers (max 200).")] = 30,
    skip: Annotated[int, typer.Option("-s", "--skip", help="Skip the first SKIP triggers.")] = 0,
    name_sort: Annotated[bool, typer.Option("-n", "--name-sort", help="Sort the list by name.")] = False,
) -> None:
    """List triggers."""
    config = get_config(ctx)
    listed = parse_namespace_argument(namespace, config.namespace())
    with config.client() as client, reporting(f"Unable to obtain the list of triggers for namespace '{listed}'"):
        triggers = client.list_collection(listed, "triggers", limit=limit, skip=skip)
    print_trigger_list(triggers, name_sort=name_sort)


@command(trigger_app, "delete")
def delete(ctx: typer.Context, name: NameArg) -> None:
    """Delete a trigger (a trigger with a feed tells its feed action DELETE first)."""
    config = get_config(ctx)
    qname = parse_qualified_name(name, config.namespace())
    with config.client() as client:
        _delete(client, config, qname)


@command(trigger_app, "fire")
def fire(ctx: typer.Context, name: NameArg, param: ParamOpt = None, param_file: ParamFileOpt = None) -> None:
    """Fire a trigger: every active rule of it invokes its action with these parameters over the trigger's."""
    config = get_config(ctx)
    qname = parse_qualified_name(name, config.namespace())
    payload = key_values(pairs(param, "-p"), param_file, "parameter")
    with config.client() as client, reporting(f"Unable to fire trigger '{qname.entity}'"):
        activation_id = client.fire_trigger(qname.namespace, qname.entity, payload)
    if activation_id is None:
        # OpenWhisk answers 204 without a trigger activation when no rule is active; wsk says so without "ok:".
        typer.echo(f"trigger {qname} did not fire as it is not associated with an active rule")
    else:
        ok(f"triggered {qname} with id {activation_id}")


def print_trigger_list(triggers: Any, *, name_sort: bool) -> None:
    """`triggers` and a row per trigger (`pywsk list` prints the same block)."""
    rows = [trigger for trigger in triggers if isinstance(trigger, dict)] if isinstance(triggers, list) else []
    typer.echo("triggers")
    for trigger in sort_by_qualified_name(rows) if name_sort else rows:
        typer.echo(trigger_row(trigger))


# -- the feed protocol ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeedFailure:
    """Why a feed action did not do its part; `message` is wsk's "Unable to configure feed ..." text."""

    message: str
    exit_code: int


def _create(
    client: WhiskClient,
    config: Config,
    qname: QualifiedName,
    params: dict[str, Any],
    annotations: dict[str, Any],
    feed: QualifiedName | None,
) -> None:
    if feed is not None:
        annotations = {**annotations, FEED_ANNOTATION: str(feed)}  # the generated annotation wins over -a feed
    # With a feed, the parameters configure the feed, not the trigger ([CLI] `Trigger.Create`).
    body: dict[str, Any] = {"name": qname.entity, **_key_value_fields({} if feed else params, annotations)}
    with reporting(f"Unable to create trigger '{qname.entity}'"):
        client.put_trigger(qname.namespace, qname.entity, body, overwrite=False)
    if feed is None:
        return
    failure = _invoke_feed(client, feed, _feed_parameters(config, qname, "CREATE", params), header=True)
    if failure is None:
        return
    try:
        _delete(client, config, qname)
    except CliError as exc:
        # wsk ignores a failed rollback too; the error below is what the user must see.
        typer.echo(f"error: {exc.message}", err=True)
    raise CliError(f"Unable to create trigger '{qname.entity}': {failure.message}", failure.exit_code)


def _delete(client: WhiskClient, config: Config, qname: QualifiedName) -> None:
    with reporting(f"Unable to get trigger '{qname.entity}'"):
        trigger = client.get_trigger(qname.namespace, qname.entity)
    feed = _feed_of(trigger)
    if feed is not None:
        # A feed that cannot forget the trigger does not keep the trigger alive: wsk deletes it anyway.
        _configure_feed(client, config, feed, qname, "DELETE", {})
    with reporting(f"Unable to delete trigger '{qname.entity}'"):
        client.delete_trigger(qname.namespace, qname.entity)
    ok(f"deleted trigger {qname.entity}")


def _configure_feed(
    client: WhiskClient, config: Config, feed: str, qname: QualifiedName, event: str, params: dict[str, Any]
) -> FeedFailure | None:
    """READ, UPDATE or DELETE through the feed named by the trigger's `feed` annotation ([CLI] `configureFeed`)."""
    try:
        feed_name = parse_qualified_name(feed, config.namespace())
    except CliError as exc:
        return FeedFailure(exc.message, exc.exit_code)
    return _invoke_feed(client, feed_name, _feed_parameters(config, qname, event, params), header=False)


def _invoke_feed(
    client: WhiskClient, feed: QualifiedName, params: dict[str, Any], *, header: bool
) -> FeedFailure | None:
    """Invoke the feed action blocking and print its activation as wsk does: on success to stdout (after
    `ok: invoked ...` when `header`), a failed activation to stderr."""

    def failure(reason: str, exit_code: int) -> FeedFailure:
        return FeedFailure(f"Unable to configure feed '{feed}': {reason}", exit_code)

    try:
        invocation = client.invoke_action(feed.namespace, feed.entity, params, blocking=True, result=False)
    except ClientError as exc:
        return failure(str(exc), exc.exit_code)
    if invocation.status == 202:
        ok(f"invoked {feed}, but the request has not yet finished, with id {invocation.activation_id}", err=True)
        return failure("Request accepted, but processing not completed yet.", TIMEOUT_EXIT_CODE)
    body: dict[str, Any] = invocation.body if isinstance(invocation.body, dict) else {}
    response: dict[str, Any] = body["response"] if isinstance(body.get("response"), dict) else {}
    if not invocation.ok or response.get("success") is False:
        print_json(invocation.body, err=True)
        status = invocation.status if not invocation.ok else 502
        reason = f"The following application error was received: {application_error(response.get('result'))}"
        return failure(reason, status - 256)
    if header:
        ok(f"invoked {feed} with id {invocation.activation_id}")
    print_json(invocation.body)
    return None


def application_error(result: Any) -> str:
    """The error text of a failed activation's result, as the Go client builds it ([GOC] whisk/client.go
    `getApplicationErrorMessage`): `error` when it is a string; the string fields of an `error` object joined by
    "; "; else the JSON of the object."""
    if not isinstance(result, dict):
        return str(result)
    error = result.get("error")
    if "error" not in result:
        return str(result)
    if isinstance(error, dict):
        texts = [value for value in error.values() if isinstance(value, str)]
        if texts:
            return "; ".join(texts)
        return json.dumps(error, separators=(",", ":"))
    return str(error)


def _feed_parameters(config: Config, qname: QualifiedName, event: str, params: dict[str, Any]) -> dict[str, Any]:
    # `triggerName` is the name as typed, qualified with the properties' namespace (`/_/T` by default), as wsk
    # sends it; the feed resolves `_` with the `authKey` it is given.
    return {**params, FEED_LIFECYCLE_EVENT: event, FEED_TRIGGER_NAME: str(qname),
            FEED_AUTH_KEY: config.configured_auth()}  # fmt: skip


def _feed_of(trigger: Any) -> str | None:
    value = annotation(trigger, FEED_ANNOTATION) if isinstance(trigger, dict) else None
    return value if isinstance(value, str) and value else None


def _key_value_fields(params: dict[str, Any], annotations: dict[str, Any]) -> dict[str, Any]:
    # The Go client leaves empty lists out of the body (`omitempty`), so an update without -p keeps the parameters.
    fields: dict[str, Any] = {}
    if annotations:
        fields["annotations"] = as_key_value_list(annotations)
    if params:
        fields["parameters"] = as_key_value_list(params)
    return fields
