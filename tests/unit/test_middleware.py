"""The controller's HTTP surface: headers, auth, errors in OpenWhisk's shape, and the actions API.

Over 400 lines because the whole HTTP surface (headers, auth, error shapes, actions API) shares one app fixture.

The app is assembled as in standalone mode (controller + in-process invoker + memory bus + SQLite)
with the ScriptedExecutor, and driven in-process through httpx's ASGI transport.
"""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from launcher.compose import build_controller, build_standalone
from pywhisk.bus.memory import MemoryBus
from pywhisk.identity import GUEST_KEY, GUEST_LIMITS, GUEST_UUID
from pywhisk.settings import Settings
from pywhisk.store.sqlite import SqliteStore
from tests.doubles import ScriptedExecutor

pytestmark = pytest.mark.unit

ACTIONS = "/api/v1/namespaces/_/actions"
ACTIVATIONS = "/api/v1/namespaces/_/activations"
CODE = base64.b64encode(b"echo").decode()
EXEC = {"kind": "wasm:wasi", "code": CODE}
CORS = {
    "access-control-allow-origin": "*",
    "access-control-allow-methods": "GET, DELETE, POST, PUT, HEAD",
    "access-control-allow-headers": "Authorization, Origin, X-Requested-With, Content-Type, Accept, User-Agent",
}
REALM = 'Basic realm="OpenWhisk secure realm"'
MB = 1024 * 1024


@asynccontextmanager
async def _platform(
    data_dir: Path, *, with_invoker: bool = True, store: SqliteStore | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(data_dir=data_dir)
    store = store or SqliteStore(settings.store_path)
    if with_invoker:
        app = build_standalone(settings, store=store, bus=MemoryBus(), executors={"wasm": ScriptedExecutor()})
    else:
        app = build_controller(settings, store=store, bus=MemoryBus())
    async with app.router.lifespan_context(app):
        if with_invoker:
            assert await app.state.balancer.wait_for_invoker(5)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://whisk.test", auth=(GUEST_UUID, GUEST_KEY)
        ) as client:
            yield client


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with _platform(tmp_path) as client:
        yield client


