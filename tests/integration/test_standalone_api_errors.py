"""Bad requests against a real server, standalone and distributed: OpenWhisk's status and message,
nothing changed."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import GUEST_AUTH, Server, wasm_code
from tests.integration.helpers import create_wasm_action

pytestmark = pytest.mark.integration


def _assert_error(response: httpx.Response, status: int, message: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == message
    assert body["code"] == response.headers["x-request-id"]


def _action_absent(api: httpx.Client, name: str) -> None:
    assert api.get(f"/namespaces/_/actions/{name}").status_code == 404


def test_malformed_json_is_400(api: httpx.Client, unique_name: str) -> None:
    response = api.put(
        f"/namespaces/_/actions/{unique_name}",
        content=b'{"exec": {"kind": ',
        headers={"content-type": "application/json"},
    )

    assert response.status_code == 400
    assert response.json()["error"].startswith("The request content was malformed")
    _action_absent(api, unique_name)


def test_bad_name_is_400(api: httpx.Client) -> None:
    response = api.put(
        "/namespaces/_/actions/-bad%20name-", json={"exec": {"kind": "wasm:wasi", "code": wasm_code("hello")}}
    )

    assert response.status_code == 400
    assert "is not valid" in response.json()["error"]


def test_unknown_kind_is_400_and_lists_valid_kinds(api: httpx.Client, unique_name: str) -> None:
    response = api.put(f"/namespaces/_/actions/{unique_name}", json={"exec": {"kind": "cobol:85", "code": "x"}})

    _assert_error(
        response,
        400,
        "The specified runtime 'cobol:85' is not supported by this platform. Valid values are: "
        "blackbox, nodejs:18, nodejs:default, python:3, python:3.11, python:default, wasm:default, wasm:wasi",
    )
    _action_absent(api, unique_name)


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ({"memory": 1024}, "memory size 1024 MB exceeds allowed threshold of 512 MB"),
        ({"memory": 64}, "memory size 64 MB below allowed threshold of 128 MB"),
        ({"timeout": 400000}, "duration 400000 milliseconds exceeds allowed threshold of 300000 milliseconds"),
        ({"logs": 11}, "log size 11 MB exceeds allowed threshold of 10 MB"),
    ],
)
def test_limits_out_of_range_are_400(api: httpx.Client, unique_name: str, limits: dict[str, int], message: str) -> None:
    body = {"exec": {"kind": "wasm:wasi", "code": wasm_code("hello")}, "limits": limits}

    _assert_error(api.put(f"/namespaces/_/actions/{unique_name}", json=body), 400, message)
    _action_absent(api, unique_name)


def test_payload_over_one_megabyte_is_413(api: httpx.Client, unique_name: str) -> None:
    create_wasm_action(api, unique_name, "echo")
    payload = b'{"blob": "' + b"x" * (1024 * 1024) + b'"}'

    response = api.post(
        f"/namespaces/_/actions/{unique_name}", content=payload, headers={"content-type": "application/json"}
    )

    _assert_error(response, 413, f"Request larger than allowed: {len(payload)} > 1048576 bytes.")
    assert api.get("/namespaces/_/activations", params={"name": unique_name}).json() == []


def test_wrong_key_is_401(platform: Server) -> None:
    uuid, _ = GUEST_AUTH.split(":")
    response = httpx.get(f"{platform.apihost}/api/v1/namespaces/_/actions", auth=(uuid, "x" * 64))

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Basic realm="OpenWhisk secure realm"'
    assert response.json()["error"] == "The supplied authentication is invalid."


def test_missing_credentials_are_401(platform: Server) -> None:
    assert httpx.get(f"{platform.apihost}/api/v1/namespaces").status_code == 401


def test_other_namespace_is_403(api: httpx.Client) -> None:
    _assert_error(
        api.get("/namespaces/whisk.system/actions"),
        403,
        "The supplied authentication is not authorized to access this resource.",
    )


def test_unknown_action_is_404_and_create_twice_is_409(api: httpx.Client, unique_name: str) -> None:
    _assert_error(api.post(f"/namespaces/_/actions/{unique_name}"), 404, "The requested resource does not exist.")
    create_wasm_action(api, unique_name, "hello")
    again = api.put(
        f"/namespaces/_/actions/{unique_name}", json={"exec": {"kind": "wasm:wasi", "code": wasm_code("hello")}}
    )
    _assert_error(again, 409, "resource already exists")


def test_update_bumps_version_and_keeps_code(api: httpx.Client, unique_name: str) -> None:
    create_wasm_action(api, unique_name, "hello")

    updated = api.put(
        f"/namespaces/_/actions/{unique_name}", params={"overwrite": "true"}, json={"limits": {"timeout": 1000}}
    )

    assert updated.status_code == 200
    assert updated.json()["version"] == "0.0.2"
    assert updated.json()["limits"] == {"timeout": 1000, "memory": 256, "logs": 10, "concurrency": 1}
    assert updated.json()["exec"]["code"] == wasm_code("hello")


def test_cors_and_request_id_on_every_answer(platform: Server) -> None:
    response = httpx.options(f"{platform.apihost}/api/v1/namespaces/_/actions")

    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    assert "PUT" in response.headers["access-control-allow-methods"]
    assert len(response.headers["x-request-id"]) == 32


def _nested(depth: int) -> dict[str, object]:
    """A JSON object holding arrays and objects ``depth`` levels deep, the object itself included."""
    value: object = "deepest"
    for level in range(depth - 1):
        value = [value] if level % 2 else {"n": value}
    return {"p": value}


def test_invoke_parameters_nested_past_the_limit_are_400_before_the_action_is_read(
    api: httpx.Client, unique_name: str
) -> None:
    # 64 levels are allowed (the missing action is found missing after the body is accepted), 65 are not.
    _assert_error(
        api.post(f"/namespaces/_/actions/{unique_name}", json=_nested(64)),
        404,
        "The requested resource does not exist.",
    )
    for depth in (65, 1000, 5000):  # past orjson's own limit (1024) too; no client library nests 5000
        body = b'{"p":' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"
        response = api.post(
            f"/namespaces/_/actions/{unique_name}", content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code == 400, response.text
        assert response.json()["error"].startswith("The request content was malformed:\n")


def test_action_parameters_and_annotations_nested_past_the_limit_are_400(api: httpx.Client, unique_name: str) -> None:
    for field in ("parameters", "annotations"):
        body = {"exec": {"kind": "wasm:wasi", "code": wasm_code("hello")}, field: [{"key": "k", "value": _nested(70)}]}
        _assert_error(
            api.put(f"/namespaces/_/actions/{unique_name}", json=body),
            400,
            "The request content was malformed:\nJSON nested deeper than 64 levels",
        )
        _action_absent(api, unique_name)


def test_a_trailing_slash_lists_a_collection_or_is_404_and_never_redirects(api: httpx.Client) -> None:
    hostile = {"host": "attacker.example"}
    for path in ("/namespaces/", "/namespaces/_/actions/", "/namespaces/_/activations/", "/namespaces/_/rules/"):
        response = api.get(path, headers=hostile, follow_redirects=False)
        assert response.status_code == 200, (path, response.status_code)
        assert isinstance(response.json(), list) and "location" not in response.headers
    for path in ("/namespaces/_/actions/anything/", "/namespaces/_/limits/", "/namespaces/_/activations/x/"):
        response = api.get(path, headers=hostile, follow_redirects=False)
        _assert_error(response, 404, "The requested resource does not exist.")
        assert "location" not in response.headers
