"""What pywsk prints: `ok:` lines, JSON documents, and `error:` lines with wsk's exit codes.

Commands raise `CliError`; the root command group prints it as `error: <message>` on stderr and exits with its
code (see `context.RootGroup`). `reporting()` turns client failures into that form, prefixed by what failed, as
`wsk` does: `error: Unable to create action 'hello': resource already exists (code 123)`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer

from pywsk.client import ApiError, ClientError

USAGE_EXIT_CODE = 1  # wsk's EXIT_CODE_ERR_GENERAL, used for bad files, bad JSON and other client-side mistakes
TIMEOUT_EXIT_CODE = 202  # a blocking invoke that did not finish in time


class CliError(Exception):
    """A failure to report as `error: <message>` with exit status `exit_code`."""

    def __init__(self, message: str, exit_code: int = USAGE_EXIT_CODE) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


@contextmanager
def reporting(what: str) -> Iterator[None]:
    """Re-raise API errors as `CliError("<what>: <server message> (code <code>)")`.

    Connection failures keep their own message: saying which command failed adds nothing to
    "Unable to connect to ...".
    """
    try:
        yield
    except ApiError as exc:
        raise CliError(f"{what}: {exc}", exc.exit_code) from exc
    except ClientError as exc:
        raise CliError(str(exc), exc.exit_code) from exc


def ok(message: str, *, err: bool = False) -> None:
    """Print `ok: <message>` ("ok:" is green on a terminal, as in wsk)."""
    typer.echo(f"{typer.style('ok:', fg='green')} {message}", err=err)


def print_json(value: Any, *, err: bool = False) -> None:
    """Print a JSON document the way wsk does: 4-space indentation, keys in the server's order."""
    typer.echo(json.dumps(value, indent=4, ensure_ascii=False), err=err)


def print_error(message: str) -> None:
    typer.echo(f"{typer.style('error:', fg='red')} {message}", err=True)
