"""Packages, bindings and actions in packages over the API, in one process (controller → memory bus → invoker).

Follows OpenWhisk's ``core/controller/.../controller/Packages.scala`` and ``Actions.scala`` (``innerRoutes``,
``mergeActionWithPackageAndDispatch``), ``entitlement/PackageCollection.scala``, the messages of
``http/ErrorResponse.scala`` and the cases of ``PackagesApiTests.scala`` and ``PackageActionsApiTests.scala``.
One platform for the module; every test names its own packages, so none depends on another's.
"""

from __future__ import annotations

import base64
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from pywhisk.entities import Action
from pywhisk.settings import Settings
from pywhisk.store.sqlite import SqliteStore
from pywhisk.system import echo_module, seed_system_packages, system_actions
from pywhisk.tenancy import create_user
from tests.doubles import ScriptedExecutor
from tests.inprocess import InProcessWhisk, in_process_whisk

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
PACKAGES = "/api/v1/namespaces/_/packages"
ACTIONS = "/api/v1/namespaces/_/actions"
FORBIDDEN_PREFIX = "The supplied authentication is not authorized to access"
_names = itertools.count()


@dataclass
class Platform:
    whisk: InProcessWhisk[SqliteStore, ScriptedExecutor]
    guest: httpx.AsyncClient
    alice: httpx.AsyncClient  # a second subject, namespace "alice"


@pytest.fixture(scope="module")
async def platform(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Platform]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("packages"))
    async with in_process_whisk(settings, SqliteStore(settings.store_path), ScriptedExecutor()) as whisk:
        key = await create_user(whisk.store, "alice-subject", "alice")
        transport = httpx.ASGITransport(app=whisk.app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://whisk.test", auth=(key.uuid, key.key)
        ) as alice:
            yield Platform(whisk, whisk.api, alice)


def name(prefix: str) -> str:
    return f"{prefix}{next(_names)}"


