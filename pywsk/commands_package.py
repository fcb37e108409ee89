"""`pywsk package ...`: create, update, bind, get, list and delete packages ([CLI] commands/package.go).

The request bodies are the Go client's ([GOC] whisk/package.go): `Package` (namespace, name, publish, annotations,
parameters; empty lists left out) for create and update, `BindingPackage` (annotations, parameters and
`binding: {namespace, name}`) for bind. A name without `/NS/` is sent in the namespace of the properties file,
`_` by default, and the server reads `_` as the caller's own namespace; so is a binding's package.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from pywsk.context import command, get_config, pairs
from pywsk.entities import (
    as_key_value_list,
    key_values,
    parse_namespace_argument,
    parse_qualified_name,
    parse_shared,
)
from pywsk.formatting import package_row, package_summary, sort_packages
from pywsk.options import AnnotationFileOpt, AnnotationOpt, ParamFileOpt
from pywsk.output import CliError, ok, print_json, reporting

package_app = typer.Typer(help="Work with packages.", no_args_is_help=True)

# The fields `package get NAME FIELD` may show: those of the Go client's `Package` ([CLI] `fieldExists`).
PACKAGE_FIELDS = ("namespace", "name", "version", "publish", "annotations", "parameters", "binding", "actions",
                  "feeds", "updated")  # fmt: skip

NameArg = Annotated[str, typer.Argument(metavar="PACKAGE_NAME", help="Package name: NAME or /NS/NAME.")]
ParamOpt = Annotated[
    list[str] | None,
    typer.Option("-p", "--param", metavar="KEY VALUE",
                 help="Parameter KEY VALUE (repeatable), bound for every action of the package; "
                      "VALUE is parsed as JSON if it is valid JSON, else a string."),
]  # fmt: skip
SharedOpt = Annotated[
    str | None,
    typer.Option("--shared", metavar="yes|no",
                 help="Package visibility: yes = shared (other namespaces may bind it), no = private."),
]  # fmt: skip


@command(package_app, "create")
def create(
    ctx: typer.Context,
    name: NameArg,
    param: ParamOpt = None,
    param_file: ParamFileOpt = None,
    annotation: AnnotationOpt = None,
    annotation_file: AnnotationFileOpt = None,
    shared: SharedOpt = None,
) -> None:
    """Create a new package."""
    _put_package(ctx, name, param, param_file, annotation, annotation_file, shared, update=False)


@command(package_app, "update")
def update(
    ctx: typer.Context,
    name: NameArg,
    param: ParamOpt = None,
    param_file: ParamFileOpt = None,
    annotation: AnnotationOpt = None,
    annotation_file: AnnotationFileOpt = None,
    shared: SharedOpt = None,
) -> None:
    """Update an existing package, or create a package if it does not exist."""
    _put_package(ctx, name, param, param_file, annotation, annotation_file, shared, update=True)


@command(package_app, "bind")
def bind(
    ctx: typer.Context,
    package: Annotated[
        str, typer.Argument(metavar="PACKAGE_NAME", help="The package to bind: NAME or /NS/NAME (a shared one).")
    ],
    binding: Annotated[str, typer.Argument(metavar="BOUND_PACKAGE_NAME", help="Name of the new binding.")],
    param: ParamOpt = None,
    param_file: ParamFileOpt = None,
    annotation: AnnotationOpt = None,
    annotation_file: AnnotationFileOpt = None,
) -> None:
    """Bind parameters to a package: a new package BOUND_PACKAGE_NAME whose actions are PACKAGE_NAME's."""
    config = get_config(ctx)
    bound = parse_qualified_name(package, config.namespace())
    qname = parse_qualified_name(binding, config.namespace())
    body = _key_value_fields(param, param_file, annotation, annotation_file)
    body["binding"] = {"namespace": bound.namespace, "name": bound.entity}
    with config.client() as client, reporting("Binding creation failed"):
        client.put_package(qname.namespace, qname.entity, body, overwrite=False)
    ok(f"created binding {binding}")


