"""`pywsk action ...`: create, update, invoke, get, list and delete actions ([CLI] commands/action.go)."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import typer

from pywsk import props
from pywsk.client import ApiError, WhiskClient
from pywsk.context import Config, command, get_config, pairs
from pywsk.entities import (
    WEB_ANNOTATIONS,
    WEB_SECURE_ANNOTATION,
    QualifiedName,
    as_key_value_list,
    build_exec,
    key_values,
    merge_annotations,
    parse_collection,
    parse_qualified_name,
    web_annotations,
    web_secure_secret,
)
from pywsk.formatting import action_row, action_summary, annotation, sort_actions
from pywsk.options import AnnotationFileOpt, AnnotationOpt, ParamFileOpt
from pywsk.output import TIMEOUT_EXIT_CODE, CliError, ok, print_json, reporting

action_app = typer.Typer(help="Work with actions.", no_args_is_help=True)

# Options shared by several commands. Help texts avoid square brackets: typer renders them as rich markup.
NameArg = Annotated[str, typer.Argument(metavar="NAME", help="Action name: NAME, PKG/NAME, /NS/NAME or /NS/PKG/NAME.")]
ParamOpt = Annotated[
    list[str] | None,
    typer.Option("-p", "--param", metavar="KEY VALUE",
                 help="Parameter KEY VALUE (repeatable); VALUE is parsed as JSON if it is valid JSON, else a string."),
]  # fmt: skip
KindOpt = Annotated[
    str | None,
    typer.Option("--kind", metavar="KIND",
                 help="Runtime KIND, e.g. python:default, nodejs:default, wasm:default. "
                      "Default: from FILE's extension (.py, .js, .wasm, ...); required for .zip."),
]  # fmt: skip
MainOpt = Annotated[str | None, typer.Option("--main", metavar="NAME", help="Name of the action's entry point.")]
MemoryOpt = Annotated[
    int | None, typer.Option("-m", "--memory", metavar="MB", help="Memory limit in MB (server default 256).")
]
TimeoutOpt = Annotated[
    int | None, typer.Option("-t", "--timeout", metavar="MS", help="Time limit in ms (server default 60000).")
]
LogsizeOpt = Annotated[
    int | None, typer.Option("-l", "--logsize", metavar="MB", help="Log size limit in MB (server default 10).")
]
ConcurrencyOpt = Annotated[
    int | None,
    typer.Option("-c", "--concurrency", metavar="N", help="Concurrent activations per container (default 1)."),
]
WebOpt = Annotated[
    str | None,
    typer.Option("--web", metavar="true|false|raw",
                 help="Web action: true (or yes) = web action, raw = raw HTTP web action, false (or no) = not."),
]  # fmt: skip
DockerOpt = Annotated[
    str | None, typer.Option("--docker", metavar="IMAGE", help="Run the action in docker IMAGE (kind blackbox).")
]
ExecutorOpt = Annotated[
    str | None,
    typer.Option("--executor", metavar="NAME", help="Run the action on pywhisk executor NAME (annotation 'executor')."),
]
SequenceOpt = Annotated[
    bool,
    typer.Option("--sequence", help="Treat ACTION as comma-separated actions to run in sequence: --sequence a,pkg/b."),
]
WebSecureOpt = Annotated[
    str | None,
    typer.Option("--web-secure", metavar="SECRET",
                 help="Secure the web action: true (a random secret), false (no secret) or the SECRET string; "
                      "callers must send it in the X-Require-Whisk-Auth header. Only valid for web actions."),
]  # fmt: skip
ArtifactArg = Annotated[
    str | None,
    typer.Argument(metavar="ACTION", help="The action's code FILE (or with --sequence, the component actions)."),
]


@dataclass(frozen=True)
class ActionFlags:
    """The options of `action create` and `action update`; None means "not given"."""

    kind: str | None = None
    main: str | None = None
    params: list[str] | None = None
    param_file: Path | None = None
    annotations: list[str] | None = None
    annotation_file: Path | None = None
    memory: int | None = None
    timeout: int | None = None
    logsize: int | None = None
    concurrency: int | None = None
    web: str | None = None
    docker: str | None = None
    executor: str | None = None
    sequence: bool = False
    del_annotations: list[str] | None = None
    web_secure: str | None = None


@command(action_app, "create")
def create(
    ctx: typer.Context,
    name: NameArg,
    artifact: ArtifactArg = None,
    kind: KindOpt = None, main: MainOpt = None, param: ParamOpt = None, param_file: ParamFileOpt = None,
    annotation: AnnotationOpt = None, annotation_file: AnnotationFileOpt = None, memory: MemoryOpt = None,
    timeout: TimeoutOpt = None, logsize: LogsizeOpt = None, concurrency: ConcurrencyOpt = None,
    web: WebOpt = None, web_secure: WebSecureOpt = None, docker: DockerOpt = None, executor: ExecutorOpt = None,
    sequence: SequenceOpt = False,
) -> None:  # fmt: skip
    """Create an action from a code FILE (or from a --docker image, or as a --sequence of actions)."""
    flags = ActionFlags(kind, main, param, param_file, annotation, annotation_file, memory, timeout, logsize,
                        concurrency, web, docker, executor, sequence, web_secure=web_secure)  # fmt: skip
    _put_action(ctx, name, artifact, flags, update=False)


@command(action_app, "update")
def update(
    ctx: typer.Context,
    name: NameArg,
    artifact: ArtifactArg = None,
    kind: KindOpt = None, main: MainOpt = None, param: ParamOpt = None, param_file: ParamFileOpt = None,
    annotation: AnnotationOpt = None, annotation_file: AnnotationFileOpt = None, memory: MemoryOpt = None,
    timeout: TimeoutOpt = None, logsize: LogsizeOpt = None, concurrency: ConcurrencyOpt = None,
    web: WebOpt = None, web_secure: WebSecureOpt = None, docker: DockerOpt = None, executor: ExecutorOpt = None,
    sequence: SequenceOpt = False,
    del_annotation: Annotated[
        list[str] | None, typer.Option("--del-annotation", metavar="KEY", help="Delete annotation KEY (repeatable).")
    ] = None,
) -> None:  # fmt: skip
    """Update an action (or create it). Only the given code, parameters, annotations and limits change."""
    flags = ActionFlags(kind, main, param, param_file, annotation, annotation_file, memory, timeout, logsize,
                        concurrency, web, docker, executor, sequence, del_annotation, web_secure)  # fmt: skip
    _put_action(ctx, name, artifact, flags, update=True)


@command(action_app, "invoke")
def invoke(
    ctx: typer.Context,
    name: NameArg,
    param: ParamOpt = None,
    param_file: ParamFileOpt = None,
    blocking: Annotated[bool, typer.Option("-b", "--blocking", help="Wait for the activation and show it.")] = False,
    result: Annotated[
        bool, typer.Option("-r", "--result", help="Wait for the activation and show only its result (implies -b).")
    ] = False,
) -> None:
    """Invoke an action."""
    config = get_config(ctx)
    qname = parse_qualified_name(name, config.namespace())
    payload = key_values(pairs(param, "-p"), param_file, "parameter")
    blocking = blocking or result
    with config.client() as client, reporting(f"Unable to invoke action '{qname.entity}'"):
        invocation = client.invoke_action(qname.namespace, qname.entity, payload, blocking=blocking, result=result)
    if invocation.status == 202 and blocking:
        ok(f"invoked {qname}, but the request has not yet finished, with id {invocation.activation_id}", err=True)
        raise typer.Exit(TIMEOUT_EXIT_CODE)
    if not blocking:
        ok(f"invoked {qname} with id {invocation.activation_id}")
        return
    # A failed activation goes to stderr, as wsk prints it; a 200 whose record says success=false counts as
    # failed too, and exits like the 502 the controller sends for application errors.
    response = invocation.body.get("response") if isinstance(invocation.body, dict) else None
    failed = not invocation.ok or (not result and isinstance(response, dict) and response.get("success") is False)
    if not result:
        ok(f"invoked {qname} with id {invocation.activation_id}", err=failed)
    print_json(invocation.body, err=failed)
    if failed:
        raise typer.Exit(invocation.status - 256 if invocation.status >= 256 else 502 - 256)


@command(action_app, "get")
def get(
    ctx: typer.Context,
    name: NameArg,
    summary: Annotated[bool, typer.Option("-s", "--summary", help="Summarize the action's details.")] = False,
    url: Annotated[bool, typer.Option("-r", "--url", help="Show the action's URL.")] = False,
    save: Annotated[bool, typer.Option("--save", help="Save the code to a file named after the action.")] = False,
    save_as: Annotated[Path | None, typer.Option("--save-as", metavar="FILE", help="Save the code to FILE.")] = None,
) -> None:
    """Get an action (without its code unless it is saved)."""
    config = get_config(ctx)
    qname = parse_qualified_name(name, config.namespace())
    fetch_code = save or save_as is not None
    with config.client() as client, reporting(f"Unable to get action '{qname.entity}'"):
        action = client.get_action(qname.namespace, qname.entity, code=fetch_code)
    if url:
        ok(f"got action {qname.name}")
        typer.echo(_action_url(config, qname, action))
    elif summary:
        for line in action_summary(action):
            typer.echo(line)
    elif fetch_code:
        _save_code(action, save_as)
    else:
        ok(f"got action {qname.entity}")
        print_json(action)


@command(action_app, "list")
def list_actions(
    ctx: typer.Context,
    collection: Annotated[
        str | None, typer.Argument(metavar="NAMESPACE|PACKAGE", help="List the actions of /NS, /NS/PKG or PKG.")
    ] = None,
    limit: Annotated[int, typer.Option("-l", "--limit", help="Show at most LIMIT actions (max 200).")] = 30,
    skip: Annotated[int, typer.Option("-s", "--skip", help="Skip the first SKIP actions.")] = 0,
    name_sort: Annotated[bool, typer.Option("-n", "--name-sort", help="Sort the list by name.")] = False,
) -> None:
    """List actions, newest first."""
    config = get_config(ctx)
    namespace, package = parse_collection(collection, config.namespace())
    with config.client() as client, reporting(f"Unable to obtain the list of actions for namespace '{namespace}'"):
        actions = client.list_actions(namespace, package, limit=limit, skip=skip)
    if name_sort:
        actions = sort_actions(actions)
    typer.echo("actions")
    for action in actions:
        typer.echo(action_row(action))


@command(action_app, "delete")
def delete(ctx: typer.Context, name: NameArg) -> None:
    """Delete an action."""
    config = get_config(ctx)
    qname = parse_qualified_name(name, config.namespace())
    with config.client() as client, reporting(f"Unable to delete action '{qname.entity}'"):
        client.delete_action(qname.namespace, qname.entity)
    ok(f"deleted action {qname.entity}")


def _put_action(ctx: typer.Context, name: str, artifact: str | None, flags: ActionFlags, *, update: bool) -> None:
    config = get_config(ctx)
    qname = parse_qualified_name(name, config.namespace())
    verb = "update" if update else "create"
    body: dict[str, Any] = {}
    exec_ = build_exec(artifact, kind=flags.kind, main=flags.main, docker=flags.docker, sequence=flags.sequence,
                       default_namespace=config.namespace())  # fmt: skip
    if exec_ is not None:
        body["exec"] = exec_
    elif not update:
        raise CliError("An action name and code artifact are required.")
    param_pairs = pairs(flags.params, "-p")
    if param_pairs or flags.param_file is not None:
        body["parameters"] = as_key_value_list(key_values(param_pairs, flags.param_file, "parameter"))
    limits = {key: value for key, value in (("timeout", flags.timeout), ("memory", flags.memory),
              ("logs", flags.logsize), ("concurrency", flags.concurrency)) if value is not None}  # fmt: skip
    if limits:
        body["limits"] = limits
    annotation_pairs = pairs(flags.annotations, "-a")
    explicit = bool(annotation_pairs) or flags.annotation_file is not None
    given = as_key_value_list(key_values(annotation_pairs, flags.annotation_file, "annotation")) if explicit else []
    web = web_annotations(flags.web) if flags.web is not None else {}
    derived: dict[str, Any] = {**web, **({"executor": flags.executor} if flags.executor else {})}
    deleted = list(flags.del_annotations or [])
    with config.client() as client:
        if explicit or derived or flags.web_secure is not None:
            # The server replaces all annotations on update, so annotations implied by --web/--web-secure/
            # --executor are added to the existing ones unless -a/-A give the full set (wsk does this for --web).
            existing = _existing_action(client, qname) if update else None
            old = list(existing.get("annotations") or []) if existing else []
            annotations = merge_annotations(given if explicit or existing is None else old, derived)
            if web and explicit:
                # wsk carries an existing --web-secure secret forward over a new --web ([CLI] `augmentWebArg`);
                # without -a/-A it is among the existing annotations already.
                annotations = _carry_forward(annotations, old, (WEB_SECURE_ANNOTATION,))
            if flags.web_secure is not None:
                disable_web = flags.web is not None and not web["web-export"]
                annotations, drop = _secure_web_action(
                    flags.web_secure, annotations, old, explicit=explicit, disable_web=disable_web
                )
                deleted += [key for key in drop if key not in deleted]
            body["annotations"] = annotations
        if deleted:
            body["delAnnotations"] = deleted
        with reporting(f"Unable to {verb} action '{qname.entity}'"):
            client.put_action(qname.namespace, qname.entity, body, overwrite=update)
    ok(f"{verb}d action {qname.entity}")


def _existing_action(client: WhiskClient, qname: QualifiedName) -> dict[str, Any] | None:
    try:
        action = client.get_action(qname.namespace, qname.entity, code=False)
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise CliError(f"Unable to get action '{qname.entity}': {exc}", exc.exit_code) from exc
    return action if isinstance(action, dict) else None


def _carry_forward(
    annotations: list[dict[str, Any]], old: list[dict[str, Any]], keys: tuple[str, ...]
) -> list[dict[str, Any]]:
    """`annotations` plus those of `old` under `keys` that it lacks (the Go client's `AppendKeyValueArr`)."""
    present = {item.get("key") for item in annotations}
    return annotations + [item for item in old if item.get("key") in keys and item.get("key") not in present]


def _secure_web_action(
    mode: str, annotations: list[dict[str, Any]], old: list[dict[str, Any]], *, explicit: bool, disable_web: bool
) -> tuple[list[dict[str, Any]], list[str]]:
    """`--web-secure`: the annotations with `require-whisk-auth` set, and the keys to delete on the server.

    As wsk ([CLI] commands/action.go `augmentWebSecureArg`, `updateWebSecureAnnotation`): only for an action that
    is (or stays) a web action; `-a` given on update still keeps the existing web annotations; an existing
    numeric secret survives `--web-secure true`; `false` removes an existing secret.
    """
    is_web = any(item.get("key") == "web-export" and item.get("value") is True for item in annotations)
    was_web = any(item.get("key") == "web-export" and item.get("value") is True for item in old)
    if not (is_web or (was_web and not disable_web)):
        raise CliError("The --web-secure option is only valid when the --web option is enabled.")
    if explicit:
        annotations = _carry_forward(annotations, old, (*WEB_ANNOTATIONS, WEB_SECURE_ANNOTATION))
    secret = web_secure_secret(mode)
    current = next((item.get("value") for item in annotations if item.get("key") == WEB_SECURE_ANNOTATION), None)
    if secret is False and current is not None:
        kept = [item for item in annotations if item.get("key") != WEB_SECURE_ANNOTATION]
        return kept, [WEB_SECURE_ANNOTATION]
    if isinstance(secret, int) and not isinstance(secret, bool) and _is_integer(current):
        return annotations, []  # keep the secret the action already has
    return merge_annotations(annotations, {WEB_SECURE_ANNOTATION: secret}), []


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _action_url(config: Config, qname: QualifiedName, action: dict[str, Any]) -> str:
    """[GOC] whisk/action.go `ActionURL`: the namespace is the action's own (the server's name for `_`), the
    package the one the user named (so a binding's URL goes through the binding), each part query-escaped."""
    api = f"{props.normalize_apihost(config.configured_apihost())}/api/{config.apiversion()}"
    namespace = _query_escape(str(action.get("namespace") or qname.namespace).split("/")[0])
    name = _query_escape(str(action.get("name") or qname.name))
    package = _query_escape(qname.package or "")
    if annotation(action, "web-export") is True:
        return f"{api}/web/{namespace}/{package or 'default'}/{name}"
    if package:
        return f"{api}/namespaces/{namespace}/actions/{package}/{name}"
    return f"{api}/namespaces/{namespace}/actions/{name}"


def _query_escape(text: str) -> str:
    # Go's url.QueryEscape with "+" turned back into "%20", as the Go client does.
    return quote(text, safe="")


_TEXT_EXTENSIONS = {"nodejs": ".js", "python": ".py", "swift": ".swift", "php": ".php", "ruby": ".rb",
                    "rust": ".rs", "go": ".go"}  # fmt: skip
_BINARY_EXTENSIONS = {"java": ".jar", "wasm": ".wasm"}


def _save_code(action: dict[str, Any], save_as: Path | None) -> None:
    exec_ = action.get("exec") or {}
    runtime = str(exec_.get("kind", "")).split(":")[0].lower()
    code = exec_.get("code")
    if runtime == "sequence":
        raise CliError("Cannot save action sequences")
    if code is None:
        raise CliError("Cannot save Docker images" if runtime == "blackbox" else "The action has no code to save")
    binary = bool(exec_.get("binary"))
    try:
        content = base64.b64decode(code, validate=True) if binary else str(code).encode("utf-8")
    except (binascii.Error, ValueError) as exc:
        raise CliError(f"The action's code is not valid base64: {exc}") from exc
    extension = _BINARY_EXTENSIONS.get(runtime, ".zip") if binary else _TEXT_EXTENSIONS.get(runtime, "")
    path = save_as if save_as is not None else Path(f"{action.get('name')}{extension}")
    if path.exists():
        raise CliError(f"The file '{path}' already exists")
    try:
        path.write_bytes(content)
    except OSError as exc:
        raise CliError(f"Unable to save the action code to '{path}': {exc}") from exc
    ok(f"saved action code to {path.resolve()}")
