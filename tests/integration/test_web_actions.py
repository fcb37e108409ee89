"""Web actions over HTTP, as ``curl`` would call them, against a real ``pywhisk standalone`` (and one distributed
deployment): real WASM (``echo.wasm`` returns its parameters, so the context an action receives is visible) and
Python on Docker for ``.http`` results.

Follows OpenWhisk's tests/src/test/scala/org/apache/openwhisk/core/controller/test/WebActionsApiTests.scala and
core/controller/.../controller/WebActions.scala; docs/webactions.md.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from launcher.testing import Server, start_standalone, stop_standalone
from tests.conftest import wasm_code
from tests.docker_service import docker_daemon  # noqa: F401
from tests.integration.helpers import wait_for_record

pytestmark = pytest.mark.integration

CORS = {
    "access-control-allow-origin": "*",
    "access-control-allow-methods": "OPTIONS, GET, DELETE, POST, PUT, HEAD, PATCH",
    "access-control-allow-headers": "Authorization, Origin, X-Requested-With, Content-Type, Accept, User-Agent",
}
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
# Returns the result its query parameter ``r`` spells (JSON), or fails with it as the error when ``fail`` is set.
RESULT_PY = """
import json

def main(args):
    result = json.loads(args["r"])
    return {"error": result} if args.get("fail") else result
"""
WEB = [{"key": "web-export", "value": True}, {"key": "raw-http", "value": False}, {"key": "final", "value": True}]


def _put_action(
    api: httpx.Client, name: str, exec_: dict[str, Any], annotations: list[dict[str, Any]], **body: Any
) -> None:
    response = api.put(f"/namespaces/_/actions/{name}", json={"exec": exec_, "annotations": annotations, **body})
    assert response.status_code == 200, response.text


def _echo(api: httpx.Client, name: str, *extra: dict[str, Any], **body: Any) -> str:
    _put_action(api, name, {"kind": "wasm:wasi", "code": wasm_code("echo")}, [*WEB, *extra], **body)
    return name


@pytest.fixture(scope="module")
def prefix() -> str:
    return f"web-{os.urandom(3).hex()}"


@pytest.fixture(scope="module")
def server(standalone: Server) -> Server:
    return standalone


@pytest.fixture(scope="module")
def web(server: Server) -> Iterator[httpx.Client]:
    """A client without credentials, as a browser or ``curl`` calls a web action."""
    with httpx.Client(base_url=f"{server.apihost}/api/v1/web/guest", timeout=70.0) as client:
        yield client


@pytest.fixture(scope="module")
def actions(server: Server, prefix: str) -> dict[str, str]:
    """The module's actions, created once: echo (final, with parameters), raw, custom options, secured ones."""
    params = [{"key": "y", "value": "Y"}, {"key": "empty", "value": None}]
    with server.client() as api:
        return {
            "echo": _echo(api, f"{prefix}-echo", parameters=params),
            "raw": _echo(api, f"{prefix}-raw", {"key": "raw-http", "value": True}),
            "options": _echo(api, f"{prefix}-options", {"key": "web-custom-options", "value": True}),
            "secure": _echo(api, f"{prefix}-secure", {"key": "require-whisk-auth", "value": True}),
            "secret": _echo(api, f"{prefix}-secret", {"key": "require-whisk-auth", "value": "s3cr3t"}),
            "number": _echo(api, f"{prefix}-number", {"key": "require-whisk-auth", "value": 4242}),
            "hidden": _echo(api, f"{prefix}-hidden", {"key": "web-export", "value": False}),
        }


