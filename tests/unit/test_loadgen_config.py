"""Where loadgen takes its API host and key from: options, the .wskprops file, then the standalone defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadgen.config import DEFAULT_APIHOST, GUEST_AUTH, normalize_apihost, parse_props, props_path, resolve_target

pytestmark = pytest.mark.unit


def test_props_are_key_value_lines_with_comments_and_junk_ignored() -> None:
    text = "# a comment\nAPIHOST = http://10.0.0.15:3233\nnot a pair\n\nAUTH=uuid:key=with=equals\nAPIHOST=later\n"

    assert parse_props(text) == {"APIHOST": "later", "AUTH": "uuid:key=with=equals"}


def test_props_path_prefers_wsk_config_file(tmp_path: Path) -> None:
    assert props_path({"WSK_CONFIG_FILE": str(tmp_path / "props")}) == tmp_path / "props"
    assert props_path({}) == Path.home() / ".wskprops"


def test_target_comes_from_the_props_file(tmp_path: Path) -> None:
    props = tmp_path / "props"
    props.write_text("APIHOST=127.0.0.1:9999\nAUTH=u:k\n")

    target = resolve_target(None, None, {"WSK_CONFIG_FILE": str(props)})

    assert target.apihost == "https://127.0.0.1:9999"  # no scheme means https, as wsk does
    assert target.credentials == ("u", "k")


def test_options_override_the_props_file(tmp_path: Path) -> None:
    props = tmp_path / "props"
    props.write_text("APIHOST=http://a:1\nAUTH=u:k\n")

    target = resolve_target("http://b:2/", "x:y", {"WSK_CONFIG_FILE": str(props)})

    assert (target.apihost, target.auth) == ("http://b:2", "x:y")


def test_defaults_are_standalone_and_the_guest_key(tmp_path: Path) -> None:
    target = resolve_target(None, None, {"WSK_CONFIG_FILE": str(tmp_path / "missing")})

    assert (target.apihost, target.auth) == (DEFAULT_APIHOST, GUEST_AUTH)
    assert target.credentials[0] == "23bc46b1-71f6-4ed5-8c54-816aa4f8c502"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://127.0.0.1:3233", "http://127.0.0.1:3233"),
        ("http://127.0.0.1:3233/api/v1/", "http://127.0.0.1:3233"),
        ("openwhisk.example.com", "https://openwhisk.example.com"),
        ("  https://h:1/  ", "https://h:1"),
    ],
)
def test_apihost_normalisation(given: str, expected: str) -> None:
    assert normalize_apihost(given) == expected
