"""`pywsk activation ...`: list, get, result, logs and poll ([CLI] commands/activation.go)."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Annotated, Any

import typer

from pywsk.client import ClientError, WhiskClient
from pywsk.context import command, get_config
from pywsk.entities import parse_qualified_name
from pywsk.formatting import activation_table, strip_log_line
from pywsk.output import CliError, ok, print_json, reporting

activation_app = typer.Typer(help="Work with activations.", no_args_is_help=True)

POLL_INTERVAL_SECONDS = 2.0  # wsk's PollInterval
# wsk reads activations in the caller's default namespace (`_`) for get/result/logs ([GOC] whisk/activation.go).
ACTIVATIONS_NAMESPACE = "_"

IdArg = Annotated[str | None, typer.Argument(metavar="ID", help="The activation ID (or use --last).")]
LastOpt = Annotated[bool, typer.Option("-l", "--last", help="Use the most recent activation.")]


@command(activation_app, "list")
def list_activations(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(metavar="NAME", help="Only activations of action NAME.")] = None,
    limit: Annotated[int, typer.Option("-l", "--limit", help="Show at most LIMIT activations (max 200).")] = 30,
    skip: Annotated[int, typer.Option("-s", "--skip", help="Skip the first SKIP activations.")] = 0,
    since: Annotated[
        int | None, typer.Option("--since", metavar="MS", help="Only activations later than MS (epoch ms).")
    ] = None,
    upto: Annotated[
        int | None, typer.Option("--upto", metavar="MS", help="Only activations earlier than MS (epoch ms).")
    ] = None,
    full: Annotated[bool, typer.Option("-f", "--full", help="Show the full activation records.")] = False,
) -> None:
    """List activations, newest first."""
    config = get_config(ctx)
    namespace, entity = ACTIVATIONS_NAMESPACE, None
    if name:
        qname = parse_qualified_name(name, ACTIVATIONS_NAMESPACE)
        namespace, entity = qname.namespace, qname.entity
    with config.client() as client, reporting(f"Unable to obtain the list of activations for namespace '{namespace}'"):
        rows = client.list_activations(
            namespace, name=entity, limit=limit, skip=skip, since=since, upto=upto, docs=full
        )
    if full:
        typer.echo("activations")
        for row in rows:
            print_json(row)
        return
    for line in activation_table(rows):
        typer.echo(line)


@command(activation_app, "get")
def get(
    ctx: typer.Context,
    activation_id: IdArg = None,
    last: LastOpt = False,
    summary: Annotated[bool, typer.Option("-s", "--summary", help="Show only the status and result.")] = False,
    logs: Annotated[bool, typer.Option("-g", "--logs", help="Show only the logs, stripped of timestamps.")] = False,
) -> None:
    """Get an activation record."""
    with get_config(ctx).client() as client:
        activation_id = _resolve_id(client, activation_id, last)
        with reporting(f"Unable to get activation '{activation_id}'"):
            activation = client.get_activation(ACTIVATIONS_NAMESPACE, activation_id)
    if summary:
        response = activation.get("response") or {}
        ended = datetime.fromtimestamp(int(activation.get("end") or 0) / 1000).astimezone()
        typer.echo(
            f"activation result for '/{activation.get('namespace')}/{activation.get('name')}' "
            f"({response.get('status')} at {ended:%Y-%m-%d %H:%M:%S %z %Z})"
        )
        print_json(response.get("result"))
    elif logs:
        for line in activation.get("logs") or []:
            typer.echo(strip_log_line(line))
    else:
        ok(f"got activation {activation_id}")
        print_json(activation)


@command(activation_app, "result")
def result(ctx: typer.Context, activation_id: IdArg = None, last: LastOpt = False) -> None:
    """Show the result of an activation."""
    with get_config(ctx).client() as client:
        activation_id = _resolve_id(client, activation_id, last)
        with reporting(f"Unable to get result for activation '{activation_id}'"):
            response = client.get_activation_result(ACTIVATIONS_NAMESPACE, activation_id)
    print_json(response.get("result") if isinstance(response, dict) else response)


@command(activation_app, "logs")
def logs(
    ctx: typer.Context,
    activation_id: IdArg = None,
    last: LastOpt = False,
    strip: Annotated[bool, typer.Option("-r", "--strip", help="Strip the timestamp and stream of each line.")] = False,
) -> None:
    """Show the logs of an activation, one line per log line."""
    with get_config(ctx).client() as client:
        activation_id = _resolve_id(client, activation_id, last)
        with reporting(f"Unable to get logs for activation '{activation_id}'"):
            answer = client.get_activation_logs(ACTIVATIONS_NAMESPACE, activation_id)
    for line in answer.get("logs") or []:
        typer.echo(strip_log_line(line) if strip else line)


@command(activation_app, "poll")
def poll(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(metavar="NAME", help="Only activations of action NAME.")] = None,
    exit_after: Annotated[int, typer.Option("-e", "--exit", metavar="SECONDS", help="Stop after SECONDS.")] = 0,
    since_seconds: Annotated[int, typer.Option("--since-seconds", help="Start SECONDS ago.")] = 0,
    since_minutes: Annotated[int, typer.Option("--since-minutes", help="Start MINUTES ago.")] = 0,
    since_hours: Annotated[int, typer.Option("--since-hours", help="Start HOURS ago.")] = 0,
    since_days: Annotated[int, typer.Option("--since-days", help="Start DAYS ago.")] = 0,
) -> None:
    """Poll for new activations and print their logs, every 2 seconds, until Ctrl-C (or --exit)."""
    config = get_config(ctx)
    namespace, entity = ACTIVATIONS_NAMESPACE, None
    if name:
        qname = parse_qualified_name(name, ACTIVATIONS_NAMESPACE)
        namespace, entity = qname.namespace, qname.entity
    lookback_ms = (((since_days * 24 + since_hours) * 60 + since_minutes) * 60 + since_seconds) * 1000
    typer.echo("Enter Ctrl-c to exit.")
    reported: set[str] = set()
    try:
        with config.client() as client:
            poll_since = _poll_start(client, namespace, lookback_ms)
            typer.echo("Polling for activation logs")
            started = config.clock()
            while not (exit_after > 0 and config.clock() - started > exit_after):
                try:
                    rows = client.list_activations(namespace, name=entity, since=poll_since, docs=True, limit=0, skip=0)
                except ClientError:
                    rows = []  # wsk keeps polling through failures
                for activation in rows:
                    poll_since = _report(activation, reported, poll_since)
                config.sleep(POLL_INTERVAL_SECONDS)
    except KeyboardInterrupt:
        typer.echo("Poll terminated")


def _poll_start(client: WhiskClient, namespace: str, lookback_ms: int) -> int:
    """Where polling starts: the given look-back, else just after the newest activation (as wsk does)."""
    now_ms = int(time.time() * 1000)
    if lookback_ms:
        return now_ms - lookback_ms
    try:
        newest = client.list_activations(namespace, limit=1, skip=0, docs=True)
    except ClientError:
        return now_ms
    return int(newest[0].get("start", 0)) + 1 if newest else 0


def _report(activation: dict[str, Any], reported: set[str], poll_since: int) -> int:
    activation_id = str(activation.get("activationId"))
    if activation_id not in reported:
        typer.echo(f"\nActivation: '{activation.get('name')}' ({activation_id})")
        print_json(activation.get("logs") or [])
        reported.add(activation_id)
    start = int(activation.get("start") or 0)
    return start + 1 if start > poll_since else poll_since


def _resolve_id(client: WhiskClient, activation_id: str | None, last: bool) -> str:
    if last and activation_id:
        raise CliError("Give either an activation ID or --last, not both.")
    if activation_id:
        return activation_id
    if not last:
        raise CliError("An activation ID is required.")
    with reporting("Unable to get the last activation"):
        newest = client.list_activations(ACTIVATIONS_NAMESPACE, limit=1, skip=0)
    if not newest:
        raise CliError("Activation list does not contain any activations.")
    return str(newest[0]["activationId"])
