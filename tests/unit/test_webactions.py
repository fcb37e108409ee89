"""The pure rules of web actions: extensions, projection, request context, transcoding of results.

Follows OpenWhisk's tests/src/test/scala/org/apache/openwhisk/core/controller/test/WebActionsApiTests.scala
(``WebActionsApiCommonTests`` and the transcoding cases) and core/controller/.../controller/WebActions.scala.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from controller.webactions import (
    EXTENSIONS,
    HTTP,
    NO_BODY,
    WebError,
    action_arguments,
    context_headers,
    default_cors_headers,
    http_response,
    overrides_allowed,
    pretty_json,
    project,
    projection,
    request_body,
    require_whisk_auth,
    result_response,
    split_extension,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("extension", [".http", ".json", ".text", ".html", ".svg"])
@pytest.mark.parametrize("base", ["t", "tt", "t.wxyz", "tt.wxyz"])
def test_extension_splitter_splits_name_and_known_extension(extension: str, base: str) -> None:
    name, found = split_extension(base + extension)

    assert (name, found.name) == (base, extension)


@pytest.mark.parametrize("segment", ["t", "tt", "abcde", "t.wxyz", "t.xyz"])
def test_a_name_without_a_known_extension_is_served_as_http(segment: str) -> None:
    assert split_extension(segment) == (segment, HTTP)


def test_projection_by_extension() -> None:
    by_name = {e.name: e for e in EXTENSIONS}

    assert projection(by_name[".http"], "/content/response") == []
    assert projection(by_name[".json"], "") == []
    assert projection(by_name[".json"], "/content") == ["content"]
    assert projection(by_name[".text"], "") == ["text"]
    assert projection(by_name[".text"], "/content/z//") == ["content", "z"]
    assert projection(by_name[".text"], "/") == []
    assert projection(by_name[".html"], "") == ["html"]


def test_project_walks_objects_and_404s_a_missing_field() -> None:
    result = {"content": {"z": "Z"}}

    assert project(result, ["content", "z"]) == "Z"
    assert project(result, []) == result
    for path in (["foobar"], ["content", "z", "x"]):
        with pytest.raises(WebError) as caught:
            project(result, path)
        assert (caught.value.status, caught.value.message) == (404, "Response does not include requested property.")


def test_request_body_parsing() -> None:
    assert request_body("application/json", b'{"a": 1}', raw=False) == {"a": 1}
    assert request_body("application/cloudevents+json", b'{"a": 1}', raw=False) == {"a": 1}
    assert request_body("application/json", b"null", raw=False) is None
    assert request_body("application/json", b"", raw=False) is NO_BODY
    assert request_body("application/x-www-form-urlencoded", b"a=1&b=", raw=False) == {"a": "1", "b": ""}
    assert request_body("text/plain", b"1,2,3", raw=False) == "1,2,3"
    assert request_body("image/png", b"\x89PNG", raw=False) == base64.b64encode(b"\x89PNG").decode()
    assert request_body(None, b"\x00", raw=False) == "AA=="  # no Content-Type: octet-stream, binary
    # raw-http: JSON stays opaque (base64, as OpenWhisk keeps for application/json), a form stays text.
    assert request_body("application/json", b'{"a": 1}', raw=True) == base64.b64encode(b'{"a": 1}').decode()
    assert request_body("application/x-www-form-urlencoded", b"a=1", raw=True) == "a=1"
    with pytest.raises(WebError) as caught:
        request_body("application/json", b"{", raw=False)
    assert caught.value.status == 400 and caught.value.message.startswith("The request content was malformed:")


def test_action_arguments_merge_query_then_body_over_the_context() -> None:
    common: dict[str, Any] = {"method": "POST", "headers": {"accept": "*/*"}, "path": "/p", "query_string": "a=q&b=q"}

    merged = action_arguments(**common, query={"a": "q", "b": "q"}, body={"b": "body"}, raw=False, user=None)
    boxed = action_arguments(**common, query={"a": "q"}, body=[1], raw=False, user="guest")
    raw = action_arguments(**common, query={"a": "q"}, body=NO_BODY, raw=True, user=None)

    assert merged == {"__ow_method": "post", "__ow_headers": {"accept": "*/*"}, "__ow_path": "/p", "a": "q",
                      "b": "body"}  # fmt: skip
    assert boxed["__ow_body"] == [1] and boxed["__ow_user"] == "guest"
    assert (raw["__ow_query"], raw["__ow_body"]) == ("a=q&b=q", "") and "a" not in raw


def test_reserved_and_protected_parameters_may_not_be_overridden() -> None:
    assert overrides_allowed({"a"}, {"b": 1}, {"y"})
    assert not overrides_allowed({"y"}, NO_BODY, {"y"})
    assert not overrides_allowed(set(), {"__ow_user": "me"}, set())
    assert overrides_allowed(set(), "__ow_user", set())  # an opaque body names nothing


def test_context_headers_are_lower_cased_without_content_length() -> None:
    headers = context_headers([("Accept", "*/*"), ("Content-Length", "3"), ("X-A", "1"), ("x-a", "2")])

    assert headers == {"accept": "*/*", "x-a": "2"}


def test_cors_headers_echo_the_requested_headers() -> None:
    assert dict(default_cors_headers({}))["Access-Control-Allow-Headers"].startswith("Authorization, Origin")
    assert dict(default_cors_headers({"access-control-request-headers": "x-mine"})) == {
        "Access-Control-Allow-Origin": "*",
        "Access-Control-Allow-Methods": "OPTIONS, GET, DELETE, POST, PUT, HEAD, PATCH",
        "Access-Control-Allow-Headers": "x-mine",
    }


def test_require_whisk_auth_forms() -> None:
    assert require_whisk_auth(None, {}, authenticated=False)
    assert require_whisk_auth(True, {}, authenticated=True)
    assert not require_whisk_auth(True, {"x-require-whisk-auth": "true"}, authenticated=False)
    assert require_whisk_auth("key", {"x-require-whisk-auth": "key"}, authenticated=False)
    assert not require_whisk_auth("key", {"x-require-whisk-auth": "key-bad"}, authenticated=True)
    assert require_whisk_auth(42, {"x-require-whisk-auth": "42"}, authenticated=False)
    assert not require_whisk_auth(False, {}, authenticated=True)  # OpenWhisk: "something is not right"


def test_http_defaults_empty_bodies_to_204_and_drops_their_content_type() -> None:
    for result in ({}, {"body": ""}, {"body": None}):
        assert http_response(result).status == 204 and http_response(result).body == b""
    response = http_response({"statusCode": 200, "headers": {"Set-Cookie": "a=b", "content-type": "application/json"}})
    assert (response.status, response.headers, response.content_type) == (200, [("Set-Cookie", "a=b")], None)


def test_http_string_json_and_binary_bodies() -> None:
    html = http_response({"body": "hello"})
    typed = http_response({"headers": {"content-type": "application/json"}, "body": "hello world"})
    as_json = http_response({"statusCode": "201", "body": {"field": "value"}})
    plus_json = http_response({"headers": {"content-type": "application/hal+json"}, "body": {"a": 1}})
    b64_json = http_response({"headers": {"content-type": "application/json-patch+json"},
                              "body": base64.b64encode(b'{"a":1}').decode()})  # fmt: skip
    png = http_response({"headers": {"Content-Type": "image/png"}, "body": base64.b64encode(b"\x89PNG").decode()})

    assert (html.status, html.body, html.content_type) == (200, b"hello", "text/html; charset=UTF-8")
    assert (typed.body, typed.content_type) == (b"hello world", "application/json")
    assert (as_json.status, as_json.body, as_json.content_type) == (
        201,
        b'{\n  "field": "value"\n}',
        "application/json",
    )
    assert plus_json.content_type == "application/hal+json"
    assert b64_json.body == b'{"a":1}'
    assert (png.body, png.content_type) == (b"\x89PNG", "image/png")


def test_http_headers_repeat_for_arrays_and_print_scalars_as_scala() -> None:
    response = http_response({"headers": {"Set-Cookie": ["a=b", "c=d; Path = /"], "X-N": 1, "X-B": True}})

    assert response.headers == [("Set-Cookie", "a=b"), ("Set-Cookie", "c=d; Path = /"), ("X-N", "1"), ("X-B", "true")]


@pytest.mark.parametrize(
    ("result", "message"),
    [
        ([1, 2], "Response is not valid 'message/http'."),
        ("text", "Response is not valid 'message/http'."),
        ({"statusCode": "xyz"}, "Response is not valid 'message/http'."),
        ({"statusCode": 299}, "Response is not valid 'message/http'."),
        ({"statusCode": 600}, "Response is not valid 'message/http'."),
        ({"statusCode": 200.5}, "Response is not valid 'message/http'."),
        ({"statusCode": True}, "Response is not valid 'message/http'."),
        ({"headers": ["a"]}, "Response is not valid 'message/http'."),
        ({"headers": {"a": {"b": 1}}}, "Response is not valid 'message/http'."),
        ({"headers": {"bad name": "x"}}, "Response is not valid 'message/http'."),
        ({"headers": {"x": "a\r\nInjected: 1"}}, "Response is not valid 'message/http'."),
        ({"headers": {"content-type": "xyzbar"}, "body": "hello"}, "Response did not specify a known content-type."),
        ({"headers": {"content-type": "text/html"}, "body": {"a": 1}},
         "Response type in header did not match generated content type."),
        ({"headers": {"content-type": "image/png"}, "body": "not base64!"},
         "Response type in header did not match generated content type."),
    ],
)  # fmt: skip
def test_http_result_errors(result: object, message: str) -> None:
    with pytest.raises(WebError) as caught:
        http_response(result)

    assert (caught.value.status, caught.value.message) == (400, message)


def test_other_extensions_render_their_media() -> None:
    by_name = {e.name: e for e in EXTENSIONS}

    assert result_response(by_name[".json"], {"foobar": "foobar"}).body == b'{\n  "foobar": "foobar"\n}'
    assert result_response(by_name[".json"], [1]).body == b"[1]"
    assert result_response(by_name[".html"], "<p/>").content_type == "text/html; charset=UTF-8"
    assert result_response(by_name[".svg"], "<svg/>").content_type == "image/svg+xml"
    texts = [result_response(by_name[".text"], v).body for v in ({"a": "A"}, ["a"], "a", True, 1, None)]
    assert texts == [b'{\n  "a": "A"\n}', b'["a"]', b"a", b"true", b"1", b"null"]
    for extension, value, media in ((".json", "s", "application/json"), (".html", 1, "text/html"),
                                    (".svg", None, "image/svg+xml")):  # fmt: skip
        with pytest.raises(WebError) as caught:
            result_response(by_name[extension], value)
        assert caught.value.message == f"Response is not valid '{media}'."


def test_pretty_json_is_spray_json_pretty_print() -> None:
    assert pretty_json({"a": [1, {"b": None}], "c": "é\n"}) == '{\n  "a": [1, {\n    "b": null\n  }],\n  "c": "é\\n"\n}'
