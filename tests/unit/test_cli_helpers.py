"""The pure parts of pywsk: names, values, layouts and the properties file, without a server."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest

from pywsk.context import split_pairs
from pywsk.entities import QualifiedName, json_or_string, parse_collection, parse_qualified_name
from pywsk.formatting import activation_status, go_duration, strip_log_line, truncate_middle
from pywsk.output import CliError
from pywsk.props import normalize_apihost, read_props, write_props

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hello", QualifiedName("_", "hello")),
        ("pkg/hello", QualifiedName("_", "pkg/hello")),
        ("/guest/hello", QualifiedName("guest", "hello")),
        ("/guest/pkg/hello", QualifiedName("guest", "pkg/hello")),
        ("my action@v2", QualifiedName("_", "my action@v2")),
        ("guest/pkg/hello", QualifiedName("guest", "pkg/hello")),  # wsk's addLeadSlash
    ],
)
def test_qualified_names(text: str, expected: QualifiedName) -> None:
    assert parse_qualified_name(text, "_") == expected


def test_default_namespace_comes_from_the_caller() -> None:
    assert str(parse_qualified_name("hello", "guest")) == "/guest/hello"


@pytest.mark.parametrize("text", ["", "/", "/guest", "a/b/c/d", "/a/b/c/d", "pkg/", "//x", "/ns//x", "a//b"])
def test_invalid_qualified_names(text: str) -> None:
    with pytest.raises(CliError, match="is not a valid qualified name"):
        parse_qualified_name(text, "_")


@pytest.mark.parametrize(
    ("text", "expected"),
    [(None, ("_", None)), ("pkg", ("_", "pkg")), ("/guest", ("guest", None)), ("/guest/pkg", ("guest", "pkg"))],
)
def test_list_collections(text: str | None, expected: tuple[str, str | None]) -> None:
    assert parse_collection(text, "_") == expected


@pytest.mark.parametrize("text", ["a/b", "/", "/a/b/c"])
def test_invalid_list_collections(text: str) -> None:
    with pytest.raises(CliError):
        parse_collection(text, "_")


@pytest.mark.parametrize(
    ("raw", "value"),
    [("1", 1), ("1.5", 1.5), ("true", True), ("null", None), ('"s"', "s"), ("[1]", [1]), ("{}", {}),
     ("hello", "hello"), ("", ""), ("Infinity", "Infinity"), ("{bad", "{bad"), (" 2 ", 2)],
)  # fmt: skip
def test_param_values_are_json_or_strings(raw: str, value: Any) -> None:
    assert json_or_string(raw) == value


def test_pairs_are_split_for_typer_but_not_after_double_dash() -> None:
    assert split_pairs(["-p", "k", "v", "-a", "x", "-y", "--", "-p", "a", "b"]) == [
        "-p", "k", "-p", "v", "-a", "x", "-a", "-y", "--", "-p", "a", "b"
    ]  # fmt: skip
    assert split_pairs(["x", "-p", "k"]) == ["x", "-p", "k"]
    assert split_pairs(["-p"]) == ["-p"]


@pytest.mark.parametrize(
    ("ms", "text"),
    [(0, "0s"), (7, "7ms"), (999, "999ms"), (1000, "1s"), (1500, "1.5s"), (1234, "1.234s"), (60_000, "1m0s"),
     (61_500, "1m1.5s"), (3_600_000, "1h0m0s"), (3_723_010, "1h2m3.01s")],
)  # fmt: skip
def test_durations_print_like_go(ms: int, text: str) -> None:
    assert go_duration(ms) == text


def test_truncate_middle_keeps_the_width() -> None:
    assert truncate_middle("short", 20) == "short"
    assert truncate_middle("a" * 10 + "b" * 15, 20) == "a" * 10 + "..." + "b" * 7
    assert len(truncate_middle("x" * 40, 21)) == 21


@pytest.mark.parametrize(
    ("line", "stripped"),
    [
        (f"{'2024-01-01T00:00:00.000000Z':<30} stdout: text", "text"),
        ("2024-01-01T00:00:00.5Z stderr: a: b", "a: b"),
        ("2024-01-01T00:00:00.5Z plain", "plain"),
        ("not a log line", "not a log line"),
    ],
)
def test_strip_log_line(line: str, stripped: str) -> None:
    assert strip_log_line(line) == stripped


@pytest.mark.parametrize(
    ("record", "status"),
    [
        ({"statusCode": 0}, "success"),
        ({"statusCode": 2}, "developer error"),
        ({"response": {"status": "whisk internal error"}}, "internal error"),
        ({"response": {"statusCode": 1}}, "application error"),
        ({}, "success"),
    ],
)
def test_activation_status(record: dict[str, Any], status: str) -> None:
    assert activation_status(record) == status


@pytest.mark.parametrize(
    ("host", "url"),
    [("localhost:3233", "https://localhost:3233"), ("http://127.0.0.1:3233/", "http://127.0.0.1:3233"),
     ("https://whisk.example.com", "https://whisk.example.com")],
)  # fmt: skip
def test_apihost_normalization(host: str, url: str) -> None:
    assert normalize_apihost(host) == url


def test_props_round_trip_keeps_unknown_lines(tmp_path: Path) -> None:
    path = tmp_path / "props"
    path.write_text("# comment\nAUTH=a:b\nCERT=/x\nAUTH=dup\ngarbage\n")

    assert read_props(path) == {"AUTH": "dup", "CERT": "/x"}
    write_props(path, {"AUTH": "c:d", "APIHOST": "h", "NAMESPACE": None})

    assert path.read_text() == "# comment\nAUTH=c:d\nCERT=/x\ngarbage\nAPIHOST=h\n"


def test_new_props_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "props"

    write_props(path, {"AUTH": "secret"})

    assert read_props(path) == {"AUTH": "secret"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_missing_props_file_reads_empty(tmp_path: Path) -> None:
    assert read_props(tmp_path / "absent") == {}
