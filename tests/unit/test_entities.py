"""Actions as OpenWhisk stores and returns them: names, limits, binary code, versions, API shapes."""

from __future__ import annotations

import base64

import pytest

from pywhisk.entities import (
    Action,
    Exec,
    KeyValue,
    Limits,
    LimitsPut,
    bump_patch,
    is_binary_code,
    merge_pairs,
    validate_name,
)
from pywhisk.errors import BadRequest

pytestmark = pytest.mark.unit


# names ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "a",
        "_",
        "7",
        "hello",
        "hello_world",
        "with space inside",
        "dots.and-dashes",
        "at@sign",
        "amp&ersand",
        "ends-with-dash-",
        "ends.with.dot.",
        "ends@",
        "a" * 256,
    ],
)
def test_valid_entity_names_are_accepted(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        " leading-space",
        "-leading-dash",
        ".leading-dot",
        "@leading-at",
        "trailing-space ",
        "a" * 257,
        "has/slash",
        "has:colon",
        "has?question",
        "has#hash",
        "tab\tinside",
        "newline\n",
        "line\nbreak",
    ],
)
def test_invalid_entity_names_are_rejected_with_400(name: str) -> None:
    with pytest.raises(BadRequest) as caught:
        validate_name(name)
    assert caught.value.status_code == 400
    assert f"'{name}' is not valid" in caught.value.message


@pytest.mark.parametrize("name", ["h\u00e9llo", "\u540d\u524d"])
def test_non_ascii_names_are_rejected_like_openwhisk(name: str) -> None:
    with pytest.raises(BadRequest):
        validate_name(name)


def test_name_error_names_what_was_checked() -> None:
    with pytest.raises(BadRequest, match=r"^The package name '-x' is not valid"):
        validate_name("-x", what="package name")


def test_name_limit_is_exactly_256_characters() -> None:
    assert validate_name("x" * 256)
    with pytest.raises(BadRequest):
        validate_name("x" * 257)


# limits -----------------------------------------------------------------------------------------


def test_limits_default_to_openwhisk_standard_values() -> None:
    assert Limits().model_dump() == {"timeout": 60000, "memory": 256, "logs": 10, "concurrency": 1}


def test_limits_put_without_fields_keeps_the_base() -> None:
    base = Limits(timeout=1000, memory=128, logs=0, concurrency=5)
    assert LimitsPut().apply_to(base) == base


def test_limits_put_merges_field_by_field() -> None:
    base = Limits(timeout=1000, memory=128, logs=2, concurrency=5)
    merged = LimitsPut(memory=512).apply_to(base)
    assert merged.model_dump() == {"timeout": 1000, "memory": 512, "logs": 2, "concurrency": 5}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("timeout", 100),
        ("timeout", 300_000),
        ("memory", 128),
        ("memory", 512),
        ("logs", 0),
        ("logs", 10),
        ("concurrency", 1),
        ("concurrency", 500),
    ],
)
def test_limits_at_the_boundaries_are_accepted(field: str, value: int) -> None:
    limits = LimitsPut(**{field: value}).apply_to(Limits())
    assert getattr(limits, field) == value


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("memory", 1024, "memory size 1024 MB exceeds allowed threshold of 512 MB"),
        ("memory", 513, "memory size 513 MB exceeds allowed threshold of 512 MB"),
        ("memory", 64, "memory size 64 MB below allowed threshold of 128 MB"),
        ("timeout", 400_000, "duration 400000 milliseconds exceeds allowed threshold of 300000 milliseconds"),
        ("timeout", 99, "duration 99 milliseconds below allowed threshold of 100 milliseconds"),
        ("timeout", 0, "duration 0 milliseconds below allowed threshold of 100 milliseconds"),
        ("logs", 11, "log size 11 MB exceeds allowed threshold of 10 MB"),
        ("logs", -1, "log size -1 MB below allowed threshold of 0 MB"),
        ("concurrency", 0, "concurrency 0 below allowed threshold of 1"),
        ("concurrency", 501, "concurrency 501 exceeds allowed threshold of 500"),
    ],
)
def test_limits_out_of_range_are_400_with_openwhisk_message(field: str, value: int, message: str) -> None:
    with pytest.raises(BadRequest) as caught:
        LimitsPut(**{field: value}).apply_to(Limits())
    assert caught.value.status_code == 400
    assert caught.value.message == message


# binary code ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code",
    [
        base64.b64encode(b"\x00asm\x01\x00\x00\x00").decode(),
        "ZWNobw==",
        "  ZWNobw==\n",  # trimmed first
        "abcd",  # valid base64 of length 4, even if it was meant as text
    ],
)
def test_base64_code_of_length_divisible_by_4_is_binary(code: str) -> None:
    assert is_binary_code(code) is True