@command(package_app, "get")
def get(
    ctx: typer.Context,
    name: NameArg,
    field: Annotated[
        str | None, typer.Argument(metavar="FIELD_FILTER", help="Show only this field, e.g. parameters.")
    ] = None,
    summary: Annotated[
        bool,
        typer.Option("-s", "--summary",
                     help='Summarize the package and its actions; parameters with prefix "*" are bound.'),
    ] = False,
) -> None:  # fmt: skip
    """Get a package, with the actions it holds."""
    config = get_config(ctx)
    if field is not None and field.lower() not in PACKAGE_FIELDS:
        raise CliError(f"Invalid field filter '{field}'.")
    qname = parse_qualified_name(name, config.namespace())
    with config.client() as client, reporting(f"Unable to get package '{qname.entity}'"):
        package = client.get_package(qname.namespace, qname.entity)
    if summary:
        for line in package_summary(package):
            typer.echo(line)
    elif field is not None:
        ok(f"got package {qname.entity}, displaying field {field}")
        print_json(package.get(field.lower()) if isinstance(package, dict) else None)
    else:
        ok(f"got package {qname.entity}")
        print_json(package)


@command(package_app, "list")
def list_packages(
    ctx: typer.Context,
    namespace: Annotated[
        str | None, typer.Argument(metavar="NAMESPACE", help="List the packages of /NAMESPACE.")
    ] = None,
    limit: Annotated[int, typer.Option("-l", "--limit", help="Show at most LIMIT packages (max 200).")] = 30,
    skip: Annotated[int, typer.Option("-s", "--skip", help="Skip the first SKIP packages.")] = 0,
    name_sort: Annotated[bool, typer.Option("-n", "--name-sort", help="Sort the list by name.")] = False,
) -> None:
    """List packages (a namespace's own and its bindings)."""
    config = get_config(ctx)
    listed = parse_namespace_argument(namespace, config.namespace())
    with config.client() as client, reporting(f"Unable to obtain the list of packages for namespace '{listed}'"):
        packages = client.list_packages(listed, limit=limit, skip=skip)
    print_package_list(packages, name_sort=name_sort)


@command(package_app, "delete")
def delete(ctx: typer.Context, name: NameArg) -> None:
    """Delete a package (the server refuses one that still holds actions)."""
    config = get_config(ctx)
    qname = parse_qualified_name(name, config.namespace())
    with config.client() as client, reporting(f"Unable to delete package '{qname.entity}'"):
        client.delete_package(qname.namespace, qname.entity)
    ok(f"deleted package {qname.entity}")


def print_package_list(packages: list[dict[str, Any]], *, name_sort: bool) -> None:
    """`packages` and a row per package (`pywsk list` prints the same block)."""
    typer.echo("packages")
    for package in sort_packages(packages) if name_sort else packages:
        typer.echo(package_row(package))


def _put_package(
    ctx: typer.Context,
    name: str,
    params: list[str] | None,
    param_file: Path | None,
    annotations: list[str] | None,
    annotation_file: Path | None,
    shared: str | None,
    *,
    update: bool,
) -> None:
    config = get_config(ctx)
    qname = parse_qualified_name(name, config.namespace())
    publish = parse_shared(shared)
    body: dict[str, Any] = {"namespace": qname.namespace, "name": qname.entity}
    if publish is not None:
        body["publish"] = publish
    body.update(_key_value_fields(params, param_file, annotations, annotation_file))
    failure = "Package update failed" if update else f"Unable to create package '{qname.entity}'"
    with config.client() as client, reporting(failure):
        client.put_package(qname.namespace, qname.entity, body, overwrite=update)
    ok(f"{'updated' if update else 'created'} package {qname.entity}")


def _key_value_fields(
    params: list[str] | None, param_file: Path | None, annotations: list[str] | None, annotation_file: Path | None
) -> dict[str, Any]:
    # The Go client leaves empty lists out of the body, so an update without -p keeps the package's parameters.
    fields: dict[str, Any] = {}
    annotation_values = key_values(pairs(annotations, "-a"), annotation_file, "annotation")
    if annotation_values:
        fields["annotations"] = as_key_value_list(annotation_values)
    param_values = key_values(pairs(params, "-p"), param_file, "parameter")
    if param_values:
        fields["parameters"] = as_key_value_list(param_values)
    return fields