def _context(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return dict(response.json())


def _error(response: httpx.Response, status: int, message: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body == {"error": message, "code": body["code"]} and len(body["code"]) == 32
    assert response.text.count("\n") == 3  # pretty-printed, as OpenWhisk's {error, code}


def test_json_extension_shows_the_context_the_action_receives(web: httpx.Client, actions: dict[str, str]) -> None:
    response = web.get(f"/default/{actions['echo']}.json", params={"name": "Jane"}, headers={"X-Custom": "A"})

    context = _context(response)
    assert context["__ow_method"] == "get"
    assert context["__ow_path"] == ""
    assert context["__ow_headers"]["x-custom"] == "A"
    assert "host" in context["__ow_headers"] and "content-length" not in context["__ow_headers"]
    assert context["name"] == "Jane" and context["y"] == "Y" and context["empty"] is None
    assert "__ow_user" not in context and "__ow_query" not in context and "__ow_body" not in context
    assert response.headers["content-type"] == "application/json"
    assert response.text.startswith('{\n  "')  # pretty-printed, as OpenWhisk answers .json
    assert len(response.headers["x-openwhisk-activation-id"]) == 32
    assert {k: response.headers[k] for k in CORS} == CORS


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_each_method_merges_query_and_json_body_with_body_winning(
    web: httpx.Client, actions: dict[str, str], method: str
) -> None:
    response = web.request(
        method, f"/default/{actions['echo']}.json", params={"a": "q", "b": "q"}, json={"b": "body", "n": [1, 2]}
    )

    context = _context(response)
    assert context["__ow_method"] == method.lower()
    assert (context["a"], context["b"], context["n"]) == ("q", "body", [1, 2])
    assert context["__ow_headers"]["content-type"] == "application/json"


def test_form_body_and_text_body_and_binary_body(web: httpx.Client, actions: dict[str, str]) -> None:
    url = f"/default/{actions['echo']}.json"

    form = _context(web.post(url, data={"name": "Jane", "x": "1"}))
    text = _context(web.post(url, content=b"Jane", headers={"Content-Type": "text/plain"}))
    binary = _context(web.post(url, content=PNG, headers={"Content-Type": "image/png"}))
    array = _context(web.post(url, json=[1, "two"]))

    assert (form["name"], form["x"]) == ("Jane", "1")
    assert text["__ow_body"] == "Jane"
    assert binary["__ow_body"] == base64.b64encode(PNG).decode()
    assert array["__ow_body"] == [1, "two"]


def test_raw_http_gets_the_query_and_body_unparsed(web: httpx.Client, actions: dict[str, str]) -> None:
    url = f"/default/{actions['raw']}.json"

    posted = _context(web.post(f"{url}?name=Jane&x=%20y", json={"name": "Jane"}))
    empty = _context(web.post(url))

    assert posted["__ow_query"] == "name=Jane&x=%20y"
    assert json.loads(base64.b64decode(posted["__ow_body"])) == {"name": "Jane"}  # JSON is base64, as OpenWhisk
    assert "name" not in posted
    assert (empty["__ow_query"], empty["__ow_body"]) == ("", "")


def test_final_and_reserved_parameters_cannot_be_overridden(web: httpx.Client, actions: dict[str, str]) -> None:
    url = f"/default/{actions['echo']}.json"
    message = "Request defines parameters that are not allowed (e.g., reserved properties)."

    _error(web.get(url, params={"y": "mine"}), 400, message)
    _error(web.post(url, json={"y": "mine"}), 400, message)
    _error(web.get(url, params={"__ow_method": "put"}), 400, message)
    _error(web.post(url, json={"__ow_headers": {}}), 400, message)
    # A parameter without a value is not protected.
    assert _context(web.get(url, params={"empty": "filled"}))["empty"] == "filled"


def test_projection_and_the_other_extensions(web: httpx.Client, actions: dict[str, str]) -> None:
    name = actions["echo"]

    projected = web.get(f"/default/{name}.json/__ow_headers")
    text = web.get(f"/default/{name}.text/__ow_headers/x-text", headers={"X-Text": "hello"})
    html = web.get(f"/default/{name}.html/page", params={"page": "<p>hi</p>"})
    default_html = web.get(f"/default/{name}.html", params={"html": "<b>x</b>"})
    svg = web.get(f"/default/{name}.svg", params={"svg": "<svg/>"})
    number = web.post(f"/default/{name}.text/n", json={"n": 3})

    assert projected.status_code == 200 and "host" in projected.json()
    assert (text.status_code, text.text, text.headers["content-type"]) == (200, "hello", "text/plain; charset=UTF-8")
    assert (html.text, html.headers["content-type"]) == ("<p>hi</p>", "text/html; charset=UTF-8")
    assert default_html.text == "<b>x</b>"
    assert (svg.text, svg.headers["content-type"]) == ("<svg/>", "image/svg+xml")
    assert number.text == "3"
    _error(web.get(f"/default/{name}.text/nothing/here"), 404, "Response does not include requested property.")
    _error(web.get(f"/default/{name}.json/y"), 400, "Response is not valid 'application/json'.")
    _error(web.get(f"/default/{name}.html"), 404, "Response does not include requested property.")


def test_options_answers_cors_without_running_the_action(web: httpx.Client, actions: dict[str, str]) -> None:
    plain = web.options(f"/default/{actions['echo']}.json")
    asked = web.options(f"/default/{actions['echo']}.json", headers={"Access-Control-Request-Headers": "x-mine"})

    assert plain.status_code == 200 and plain.content == b""
    assert "x-openwhisk-activation-id" not in plain.headers
    assert {k: plain.headers[k] for k in CORS} == CORS
    assert asked.headers["access-control-allow-headers"] == "x-mine"


def test_web_custom_options_runs_the_action_and_sends_only_its_headers(
    web: httpx.Client, actions: dict[str, str]
) -> None:
    response = web.options(f"/default/{actions['options']}.http")
    got = web.get(f"/default/{actions['options']}.http")

    # echo's result has no body, headers nor statusCode: an empty .http answer, 204.
    assert response.status_code == 204 and "x-openwhisk-activation-id" in response.headers
    assert not any(name.startswith("access-control-") for name in response.headers)
    assert got.status_code == 204 and not any(name.startswith("access-control-") for name in got.headers)


def test_head_runs_the_action_and_sends_no_body(web: httpx.Client, actions: dict[str, str]) -> None:
    response = web.head(f"/default/{actions['echo']}.json")

    assert response.status_code == 200 and response.content == b""
    assert "x-openwhisk-activation-id" in response.headers


def test_require_whisk_auth_true_needs_the_owners_credentials(
    server: Server, web: httpx.Client, actions: dict[str, str]
) -> None:
    url = f"/default/{actions['secure']}.json"
    uuid, key = server.auth.split(":")

    anonymous = web.get(url)
    wrong = web.get(url, auth=(uuid, "x" * 64))
    owner = web.get(url, auth=(uuid, key))

    _error(anonymous, 401, "Authentication is possible but has failed or not yet been provided.")
    _error(wrong, 401, "Authentication is possible but has failed or not yet been provided.")
    assert _context(owner)["__ow_user"] == "guest"


def test_require_whisk_auth_string_or_number_needs_the_header(web: httpx.Client, actions: dict[str, str]) -> None:
    secret = f"/default/{actions['secret']}.json"
    number = f"/default/{actions['number']}.json"
    message = "Authentication is possible but has failed or not yet been provided."

    _error(web.get(secret), 401, message)
    _error(web.get(secret, headers={"X-Require-Whisk-Auth": "wrong"}), 401, message)
    assert web.get(secret, headers={"X-Require-Whisk-Auth": "s3cr3t"}).status_code == 200
    assert web.get(number, headers={"X-Require-Whisk-Auth": "4242"}).status_code == 200
    _error(web.get(number), 401, message)


def test_missing_unexported_and_malformed_names_are_404(web: httpx.Client, actions: dict[str, str]) -> None:
    not_found = "The requested resource does not exist."

    _error(web.get(f"/default/{actions['hidden']}.json"), 404, not_found)
    _error(web.get("/default/no-such-action.json"), 404, not_found)
    _error(web.get("/no-such-package/x.json"), 404, not_found)
    _error(web.get(f"/default/{actions['echo']}.xyz"), 404, not_found)  # an unknown extension is part of the name
    _error(web.get(f"{str(web.base_url)[:-5]}nobody-{os.urandom(3).hex()}/default/x.json"), 404, not_found)
    assert web.get(f"/default/{actions['echo']}.json").status_code == 200


def test_a_non_web_action_is_404(server: Server, web: httpx.Client, prefix: str) -> None:
    with server.client() as api:
        _put_action(api, f"{prefix}-plain", {"kind": "wasm:wasi", "code": wasm_code("echo")}, [])

    _error(web.get(f"/default/{prefix}-plain.json"), 404, "The requested resource does not exist.")


def test_body_over_the_payload_limit_is_413(web: httpx.Client, actions: dict[str, str]) -> None:
    response = web.post(f"/default/{actions['echo']}.json", content=b"x" * (1_048_576 + 1))

    assert response.status_code == 413
    assert response.json()["error"] == "Request larger than allowed: 1048577 > 1048576 bytes."


# -- .http results from a Python action on Docker ------------------------------------------------------------------


@pytest.fixture(scope="module")
def result_py(server: Server, prefix: str, docker_daemon: object) -> str:  # noqa: F811
    name = f"{prefix}-result"
    with server.client() as api:
        _put_action(api, name, {"kind": "python:3.11", "code": RESULT_PY}, [*WEB[:2]])
    return name


def _http(web: httpx.Client, action: str, result: Any, **query: str) -> httpx.Response:
    return web.get(f"/default/{action}.http", params={"r": json.dumps(result), **query})


@pytest.mark.docker
def test_http_result_sets_status_headers_and_body(web: httpx.Client, result_py: str) -> None:
    redirect = _http(web, result_py, {"statusCode": 302, "headers": {"location": "http://openwhisk.org"}})
    cookie = _http(web, result_py, {"headers": {"Set-Cookie": ["a=b", "c=d"], "X-N": 1}, "body": "<h1>hi</h1>"})
    as_json = _http(web, result_py, {"statusCode": "201", "body": {"field": "value"}})
    empty = _http(web, result_py, {})

    assert redirect.status_code == 302 and redirect.headers["location"] == "http://openwhisk.org"
    assert cookie.status_code == 200 and cookie.text == "<h1>hi</h1>"
    assert cookie.headers.get_list("set-cookie") == ["a=b", "c=d"] and cookie.headers["x-n"] == "1"
    assert cookie.headers["content-type"] == "text/html; charset=UTF-8"
    assert (as_json.status_code, as_json.json()) == (201, {"field": "value"})
    assert as_json.headers["content-type"] == "application/json"
    assert empty.status_code == 204 and empty.content == b""


@pytest.mark.docker
def test_http_result_with_a_base64_binary_body(web: httpx.Client, result_py: str) -> None:
    body = base64.b64encode(PNG).decode()

    png = _http(web, result_py, {"headers": {"Content-Type": "image/png"}, "body": body})
    json_b64 = _http(
        web, result_py, {"headers": {"Content-Type": "application/json"}, "body": base64.b64encode(b'{"a":1}').decode()}
    )

    assert (png.status_code, png.content, png.headers["content-type"]) == (200, PNG, "image/png")
    assert json_b64.json() == {"a": 1}


@pytest.mark.docker
def test_http_result_errors(web: httpx.Client, result_py: str) -> None:
    invalid = "Response is not valid 'message/http'."

    _error(_http(web, result_py, {"statusCode": 299}), 400, invalid)
    _error(_http(web, result_py, {"statusCode": "xyz"}), 400, invalid)
    _error(_http(web, result_py, {"statusCode": 200.5}), 400, invalid)
    _error(_http(web, result_py, {"headers": "nope"}), 400, invalid)
    _error(_http(web, result_py, {"headers": {"content-type": "xyzbar"}, "body": "x"}), 400,
           "Response did not specify a known content-type.")  # fmt: skip
    _error(_http(web, result_py, {"headers": {"content-type": "text/html"}, "body": {"a": 1}}), 400,
           "Response type in header did not match generated content type.")  # fmt: skip
    _error(_http(web, result_py, {"headers": {"content-type": "image/png"}, "body": "not base64!"}), 400,
           "Response type in header did not match generated content type.")  # fmt: skip


@pytest.mark.docker
def test_a_non_dict_result(web: httpx.Client, result_py: str) -> None:
    # An array is a result (as OpenWhisk's newer runtimes allow), but no HTTP response.
    _error(_http(web, result_py, [1, 2]), 400, "Response is not valid 'message/http'.")
    assert web.get(f"/default/{result_py}.json", params={"r": "[1, 2]"}).json() == [1, 2]
    # ".text/" projects nothing (the whole result); ".text" alone would project "text".
    assert web.get(f"/default/{result_py}.text/", params={"r": '[1, {"a": 2}]'}).text == '[1, {\n  "a": 2\n}]'


@pytest.mark.docker
def test_an_application_error_is_rendered_as_the_extension_renders_a_result(web: httpx.Client, result_py: str) -> None:
    http = _http(web, result_py, {"statusCode": 418, "body": "no hello for you"}, fail="1")
    projected = web.get(f"/default/{result_py}.json/ignored", params={"r": '{"why": "bad"}', "fail": "1"})
    not_json = web.get(f"/default/{result_py}.json", params={"r": '"bad"', "fail": "1"})

    assert (http.status_code, http.text) == (418, "no hello for you")
    assert (projected.status_code, projected.json()) == (200, {"why": "bad"})
    _error(not_json, 400, "Response is not valid 'application/json'.")


# -- packages, bindings, sequences ---------------------------------------------------------------------------------


def test_a_web_action_in_a_package_and_through_a_binding(server: Server, web: httpx.Client, prefix: str) -> None:
    package, binding = f"{prefix}-pkg", f"{prefix}-bound"
    with server.client() as api:
        created = api.put(f"/namespaces/_/packages/{package}", json={"parameters": [{"key": "p", "value": "pkg"}]})
        assert created.status_code == 200, created.text
        _echo(api, f"{package}/echo")
        bound = api.put(
            f"/namespaces/_/packages/{binding}",
            json={"binding": {"namespace": "guest", "name": package}, "parameters": [{"key": "b", "value": "bnd"}]},
        )
        assert bound.status_code == 200, bound.text

    direct = _context(web.get(f"/{package}/echo.json"))
    through = _context(web.get(f"/{binding}/echo.json"))

    assert direct["p"] == "pkg" and "b" not in direct
    assert (through["p"], through["b"]) == ("pkg", "bnd")
    _error(web.get(f"/default/echo-{prefix}.json"), 404, "The requested resource does not exist.")
    # The package's parameters are final too (the action is): a request may not override them.
    _error(web.get(f"/{binding}/echo.json", params={"b": "mine"}), 400,
           "Request defines parameters that are not allowed (e.g., reserved properties).")  # fmt: skip


def test_a_sequence_as_a_web_action(server: Server, web: httpx.Client, prefix: str) -> None:
    with server.client() as api:
        first = _echo(api, f"{prefix}-seq-1")
        second = _echo(api, f"{prefix}-seq-2")
        _put_action(
            api,
            f"{prefix}-seq",
            {"kind": "sequence", "components": [f"/guest/{first}", f"/guest/{second}"]},
            [{"key": "web-export", "value": True}],
        )

    response = web.get(f"/default/{prefix}-seq.json", params={"name": "Jane"})

    context = _context(response)  # each echo passes its parameters on: the first one's context comes out
    assert (context["name"], context["__ow_method"]) == ("Jane", "get")
    with server.client() as api:
        record = api.get(f"/namespaces/_/activations/{response.headers['x-openwhisk-activation-id']}").json()
    assert len(record["logs"]) == 2  # the sequence's record: its two components' activation ids


# -- a blocking wait that runs out, and distributed mode -----------------------------------------------------------


@pytest.fixture(scope="module")
def impatient(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server whose blocking invokes wait at most 300 ms."""
    server = start_standalone(tmp_path_factory.mktemp("impatient"), env={"PYWHISK_MAX_BLOCKING_WAIT_MS": "300"})
    yield server
    assert stop_standalone(server) == 0, server.log_path.read_text()


def test_a_web_action_still_running_when_the_wait_runs_out_is_202(impatient: Server) -> None:
    with impatient.client() as api:
        _put_action(api, "slow", {"kind": "wasm:wasi", "code": wasm_code("sleep")}, WEB[:1])
        with httpx.Client(base_url=f"{impatient.apihost}/api/v1/web", timeout=30) as web:
            response = web.get("/guest/default/slow.json", params={"ms": 2000})

        _error(response, 202, "Response not yet ready.")
        record = wait_for_record(api, response.headers["x-openwhisk-activation-id"])
    assert record["response"]["status"] == "success"


@pytest.mark.kafka
def test_a_web_action_in_distributed_mode(distributed: Server, prefix: str) -> None:
    with distributed.client() as api:
        name = _echo(api, f"{prefix}-dist", parameters=[{"key": "y", "value": "Y"}])
    with httpx.Client(base_url=f"{distributed.apihost}/api/v1/web/guest", timeout=70) as web:
        posted = web.post(f"/default/{name}.json/", json={"a": 1})
        text = web.get(f"/default/{name}.text/y")
        final = web.get(f"/default/{name}.json", params={"y": "mine"})

    context = _context(posted)
    assert (context["a"], context["y"], context["__ow_method"], context["__ow_path"]) == (1, "Y", "post", "/")
    assert text.text == "Y"
    _error(final, 400, "Request defines parameters that are not allowed (e.g., reserved properties).")