@pytest.mark.parametrize(
    "code",
    [
        "",
        "   ",
        "def main(args): return args",
        "ZWNob",  # length 5
        "ZWNobw=",  # length 7
        "ab!d",  # not in the base64 alphabet
        "ZW=obw==",  # padding in the middle
    ],
)
def test_text_and_malformed_base64_are_not_binary(code: str) -> None:
    assert is_binary_code(code) is False


# versions ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("before", "after"),
    [("0.0.1", "0.0.2"), ("1.2.3", "1.2.4"), ("0.0.9", "0.0.10"), ("2.0.99", "2.0.100")],
)
def test_bump_patch_adds_one_to_the_patch(before: str, after: str) -> None:
    assert bump_patch(before) == after


@pytest.mark.parametrize("version", ["", "1", "1.2", "1.2.3.4", "a.b.c", "1.2.x"])
def test_bump_patch_of_a_non_semver_restarts_at_0_0_1(version: str) -> None:
    assert bump_patch(version) == "0.0.1"


# parameters -------------------------------------------------------------------------------------


def test_merge_pairs_lets_overrides_win_and_keeps_base_order() -> None:
    base = [KeyValue(key="a", value=1), KeyValue(key="b", value=2)]
    merged = merge_pairs(base, [KeyValue(key="b", value=20), KeyValue(key="c", value=3)])
    assert [(p.key, p.value) for p in merged] == [("a", 1), ("b", 20), ("c", 3)]


# API shapes -------------------------------------------------------------------------------------


def _action(**overrides: object) -> Action:
    fields: dict[str, object] = {
        "namespace": "guest",
        "name": "hello",
        "exec": Exec(kind="wasm:wasi", code="ZWNobw==", binary=True),
        "parameters": [KeyValue(key="name", value="World"), KeyValue(key="secret", value="s", init=True)],
        "annotations": [KeyValue(key="exec", value="wasm:wasi"), KeyValue(key="web-export", value=True)],
        "updated": 1_700_000_000_000,
        "rev": "1-abc",
    }
    fields.update(overrides)
    return Action.model_validate(fields)


def test_action_to_api_has_openwhisk_document_shape() -> None:
    assert _action().to_api() == {
        "namespace": "guest",
        "name": "hello",
        "version": "0.0.1",
        "publish": False,
        "exec": {"kind": "wasm:wasi", "code": "ZWNobw==", "binary": True},
        "parameters": [{"key": "name", "value": "World"}, {"key": "secret", "value": "s", "init": True}],
        "annotations": [{"key": "exec", "value": "wasm:wasi"}, {"key": "web-export", "value": True}],
        "limits": {"timeout": 60000, "memory": 256, "logs": 10, "concurrency": 1},
        "updated": 1_700_000_000_000,
    }


def test_action_to_api_without_code_omits_only_the_code() -> None:
    doc = _action(exec=Exec(kind="wasm:wasi", code="ZWNobw==", binary=True, main="run")).to_api(include_code=False)
    assert doc["exec"] == {"kind": "wasm:wasi", "binary": True, "main": "run"}
    assert doc["name"] == "hello"


def test_action_to_api_never_exposes_the_store_revision() -> None:
    assert "rev" not in _action().to_api()


def test_action_summary_has_the_list_row_shape() -> None:
    assert _action().summary() == {
        "namespace": "guest",
        "name": "hello",
        "version": "0.0.1",
        "publish": False,
        "annotations": [{"key": "exec", "value": "wasm:wasi"}, {"key": "web-export", "value": True}],
        "limits": {"timeout": 60000, "memory": 256, "logs": 10, "concurrency": 1},
        "exec": {"binary": True},
        "updated": 1_700_000_000_000,
    }


def test_action_to_api_keeps_null_parameter_and_annotation_values() -> None:
    action = _action(parameters=[KeyValue(key="p")], annotations=[KeyValue(key="a", value=None)])
    doc = action.to_api()
    assert doc["parameters"] == [{"key": "p", "value": None}]
    assert doc["annotations"] == [{"key": "a", "value": None}]


def test_action_summary_keeps_null_annotation_values() -> None:
    action = _action(annotations=[KeyValue(key="a", value=None)])
    assert action.summary()["annotations"] == [{"key": "a", "value": None}]


def test_action_paths_are_namespace_qualified() -> None:
    action = _action()
    assert action.fully_qualified_name == "/guest/hello"
    assert action.path == "guest/hello"


def test_action_annotation_lookup_returns_default_when_absent() -> None:
    action = _action()
    assert action.annotation("exec") == "wasm:wasi"
    assert action.annotation("final", False) is False