def assert_whisk_error(response: httpx.Response, status: int, message: str | None = None) -> None:
    """OpenWhisk's error shape: ``{"error", "code"}`` where code is the request's transaction id."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "code"}
    assert body["code"] == response.headers["x-request-id"]
    if message is not None:
        assert body["error"] == message


async def create(api: httpx.AsyncClient, name: str = "hello", **fields: object) -> httpx.Response:
    body = {"exec": EXEC, **fields}
    response = await api.put(f"{ACTIONS}/{name}?overwrite=false", json=body)
    assert response.status_code == 200, response.text
    return response


# headers ----------------------------------------------------------------------------------------


async def test_every_response_carries_a_fresh_request_id(api: httpx.AsyncClient) -> None:
    responses = [
        await api.get("/api/v1"),
        await api.get(ACTIONS),
        await api.get(f"{ACTIONS}/missing"),
        await api.get(ACTIONS, auth=None),
        await api.options(ACTIONS),
        await api.post(f"{ACTIONS}/x", content=b"x" * (MB + 1)),
    ]
    ids = [r.headers["x-request-id"] for r in responses]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize("path", ["/api/v1", ACTIONS, f"{ACTIONS}/missing", "/api/v1/nowhere"])
async def test_every_response_carries_cors_headers(api: httpx.AsyncClient, path: str) -> None:
    response = await api.get(path)
    for header, value in CORS.items():
        assert response.headers[header] == value


async def test_unauthenticated_response_carries_cors_headers(api: httpx.AsyncClient) -> None:
    response = await api.get(ACTIONS, auth=None)
    assert response.status_code == 401
    assert response.headers["access-control-allow-origin"] == "*"


async def test_options_is_200_without_authentication(api: httpx.AsyncClient) -> None:
    response = await api.options(f"{ACTIONS}/hello", auth=None)
    assert response.status_code == 200
    assert response.content == b""
    for header, value in CORS.items():
        assert response.headers[header] == value


async def test_error_code_equals_the_request_id(api: httpx.AsyncClient) -> None:
    response = await api.get(f"{ACTIONS}/missing")
    assert response.json()["code"] == response.headers["x-request-id"]


async def test_internal_error_is_500_with_request_id_and_cors(tmp_path: Path) -> None:
    class BrokenStore(SqliteStore):
        async def list_actions(self, namespace: str, limit: int, skip: int) -> list:  # type: ignore[type-arg]
            raise RuntimeError("disk on fire")

    async with _platform(tmp_path, with_invoker=False, store=BrokenStore(tmp_path / "s.sqlite3")) as api:
        response = await api.get(ACTIONS)
    assert response.status_code == 500
    assert response.json()["error"] == "An internal error occurred."
    assert response.headers.get("access-control-allow-origin") == "*"
    assert_whisk_error(response, 500)


# API info and namespaces ------------------------------------------------------------------------


async def test_api_info_needs_no_auth_and_has_openwhisk_fields(api: httpx.AsyncClient) -> None:
    response = await api.get("/api/v1", auth=None)
    assert response.status_code == 200
    body = response.json()
    assert body["description"] == "OpenWhisk API"
    assert body["api_version"] == "1.0.0"
    assert body["api_version_path"] == "v1"
    assert body["build"]


async def test_namespaces_lists_the_callers_namespace(api: httpx.AsyncClient) -> None:
    response = await api.get("/api/v1/namespaces")
    assert response.status_code == 200
    assert response.json() == ["guest"]


@pytest.mark.parametrize("namespace", ["_", "guest"])
async def test_namespace_limits_report_the_seeded_guests_own_throttles(api: httpx.AsyncClient, namespace: str) -> None:
    response = await api.get(f"/api/v1/namespaces/{namespace}/limits")
    assert response.status_code == 200
    body = response.json()
    assert body["invocationsPerMinute"] == GUEST_LIMITS.invocationsPerMinute
    assert body["concurrentInvocations"] == GUEST_LIMITS.concurrentInvocations
    assert body["firesPerMinute"] == GUEST_LIMITS.firesPerMinute
    assert body["maxActionMemory"] == 512 * MB
    assert body["maxActionTimeout"] == 300_000


# authentication and entitlement -----------------------------------------------------------------


@pytest.mark.parametrize("authorization", [None, ""], ids=["missing", "empty"])
async def test_missing_credentials_are_401_with_the_realm(api: httpx.AsyncClient, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    response = await api.get(ACTIONS, headers=headers, auth=None)
    assert_whisk_error(response, 401)
    assert response.headers["www-authenticate"] == REALM


@pytest.mark.parametrize(
    "authorization",
    [
        "Basic",
        "Basic !!!not-base64!!!",
        "Basic " + base64.b64encode(b"no-colon-here").decode(),
        "Basic " + base64.b64encode(f"{GUEST_UUID}:".encode()).decode(),
        "Basic " + base64.b64encode(f"{GUEST_UUID}:{'x' * 64}".encode()).decode(),
        "Basic " + base64.b64encode(f"00000000-0000-0000-0000-000000000000:{GUEST_KEY}".encode()).decode(),
        "Bearer " + base64.b64encode(f"{GUEST_UUID}:{GUEST_KEY}".encode()).decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(),
    ],
    ids=["no-credentials", "not-base64", "no-colon", "no-key", "wrong-key", "unknown-uuid", "not-basic", "not-utf8"],
)
async def test_bad_or_malformed_credentials_are_401_with_the_realm(api: httpx.AsyncClient, authorization: str) -> None:
    response = await api.get(ACTIONS, headers={"Authorization": authorization}, auth=None)
    assert_whisk_error(response, 401, "The supplied authentication is invalid.")
    assert response.headers["www-authenticate"] == REALM


async def test_scheme_is_case_insensitive(api: httpx.AsyncClient) -> None:
    token = base64.b64encode(f"{GUEST_UUID}:{GUEST_KEY}".encode()).decode()
    response = await api.get(ACTIONS, headers={"Authorization": f"basic {token}"}, auth=None)
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/namespaces/other/actions"),
        ("GET", "/api/v1/namespaces/other/actions/hello"),
        ("PUT", "/api/v1/namespaces/other/actions/hello"),
        ("DELETE", "/api/v1/namespaces/other/actions/hello"),
        ("POST", "/api/v1/namespaces/other/actions/hello"),
        ("GET", "/api/v1/namespaces/other/activations"),
        ("GET", f"/api/v1/namespaces/other/activations/{'0' * 32}"),
        ("GET", "/api/v1/namespaces/other/limits"),
    ],
)
async def test_another_namespace_is_403(api: httpx.AsyncClient, method: str, path: str) -> None:
    response = await api.request(method, path, json={"exec": EXEC} if method == "PUT" else None)
    assert_whisk_error(response, 403, "The supplied authentication is not authorized to access this resource.")


async def test_own_namespace_by_name_is_the_same_as_underscore(api: httpx.AsyncClient) -> None:
    await create(api)
    response = await api.get("/api/v1/namespaces/guest/actions/hello")
    assert response.status_code == 200
    assert response.json()["namespace"] == "guest"


# not found, wrong method ------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "DELETE", "POST"])
async def test_unknown_action_is_404(api: httpx.AsyncClient, method: str) -> None:
    response = await api.request(method, f"{ACTIONS}/missing")
    assert_whisk_error(response, 404, "The requested resource does not exist.")


@pytest.mark.parametrize("path", ["/api/v1/nowhere", "/api/v2/namespaces", "/", "/api/v1/namespaces/_/widgets"])
async def test_unknown_route_is_404_in_openwhisk_shape(api: httpx.AsyncClient, path: str) -> None:
    response = await api.get(path)
    assert_whisk_error(response, 404, "The requested resource does not exist.")


@pytest.mark.parametrize(
    ("method", "path"),
    [("PATCH", f"{ACTIONS}/hello"), ("DELETE", ACTIVATIONS), ("POST", ACTIVATIONS), ("PUT", "/api/v1/namespaces")],
)
async def test_wrong_method_is_405(api: httpx.AsyncClient, method: str, path: str) -> None:
    response = await api.request(method, path)
    assert_whisk_error(response, 405)


async def test_invoke_with_no_invoker_is_503(tmp_path: Path) -> None:
    async with _platform(tmp_path, with_invoker=False) as api:
        await create(api)
        response = await api.post(f"{ACTIONS}/hello?blocking=true", json={})
    assert_whisk_error(response, 503, "No invokers available")


# size limits ------------------------------------------------------------------------------------


async def test_invoke_over_1_mb_with_content_length_is_413(api: httpx.AsyncClient) -> None:
    await create(api)
    body = b'{"x": "' + b"y" * MB + b'"}'
    response = await api.post(f"{ACTIONS}/hello?blocking=true", content=body)
    assert_whisk_error(response, 413, f"Request larger than allowed: {len(body)} > 1048576 bytes.")


async def test_invoke_over_1_mb_streamed_without_content_length_is_413(api: httpx.AsyncClient) -> None:
    await create(api)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(12):
            yield b"x" * 100_000

    response = await api.post(f"{ACTIONS}/hello?blocking=true", content=chunks())
    assert "content-length" not in response.request.headers
    assert_whisk_error(response, 413)
    match = re.fullmatch(r"Request larger than allowed: (\d+) > 1048576 bytes\.", response.json()["error"])
    assert match is not None
    assert int(match.group(1)) > MB


async def test_invoke_body_of_exactly_1_mb_is_not_rejected_for_size(api: httpx.AsyncClient) -> None:
    await create(api)
    body = b'{"x": "' + b"y" * (MB - 10) + b'"}'
    assert len(body) == MB - 1
    response = await api.post(f"{ACTIONS}/hello", content=body)
    assert response.status_code == 202


async def test_action_put_with_2_mb_of_code_is_accepted(api: httpx.AsyncClient) -> None:
    code = base64.b64encode(b"\x00asm" + b"\x01" * (3 * MB // 2)).decode()
    assert len(code) > 2 * MB
    response = await api.put(f"{ACTIONS}/big", json={"exec": {"kind": "wasm:wasi", "code": code}})
    assert response.status_code == 200, response.text[:200]
    fetched = await api.get(f"{ACTIONS}/big")
    assert fetched.json()["exec"]["code"] == code
    assert fetched.json()["exec"]["binary"] is True


# bad input on actions ---------------------------------------------------------------------------


@pytest.mark.parametrize("body", [b"{bad", b'{"exec": ', b"\xff\xfe", b"[1, 2"])
async def test_malformed_json_is_400(api: httpx.AsyncClient, body: bytes) -> None:
    response = await api.put(f"{ACTIONS}/hello", content=body)
    assert_whisk_error(response, 400)
    assert response.json()["error"].startswith("The request content was malformed:")


async def test_malformed_json_on_invoke_is_400(api: httpx.AsyncClient) -> None:
    await create(api)
    response = await api.post(f"{ACTIONS}/hello?blocking=true", content=b"{bad")
    assert_whisk_error(response, 400)
    assert response.json()["error"].startswith("The request content was malformed:")


async def test_action_body_that_is_not_an_object_is_400(api: httpx.AsyncClient) -> None:
    response = await api.put(f"{ACTIONS}/hello", json=[{"exec": EXEC}])
    assert_whisk_error(response, 400)


@pytest.mark.parametrize("name", ["%20leading-space", "-leading-dash", "trailing-space%20", "a" * 257, "bad%3Aname"])
async def test_bad_action_name_is_400(api: httpx.AsyncClient, name: str) -> None:
    response = await api.put(f"{ACTIONS}/{name}", json={"exec": EXEC})
    assert_whisk_error(response, 400)
    assert "is not valid" in response.json()["error"]


async def test_name_of_256_characters_is_accepted(api: httpx.AsyncClient) -> None:
    response = await api.put(f"{ACTIONS}/{'a' * 256}", json={"exec": EXEC})
    assert response.status_code == 200
    assert response.json()["name"] == "a" * 256


async def test_unknown_kind_is_400_listing_the_valid_kinds(api: httpx.AsyncClient) -> None:
    response = await api.put(f"{ACTIONS}/hello", json={"exec": {"kind": "cobol:85", "code": CODE}})
    assert_whisk_error(
        response,
        400,
        "The specified runtime 'cobol:85' is not supported by this platform. Valid values are: "
        "blackbox, nodejs:18, nodejs:default, python:3, python:3.11, python:default, wasm:default, wasm:wasi",
    )


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ({"memory": 1024}, "memory size 1024 MB exceeds allowed threshold of 512 MB"),
        ({"memory": 64}, "memory size 64 MB below allowed threshold of 128 MB"),
        ({"timeout": 400000}, "duration 400000 milliseconds exceeds allowed threshold of 300000 milliseconds"),
        ({"timeout": 50}, "duration 50 milliseconds below allowed threshold of 100 milliseconds"),
        ({"logs": 11}, "log size 11 MB exceeds allowed threshold of 10 MB"),
        ({"concurrency": 0}, "concurrency 0 below allowed threshold of 1"),
    ],
)
async def test_limits_out_of_range_are_400(api: httpx.AsyncClient, limits: dict[str, int], message: str) -> None:
    response = await api.put(f"{ACTIONS}/hello", json={"exec": EXEC, "limits": limits})
    assert_whisk_error(response, 400, message)
    assert (await api.get(f"{ACTIONS}/hello")).status_code == 404


@pytest.mark.parametrize("limits", [{"memory": "lots"}, {"memory": 256.5}, {"timeout": None, "memory": [1]}])
async def test_limits_that_are_not_whole_numbers_are_400(api: httpx.AsyncClient, limits: dict[str, object]) -> None:
    response = await api.put(f"{ACTIONS}/hello", json={"exec": EXEC, "limits": limits})
    assert_whisk_error(response, 400)


async def test_limits_out_of_range_on_update_are_400_and_keep_the_action(api: httpx.AsyncClient) -> None:
    await create(api)
    response = await api.put(f"{ACTIONS}/hello?overwrite=true", json={"limits": {"memory": 1024}})
    assert_whisk_error(response, 400, "memory size 1024 MB exceeds allowed threshold of 512 MB")
    assert (await api.get(f"{ACTIONS}/hello")).json()["limits"]["memory"] == 256


@pytest.mark.parametrize("code", ["def main(args): return args", "ZWNob", "not base64!"])
async def test_code_that_is_not_base64_is_400_for_a_wasm_kind(api: httpx.AsyncClient, code: str) -> None:
    response = await api.put(f"{ACTIONS}/hello", json={"exec": {"kind": "wasm:wasi", "code": code}})
    assert_whisk_error(response, 400)
    assert "base64" in response.json()["error"]


async def test_create_without_exec_is_400_exec_undefined(api: httpx.AsyncClient) -> None:
    response = await api.put(f"{ACTIONS}/hello", json={"parameters": []})
    assert_whisk_error(response, 400, "exec undefined")


async def test_create_with_an_empty_body_is_400_exec_undefined(api: httpx.AsyncClient) -> None:
    response = await api.put(f"{ACTIONS}/hello")
    assert_whisk_error(response, 400, "exec undefined")


async def test_bad_parameter_shape_is_400(api: httpx.AsyncClient) -> None:
    response = await api.put(f"{ACTIONS}/hello", json={"exec": EXEC, "parameters": {"a": 1}})
    assert_whisk_error(response, 400)


# bad query values -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("limit=300", "The value '300' is not in the range of 0 to 200 for actions."),
        ("limit=201", "The value '201' is not in the range of 0 to 200 for actions."),
        ("limit=-1", "The value '-1' is not in the range of 0 to 200 for actions."),
        ("limit=many", None),
        ("skip=-1", None),
        ("skip=x", None),
    ],
)
async def test_bad_limit_or_skip_on_action_list_is_400(api: httpx.AsyncClient, query: str, message: str | None) -> None:
    response = await api.get(f"{ACTIONS}?{query}")
    assert_whisk_error(response, 400, message)


async def test_bad_limit_on_activation_list_names_activations(api: httpx.AsyncClient) -> None:
    response = await api.get(f"{ACTIVATIONS}?limit=300")
    assert_whisk_error(response, 400, "The value '300' is not in the range of 0 to 200 for activations.")


@pytest.mark.parametrize("suffix", ["", "/result", "/logs"])
async def test_activation_id_of_wrong_length_is_400(api: httpx.AsyncClient, suffix: str) -> None:
    response = await api.get(f"{ACTIVATIONS}/abcde{suffix}")
    assert_whisk_error(response, 400, "Activation id length is 5 but must be 32.")


async def test_unknown_activation_is_404(api: httpx.AsyncClient) -> None:
    response = await api.get(f"{ACTIVATIONS}/{'0' * 32}")
    assert_whisk_error(response, 404, "The requested resource does not exist.")


async def test_docs_with_count_is_400(api: httpx.AsyncClient) -> None:
    response = await api.get(f"{ACTIVATIONS}?docs=true&count=true")
    assert_whisk_error(response, 400, "The parameter 'docs' is not permitted with 'count'.")


@pytest.mark.parametrize("query", ["since=yesterday", "upto=1.5", "docs=maybe", "count=sure"])
async def test_bad_activation_list_filters_are_400(api: httpx.AsyncClient, query: str) -> None:
    response = await api.get(f"{ACTIVATIONS}?{query}")
    assert_whisk_error(response, 400)


# create, update, get, list, delete --------------------------------------------------------------


async def test_create_returns_the_stored_action_with_server_annotations(api: httpx.AsyncClient) -> None:
    response = await create(api, parameters=[{"key": "name", "value": "World"}])
    body = response.json()
    assert body["namespace"] == "guest"
    assert body["name"] == "hello"
    assert body["version"] == "0.0.1"
    assert body["publish"] is False
    assert body["exec"] == {"kind": "wasm:wasi", "code": CODE, "binary": True}
    assert body["parameters"] == [{"key": "name", "value": "World"}]
    assert body["annotations"] == [{"key": "exec", "value": "wasm:wasi"}, {"key": "provide-api-key", "value": False}]
    assert body["limits"] == {"timeout": 60000, "memory": 256, "logs": 10, "concurrency": 1}
    assert isinstance(body["updated"], int)
    assert "rev" not in body


async def test_create_resolves_a_default_kind(api: httpx.AsyncClient) -> None:
    response = await api.put(f"{ACTIONS}/hello", json={"exec": {"kind": "wasm:default", "code": CODE}})
    assert response.json()["exec"]["kind"] == "wasm:wasi"


async def test_create_keeps_a_provide_api_key_the_client_set(api: httpx.AsyncClient) -> None:
    response = await create(api, annotations=[{"key": "provide-api-key", "value": True}])
    assert {"key": "provide-api-key", "value": True} in response.json()["annotations"]


async def test_create_twice_is_409(api: httpx.AsyncClient) -> None:
    await create(api)
    response = await api.put(f"{ACTIONS}/hello?overwrite=false", json={"exec": EXEC})
    assert_whisk_error(response, 409, "resource already exists")


async def test_put_without_overwrite_flag_on_an_existing_action_is_409(api: httpx.AsyncClient) -> None:
    await create(api)
    response = await api.put(f"{ACTIONS}/hello", json={"exec": EXEC})
    assert_whisk_error(response, 409)


async def test_update_of_a_missing_action_creates_it(api: httpx.AsyncClient) -> None:
    response = await api.put(f"{ACTIONS}/fresh?overwrite=true", json={"exec": EXEC})
    assert response.status_code == 200
    assert response.json()["version"] == "0.0.1"


async def test_update_bumps_the_patch_version(api: httpx.AsyncClient) -> None:
    await create(api)
    second = await api.put(f"{ACTIONS}/hello?overwrite=true", json={})
    third = await api.put(f"{ACTIONS}/hello?overwrite=true", json={"publish": True})
    assert second.json()["version"] == "0.0.2"
    assert third.json()["version"] == "0.0.3"
    assert third.json()["publish"] is True


async def test_update_with_an_explicit_version_keeps_it(api: httpx.AsyncClient) -> None:
    await create(api)
    response = await api.put(f"{ACTIONS}/hello?overwrite=true", json={"version": "2.0.0"})
    assert response.json()["version"] == "2.0.0"


async def test_update_merges_limits_field_by_field(api: httpx.AsyncClient) -> None:
    await create(api, limits={"timeout": 1000, "memory": 128})
    response = await api.put(f"{ACTIONS}/hello?overwrite=true", json={"limits": {"memory": 512}})
    assert response.json()["limits"] == {"timeout": 1000, "memory": 512, "logs": 10, "concurrency": 1}


async def test_update_keeps_params_and_code_unless_given(api: httpx.AsyncClient) -> None:
    await create(api, parameters=[{"key": "a", "value": 1}, {"key": "b", "value": 2}])

    kept = await api.put(f"{ACTIONS}/hello?overwrite=true", json={"limits": {"logs": 1}})
    replaced = await api.put(f"{ACTIONS}/hello?overwrite=true", json={"parameters": [{"key": "c", "value": 3}]})

    assert kept.json()["parameters"] == [{"key": "a", "value": 1}, {"key": "b", "value": 2}]
    assert kept.json()["exec"]["code"] == CODE
    assert replaced.json()["parameters"] == [{"key": "c", "value": 3}]


async def test_update_can_replace_the_code(api: httpx.AsyncClient) -> None:
    await create(api)
    new_code = base64.b64encode(b"other code").decode()
    response = await api.put(f"{ACTIONS}/hello?overwrite=true", json={"exec": {"kind": "wasm:wasi", "code": new_code}})
    assert response.json()["exec"]["code"] == new_code


async def test_update_changes_the_updated_time(api: httpx.AsyncClient) -> None:
    first = (await create(api)).json()["updated"]
    second = (await api.put(f"{ACTIONS}/hello?overwrite=true", json={})).json()["updated"]
    assert second >= first


async def test_del_annotations_removes_them_on_update(api: httpx.AsyncClient) -> None:
    await create(api, annotations=[{"key": "web-export", "value": True}, {"key": "description", "value": "hi"}])
    response = await api.put(
        f"{ACTIONS}/hello?overwrite=true",
        json={"annotations": [{"key": "new", "value": 1}], "delAnnotations": ["web-export"]},
    )
    annotations = {a["key"]: a["value"] for a in response.json()["annotations"]}
    assert annotations == {"description": "hi", "provide-api-key": False, "exec": "wasm:wasi", "new": 1}


async def test_get_returns_the_code_by_default(api: httpx.AsyncClient) -> None:
    await create(api)
    response = await api.get(f"{ACTIONS}/hello")
    assert response.status_code == 200
    assert response.json()["exec"]["code"] == CODE


async def test_get_with_code_false_omits_the_code(api: httpx.AsyncClient) -> None:
    await create(api)
    response = await api.get(f"{ACTIONS}/hello?code=false")
    assert response.status_code == 200
    assert response.json()["exec"] == {"kind": "wasm:wasi", "binary": True}


async def test_list_returns_summaries_newest_first(api: httpx.AsyncClient) -> None:
    await create(api, name="first")
    await create(api, name="second")
    await api.put(f"{ACTIONS}/first?overwrite=true", json={})  # now the newest

    response = await api.get(ACTIONS)

    assert response.status_code == 200
    rows = response.json()
    assert [r["name"] for r in rows] == ["first", "second"]
    assert set(rows[0]) == {"namespace", "name", "version", "publish", "annotations", "limits", "exec", "updated"}
    assert rows[0]["exec"] == {"binary": True}
    assert rows[0]["version"] == "0.0.2"


async def test_list_with_limit_and_skip(api: httpx.AsyncClient) -> None:
    for n in range(4):
        await create(api, name=f"a{n}")
    page = (await api.get(f"{ACTIONS}?limit=2&skip=1")).json()
    everything = (await api.get(f"{ACTIONS}?limit=0")).json()
    assert [r["name"] for r in page] == [r["name"] for r in everything[1:3]]
    assert len(everything) == 4


async def test_list_count(api: httpx.AsyncClient) -> None:
    for n in range(3):
        await create(api, name=f"a{n}")
    response = await api.get(f"{ACTIONS}?count=true")
    assert response.status_code == 200
    assert response.json() == {"actions": 3}


async def test_delete_returns_the_action_then_it_is_gone(api: httpx.AsyncClient) -> None:
    await create(api)
    deleted = await api.delete(f"{ACTIONS}/hello")
    assert deleted.status_code == 200
    assert deleted.json()["name"] == "hello"
    assert_whisk_error(await api.get(f"{ACTIONS}/hello"), 404)
    assert (await api.get(f"{ACTIONS}?count=true")).json() == {"actions": 0}


async def test_action_put_with_parameters_over_1_mb_is_413(api: httpx.AsyncClient) -> None:
    parameters = [{"key": "big", "value": "x" * MB}]
    response = await api.put(f"{ACTIONS}/hello", json={"exec": EXEC, "parameters": parameters})
    assert_whisk_error(response, 413)
    assert re.fullmatch(r"Request larger than allowed: \d+ > 1048576 bytes\.", response.json()["error"])


async def test_action_put_with_code_over_48_mb_is_413(api: httpx.AsyncClient) -> None:
    code = "A" * (48 * MB + 4)
    response = await api.put(f"{ACTIONS}/huge", json={"exec": {"kind": "wasm:wasi", "code": code}})
    assert_whisk_error(response, 413, f"Request larger than allowed: {len(code)} > {48 * MB} bytes.")


async def test_invokers_route_reports_health_like_openwhisk(api: httpx.AsyncClient) -> None:
    response = await api.get("/invokers")

    assert response.status_code == 200
    assert response.json() == {"invoker0": "up"}


# the guest --------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [True, False])
async def test_the_guest_is_seeded_unless_settings_say_not(tmp_path: Path, seed: bool) -> None:
    settings = Settings(data_dir=tmp_path, bus="memory", store="sqlite", seed_guest=seed)
    app = build_controller(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://whisk.test", auth=(GUEST_UUID, GUEST_KEY)
        ) as client:
            response = await client.get("/api/v1/namespaces")
    assert response.status_code == (200 if seed else 401), response.text


@pytest.mark.parametrize(
    "query",
    [
        "skip=18496266743823506341888",  # found by tests/integration/test_api_fuzz.py: was a 500 from SQLite
        "limit=1&skip=-1",
        "skip=ten",
    ],
)
async def test_a_bad_skip_is_a_400(api: httpx.AsyncClient, query: str) -> None:
    response = await api.get(f"{ACTIONS}?{query}")
    assert_whisk_error(response, 400)


@pytest.mark.parametrize("name", ["since", "upto"])
async def test_a_time_bound_beyond_64_bits_is_a_400(api: httpx.AsyncClient, name: str) -> None:
    response = await api.get(f"{ACTIVATIONS}?{name}={2**64}")
    assert_whisk_error(response, 400, f"The value '{2**64}' of '{name}' is not an integer.")