def pairs(values: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": v} for k, v in values.items()]


def as_dict(body_pairs: list[dict[str, Any]]) -> dict[str, Any]:
    return {p["key"]: p["value"] for p in body_pairs}


def assert_error(response: httpx.Response, status: int, message: str | None = None) -> None:
    assert response.status_code == status, response.text
    if message is not None:
        assert response.json()["error"] == message, response.text


async def put_package(api: httpx.AsyncClient, package: str, query: str = "", **body: Any) -> dict[str, Any]:
    response = await api.put(f"{PACKAGES}/{package}{query}", json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def put_action(api: httpx.AsyncClient, path: str, code: str = "echo", **body: Any) -> dict[str, Any]:
    response = await api.put(f"{ACTIONS}/{path}", json={"exec": {"kind": "script:1", "code": code}, **body})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def invoke_result(api: httpx.AsyncClient, path: str, params: Any = None) -> httpx.Response:
    return await api.post(f"{ACTIONS}/{path}?blocking=true&result=true", json=params)


# create, update, get -------------------------------------------------------------------------------


async def test_create_then_update_bumps_the_version_and_replaces_given_fields(platform: Platform) -> None:
    pkg = name("pkg")
    created = await put_package(platform.guest, pkg, parameters=pairs({"a": 1}), annotations=pairs({"x": "y"}))
    assert created["namespace"] == "guest" and created["name"] == pkg
    assert created["version"] == "0.0.1" and created["publish"] is False and created["binding"] == {}
    assert as_dict(created["parameters"]) == {"a": 1}

    assert_error(await platform.guest.put(f"{PACKAGES}/{pkg}", json={}), 409, "resource already exists")

    updated = await put_package(platform.guest, pkg, "?overwrite=true", publish=True)
    assert updated["version"] == "0.0.2" and updated["publish"] is True
    assert as_dict(updated["parameters"]) == {"a": 1}  # not given: kept
    updated = await put_package(platform.guest, pkg, "?overwrite=true", annotations=pairs({"z": 1}))
    assert as_dict(updated["annotations"]) == {"z": 1}  # given: replaced, as OpenWhisk (not merged)


async def test_get_package_lists_its_actions_and_feeds(platform: Platform) -> None:
    pkg = name("pkg")
    await put_package(platform.guest, pkg)
    await put_action(platform.guest, f"{pkg}/plain")
    await put_action(platform.guest, f"{pkg}/changes", annotations=pairs({"feed": True}))

    response = await platform.guest.get(f"{PACKAGES}/{pkg}")
    assert response.status_code == 200
    body = response.json()
    assert [a["name"] for a in body["actions"]] == ["plain"]
    assert [a["name"] for a in body["feeds"]] == ["changes"]
    assert set(body["actions"][0]) == {"name", "version", "annotations"}


async def test_reserved_and_malformed_package_names_are_refused(platform: Platform) -> None:
    for query in ("", "?overwrite=true"):
        assert_error(
            await platform.guest.put(f"{PACKAGES}/default{query}", json={}), 400, "Package name 'default' is reserved."
        )
    # A slash is a path separator: no package route takes `a/b` ([OW] entityPrefix & pathEnd).
    assert_error(await platform.guest.put(f"{PACKAGES}/a/b", json={}), 404)
    assert_error(await platform.guest.put(f"{PACKAGES}/a%2Fb", json={}), 404)
    response = await platform.guest.put(f"{PACKAGES}/{name('p')}", json={"binding": {"namespace": "_", "name": "x/y"}})
    assert_error(response, 400)


async def test_missing_package_is_404_naming_it_and_another_namespaces_private_one_403(platform: Platform) -> None:
    assert_error(
        await platform.guest.get(f"{PACKAGES}/nothere"), 404, "The requested resource 'guest/nothere' does not exist."
    )
    private = name("private")
    await put_package(platform.alice, private)
    for response in (
        await platform.guest.get(f"/api/v1/namespaces/alice/packages/{private}"),
        await platform.guest.get("/api/v1/namespaces/alice/packages/nothere"),  # no leak of what exists
        await platform.guest.put(f"/api/v1/namespaces/alice/packages/{private}?overwrite=true", json={}),
        await platform.guest.delete(f"/api/v1/namespaces/alice/packages/{private}"),
    ):
        assert_error(response, 403)
        assert response.json()["error"].startswith(FORBIDDEN_PREFIX)


async def test_a_name_taken_by_an_action_is_a_conflict(platform: Platform) -> None:
    taken = name("act")
    await put_action(platform.guest, taken)
    message = "Resource by this name exists but is not in this collection."
    assert_error(await platform.guest.put(f"{PACKAGES}/{taken}", json={}), 409, message)
    assert_error(await platform.guest.get(f"{PACKAGES}/{taken}"), 409, message)
    pkg = name("pkg")
    await put_package(platform.guest, pkg)
    # GET /actions/pkg (no trailing slash) names a package, not an action ([OW] PackageActionsApiTests).
    assert_error(await platform.guest.get(f"{ACTIONS}/{pkg}"), 409, message)


# list ------------------------------------------------------------------------------------------------


async def test_list_count_skip_limit_and_binding_rows(platform: Platform) -> None:
    listed_ns = name("lister")
    key = await create_user(platform.whisk.store, f"{listed_ns}-subject", listed_ns)
    base = f"/api/v1/namespaces/{listed_ns}/packages"
    api = platform.guest
    auth = (key.uuid, key.key)
    for i in range(3):
        assert (await api.put(f"{base}/p{i}", json={}, auth=auth)).status_code == 200
    assert (
        await api.put(f"{base}/b", json={"binding": {"namespace": "_", "name": "p0"}}, auth=auth)
    ).status_code == 200

    rows = (await api.get(base, auth=auth)).json()
    assert [r["name"] for r in rows] == ["b", "p2", "p1", "p0"]  # most recently updated first
    assert rows[0]["binding"] == {"namespace": listed_ns, "name": "p0"}
    assert rows[1]["binding"] is False  # [OW] WhiskPackage.summaryAsJson
    assert "parameters" not in rows[0]
    assert (await api.get(f"{base}?count=true", auth=auth)).json() == {"packages": 4}
    assert [r["name"] for r in (await api.get(f"{base}/?skip=1&limit=2", auth=auth)).json()] == ["p2", "p1"]
    assert_error(
        await api.get(f"{base}?limit=201", auth=auth),
        400,
        "The value '201' is not in the range of 0 to 200 for packages.",
    )


async def test_another_namespace_lists_only_published_packages_never_bindings(platform: Platform) -> None:
    shared, private, binding = name("shared"), name("private"), name("binding")
    await put_package(platform.alice, shared, publish=True)
    await put_package(platform.alice, private)
    await put_package(platform.alice, binding, binding={"namespace": "_", "name": shared}, publish=True)
    names = [p["name"] for p in (await platform.guest.get("/api/v1/namespaces/alice/packages?limit=0")).json()]
    assert shared in names and private not in names and binding not in names
    own = [p["name"] for p in (await platform.alice.get("/api/v1/namespaces/_/packages?limit=0&public=true")).json()]
    assert {shared, private, binding} <= set(own)  # ?public is ignored, as OpenWhisk
    assert (await platform.guest.get("/api/v1/namespaces/nobody.here/packages")).json() == []


# bindings ----------------------------------------------------------------------------------------------


async def test_binding_errors_have_openwhisks_statuses_and_messages(platform: Platform) -> None:
    api = platform.guest
    pkg, binding, plain = name("pkg"), name("bnd"), name("act")
    await put_package(api, pkg)
    await put_package(api, binding, binding={"namespace": "guest", "name": pkg})
    await put_action(api, plain)
    alice_private = name("private")
    await put_package(platform.alice, alice_private)

    def bind(target_ns: str, target: str) -> dict[str, Any]:
        return {"binding": {"namespace": target_ns, "name": target}}

    cases = [
        (bind("_", "missing"), 400, "Binding references a package that does not exist."),
        (bind("alice", "missing"), 403, None),
        (bind("alice", alice_private), 403, None),
        (bind("_", binding), 400, "Cannot bind to another package binding."),
        (bind("_", plain), 409, "Cannot bind to a resource that is not a package."),
    ]
    for body, status, message in cases:
        assert_error(await api.put(f"{PACKAGES}/{name('b')}", json=body), status, message)
    assert_error(
        await api.put(f"{PACKAGES}/{pkg}?overwrite=true", json=bind("_", pkg)),
        409,
        "Resource is a package and cannot be converted into a binding.",
    )


async def test_binding_gets_the_server_set_annotation_and_reads_merged(platform: Platform) -> None:
    pkg, binding = name("pkg"), name("bnd")
    await put_package(platform.alice, pkg, publish=True, parameters=pairs({"a": "A", "b": "B"}))
    await put_action(platform.alice, f"{pkg}/echo")
    created = await put_package(
        platform.guest,
        binding,
        binding={"namespace": "alice", "name": pkg},
        parameters=pairs({"b": "b", "c": "C"}),
        annotations=pairs({"binding": "forged", "x": 1}),
    )
    assert created["binding"] == {"namespace": "alice", "name": pkg}
    assert as_dict(created["annotations"]) == {"x": 1, "binding": {"namespace": "alice", "name": pkg}}

    body = (await platform.guest.get(f"{PACKAGES}/{binding}")).json()
    assert body["namespace"] == "guest" and body["name"] == binding  # the binding itself ...
    assert as_dict(body["parameters"]) == {"a": "A", "b": "b", "c": "C"}  # ... over its package's parameters
    assert [a["name"] for a in body["actions"]] == ["echo"]
    # A binding is never shared, even with its package published.
    assert_error(await platform.alice.get(f"/api/v1/namespaces/guest/packages/{binding}"), 403)
    # The bound package unpublished: the binding no longer reaches it.
    await put_package(platform.alice, pkg, "?overwrite=true", publish=False)
    assert_error(await platform.guest.get(f"{PACKAGES}/{binding}"), 403)


# actions in packages -------------------------------------------------------------------------------------


async def test_actions_are_written_only_in_the_callers_own_existing_package(platform: Platform) -> None:
    pkg, binding = name("pkg"), name("bnd")
    await put_package(platform.guest, pkg)
    await put_package(platform.guest, binding, binding={"namespace": "_", "name": pkg})
    body = {"exec": {"kind": "script:1", "code": "echo"}}
    assert_error(
        await platform.guest.put(f"{ACTIONS}/missing/a", json=body), 404, "The requested resource does not exist."
    )
    assert_error(
        await platform.guest.put(f"{ACTIONS}/{binding}/a", json=body),
        400,
        "Operation not permitted on package binding.",
    )
    assert_error(
        await platform.guest.delete(f"{ACTIONS}/{binding}/a"), 400, "Operation not permitted on package binding."
    )
    assert_error(await platform.alice.put(f"/api/v1/namespaces/guest/actions/{pkg}/a", json=body), 403)

    created = await put_action(platform.guest, f"{pkg}/a")
    assert created["namespace"] == f"guest/{pkg}"
    assert (await platform.guest.get(f"{ACTIONS}/{pkg}/a")).json()["namespace"] == f"guest/{pkg}"
    assert (await platform.guest.put(f"{ACTIONS}/{pkg}/a?overwrite=true", json=body)).json()["version"] == "0.0.2"
    assert_error(await platform.alice.delete(f"/api/v1/namespaces/guest/actions/{pkg}/a"), 403)
    deleted = await platform.guest.delete(f"{ACTIONS}/{pkg}/a")
    assert deleted.status_code == 200 and deleted.json()["name"] == "a"
    assert_error(await platform.guest.delete(f"{ACTIONS}/{pkg}/a"), 404)


async def test_package_actions_list_through_a_package_and_a_binding(platform: Platform) -> None:
    pkg, binding = name("pkg"), name("bnd")
    await put_package(platform.alice, pkg, publish=True)
    for action in ("one", "two"):
        await put_action(platform.alice, f"{pkg}/{action}")
    await put_package(platform.guest, binding, binding={"namespace": "alice", "name": pkg})

    listed = (await platform.guest.get(f"{ACTIONS}/{binding}/")).json()
    assert sorted(a["name"] for a in listed) == ["one", "two"]
    assert {a["namespace"] for a in listed} == {f"alice/{pkg}"}  # the bound package's, as OpenWhisk
    assert (await platform.guest.get(f"/api/v1/namespaces/alice/actions/{pkg}/?count=true")).json() == {"actions": 2}
    assert_error(await platform.guest.get(f"{ACTIONS}/missing/"), 404)
    private = name("private")
    await put_package(platform.alice, private)
    assert_error(await platform.guest.get(f"/api/v1/namespaces/alice/actions/{private}/"), 403)


async def test_get_through_a_binding_shows_inherited_parameters_package_binding_action(platform: Platform) -> None:
    pkg, binding = name("pkg"), name("bnd")
    await put_package(platform.alice, pkg, publish=True, parameters=pairs({"p": "package", "b": "package"}))
    await put_action(platform.alice, f"{pkg}/act", parameters=pairs({"a": "action", "b": "action"}))
    await put_package(
        platform.guest,
        binding,
        binding={"namespace": "alice", "name": pkg},
        parameters=pairs({"b": "binding", "x": "binding"}),
    )

    body = (await platform.guest.get(f"{ACTIONS}/{binding}/act")).json()
    assert body["namespace"] == f"alice/{pkg}"
    assert as_dict(body["parameters"]) == {"p": "package", "b": "action", "x": "binding", "a": "action"}
    direct = (await platform.guest.get(f"/api/v1/namespaces/alice/actions/{pkg}/act?code=false")).json()
    assert as_dict(direct["parameters"]) == {"p": "package", "b": "action", "a": "action"}
    assert "code" not in direct["exec"]
    assert_error(await platform.guest.get(f"{ACTIONS}/{binding}/missing"), 404)


# invoke: parameter precedence and final --------------------------------------------------------------------


async def test_invoke_through_a_binding_merges_package_binding_action_invoke(platform: Platform) -> None:
    pkg, binding = name("pkg"), name("bnd")
    await put_package(platform.guest, pkg, parameters=pairs({"p": 1, "b": 1, "a": 1, "i": 1}))
    await put_action(platform.guest, f"{pkg}/echo", parameters=pairs({"a": 3, "i": 3}))
    await put_package(
        platform.guest, binding, binding={"namespace": "_", "name": pkg}, parameters=pairs({"b": 2, "a": 2, "i": 2})
    )

    response = await invoke_result(platform.guest, f"{binding}/echo", {"i": 4})
    assert response.status_code == 200, response.text
    assert response.json() == {"p": 1, "b": 2, "a": 3, "i": 4}
    assert (await invoke_result(platform.guest, f"{pkg}/echo", {})).json() == {"p": 1, "b": 1, "a": 3, "i": 3}


async def test_final_refuses_overriding_any_inherited_defined_parameter(platform: Platform) -> None:
    pkg, binding = name("pkg"), name("bnd")
    await put_package(platform.guest, pkg, parameters=pairs({"fromPackage": 1, "unset": None}))
    await put_action(platform.guest, f"{pkg}/locked", annotations=pairs({"final": True}))
    await put_package(
        platform.guest, binding, binding={"namespace": "_", "name": pkg}, parameters=pairs({"fromBinding": 2})
    )
    refused = "Request defines parameters that are not allowed (e.g., reserved properties)."
    assert_error(await invoke_result(platform.guest, f"{binding}/locked", {"fromPackage": 9}), 400, refused)
    assert_error(await invoke_result(platform.guest, f"{binding}/locked", {"fromBinding": 9}), 400, refused)
    allowed = await invoke_result(platform.guest, f"{binding}/locked", {"unset": "given", "new": 1})
    assert allowed.status_code == 200, allowed.text
    assert allowed.json() == {"fromPackage": 1, "fromBinding": 2, "unset": "given", "new": 1}


async def test_another_namespaces_package_actions_invoke_only_when_published(platform: Platform) -> None:
    shared, private = name("shared"), name("private")
    await put_package(platform.alice, shared, publish=True)
    await put_package(platform.alice, private)
    await put_action(platform.alice, f"{shared}/echo")
    await put_action(platform.alice, f"{private}/echo")
    ok = await platform.guest.post(
        f"/api/v1/namespaces/alice/actions/{shared}/echo?blocking=true&result=true", json={"x": 1}
    )
    assert ok.status_code == 200 and ok.json() == {"x": 1}
    refused = await platform.guest.post(f"/api/v1/namespaces/alice/actions/{private}/echo?blocking=true", json={})
    assert_error(refused, 403, f"{FORBIDDEN_PREFIX} 'alice/{private}'.")


# delete ------------------------------------------------------------------------------------------------------


async def test_deleting_a_non_empty_package_is_409_unless_forced(platform: Platform) -> None:
    pkg, binding = name("pkg"), name("bnd")
    await put_package(platform.guest, pkg)
    await put_action(platform.guest, f"{pkg}/one")
    await put_package(platform.guest, binding, binding={"namespace": "_", "name": pkg})
    assert_error(
        await platform.guest.delete(f"{PACKAGES}/{pkg}"),
        409,
        "Package not empty (contains 1 entity). Set force param or delete package contents.",
    )
    await put_action(platform.guest, f"{pkg}/two")
    assert_error(
        await platform.guest.delete(f"{PACKAGES}/{pkg}"),
        409,
        "Package not empty (contains 2 entities). Set force param or delete package contents.",
    )
    deleted_binding = await platform.guest.delete(f"{PACKAGES}/{binding}")  # a binding holds nothing
    assert deleted_binding.status_code == 200 and deleted_binding.json()["name"] == binding

    deleted = await platform.guest.delete(f"{PACKAGES}/{pkg}?force=true")
    assert deleted.status_code == 200 and deleted.json()["name"] == pkg
    assert_error(await platform.guest.get(f"{ACTIONS}/{pkg}/one"), 404)
    assert await platform.whisk.store.get_action(f"guest/{pkg}", "two") is None  # its actions went with it
    assert_error(await platform.guest.delete(f"{PACKAGES}/{pkg}"), 404, "The requested resource does not exist.")


# system packages -------------------------------------------------------------------------------------------------


async def test_whisk_system_packages_are_listed_read_bound_and_invoked_by_everyone(platform: Platform) -> None:
    for api in (platform.guest, platform.alice):
        listed = {p["name"] for p in (await api.get("/api/v1/namespaces/whisk.system/packages")).json()}
        assert {"utils", "alarms"} <= listed
        utils = (await api.get("/api/v1/namespaces/whisk.system/packages/utils")).json()
        assert [a["name"] for a in utils["actions"]] == ["echo"]
        alarms = (await api.get("/api/v1/namespaces/whisk.system/packages/alarms")).json()
        assert alarms["publish"] is True and alarms["actions"] == []
        direct = await api.post(
            "/api/v1/namespaces/whisk.system/actions/utils/echo?blocking=true&result=true", json={"m": 1}
        )
        assert direct.status_code == 200 and direct.json() == {"m": 1}

        mine = name("myutils")
        bound = await api.put(
            f"{PACKAGES}/{mine}",
            json={"binding": {"namespace": "whisk.system", "name": "utils"}, "parameters": pairs({"from": "binding"})},
        )
        assert bound.status_code == 200, bound.text
        through = await invoke_result(api, f"{mine}/echo", {"m": 2})
        assert through.json() == {"from": "binding", "m": 2}


async def test_nobody_writes_whisk_system_through_the_api(platform: Platform) -> None:
    body = {"exec": {"kind": "script:1", "code": "echo"}}
    for response in (
        await platform.guest.put("/api/v1/namespaces/whisk.system/packages/utils?overwrite=true", json={}),
        await platform.guest.delete("/api/v1/namespaces/whisk.system/packages/utils?force=true"),
        await platform.guest.put("/api/v1/namespaces/whisk.system/actions/utils/echo?overwrite=true", json=body),
        await platform.guest.delete("/api/v1/namespaces/whisk.system/actions/utils/echo"),
        await platform.guest.put("/api/v1/namespaces/whisk.system/actions/utils/planted", json=body),
    ):
        assert_error(response, 403)


async def test_seeding_is_idempotent_and_restores_what_differs(platform: Platform) -> None:
    store = platform.whisk.store
    assert await seed_system_packages(store) == []  # the server seeded it at start
    stored = await store.get_action("whisk.system/utils", "echo")
    assert stored is not None
    tampered = stored.model_copy(update={"exec": stored.exec.model_copy(update={"code": "b2xk"})})
    await store.put_action(tampered, expected_rev=stored.rev)
    assert await seed_system_packages(store) == ["/whisk.system/utils/echo"]
    restored = await store.get_action("whisk.system/utils", "echo")
    assert isinstance(restored, Action) and restored.exec.code == system_actions()[0].exec.code


def test_the_shipped_echo_module_is_the_one_built_from_actions_src_echo_c() -> None:
    assert echo_module() == (REPO / "actions" / "wasm" / "echo.wasm").read_bytes()
    assert base64.b64decode(system_actions()[0].exec.code or "") == echo_module()


# a binary kind sent as text ----------------------------------------------------------------------------------


async def test_a_wasm_module_sent_as_text_says_to_zip_it_as_wsk_needs(platform: Platform) -> None:
    response = await platform.guest.put(
        f"{ACTIONS}/{name('w')}", json={"exec": {"kind": "wasm:wasi", "code": "\x00asm text"}}
    )
    assert_error(response, 400)
    message = response.json()["error"]
    assert "base64-encoded binary" in message
    assert "wsk action create NAME NAME.zip --kind wasm:wasi" in message
