"""Packages, bindings and the whisk.system packages on real servers with real WebAssembly, in both modes.

Follows OpenWhisk's ``core/controller/.../controller/Packages.scala`` and ``Actions.scala`` (package paths) and
``docs/packages.md`` (binding ``/whisk.system/...`` and invoking through the binding). Runs against the session's
standalone server and distributed deployment (``platform``), and against one deployment of two controllers sharing
pouchdb-server: a package made through one is bound and invoked through the other.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from launcher.testing import Deployment, Server, admin, start_deployment
from tests.conftest import TEST_CONTROLLER_ENV, wasm_code

pytestmark = pytest.mark.integration


def pairs(values: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": v} for k, v in values.items()]


def put(api: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = api.put(f"/namespaces/_/{path}", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def result_of(api: httpx.Client, path: str, params: dict[str, Any]) -> Any:
    response = api.post(f"{path}?blocking=true&result=true", json=params)
    assert response.status_code == 200, response.text
    return response.json()


def package_flow(creator: httpx.Client, binder: httpx.Client) -> None:
    """A package with a WASM action, a binding over it with overriding parameters, invoked and torn down."""
    pkg, binding = f"pkg-{uuid.uuid4().hex[:8]}", f"bnd-{uuid.uuid4().hex[:8]}"
    put(creator, f"packages/{pkg}", {"parameters": pairs({"greeting": "package", "from": "package"})})
    action = put(creator, f"actions/{pkg}/echo", {"exec": {"kind": "wasm:wasi", "code": wasm_code("echo")}})
    assert action["namespace"].endswith(f"/{pkg}")
    put(
        binder,
        f"packages/{binding}",
        {"binding": {"namespace": "_", "name": pkg}, "parameters": pairs({"from": "binding"})},
    )

    listed = binder.get(f"/namespaces/_/packages/{binding}").json()
    assert [a["name"] for a in listed["actions"]] == ["echo"]
    through = result_of(binder, f"/namespaces/_/actions/{binding}/echo", {"extra": 1})
    assert through == {"greeting": "package", "from": "binding", "extra": 1}
    assert result_of(creator, f"/namespaces/_/actions/{pkg}/echo", {}) == {"greeting": "package", "from": "package"}

    refused = creator.delete(f"/namespaces/_/packages/{pkg}")
    assert refused.status_code == 409, refused.text
    assert (
        refused.json()["error"] == "Package not empty (contains 1 entity). Set force param or delete package contents."
    )
    assert binder.delete(f"/namespaces/_/packages/{binding}").status_code == 200
    assert creator.delete(f"/namespaces/_/packages/{pkg}?force=true").status_code == 200
    assert creator.get(f"/namespaces/_/actions/{pkg}/echo").status_code == 404


def system_echo_flow(api: httpx.Client) -> None:
    """/whisk.system/utils/echo invoked directly and through the caller's own binding of utils."""
    assert result_of(api, "/namespaces/whisk.system/actions/utils/echo", {"m": "direct"}) == {"m": "direct"}
    mine = f"utils-{uuid.uuid4().hex[:8]}"
    put(
        api,
        f"packages/{mine}",
        {"binding": {"namespace": "whisk.system", "name": "utils"}, "parameters": pairs({"b": 1})},
    )
    assert result_of(api, f"/namespaces/_/actions/{mine}/echo", {"m": "bound"}) == {"b": 1, "m": "bound"}
    assert api.delete(f"/namespaces/_/packages/{mine}").status_code == 200
    names = {p["name"] for p in api.get("/namespaces/whisk.system/packages").json()}
    assert {"utils", "alarms"} <= names


def test_a_package_action_runs_through_a_binding_with_its_parameters(platform: Server) -> None:
    with platform.client() as api:
        package_flow(api, api)


def test_whisk_system_echo_is_invoked_and_bound_by_the_guest_and_by_a_new_subject(platform: Server) -> None:
    subject = f"pkg-user-{uuid.uuid4().hex[:8]}"
    uuid_, key = platform.admin("user", "create", subject).split(":")
    try:
        with (
            platform.client() as guest,
            httpx.Client(base_url=f"{platform.apihost}/api/v1", auth=(uuid_, key), timeout=70) as newcomer,
        ):
            system_echo_flow(guest)
            system_echo_flow(newcomer)
            refused = newcomer.put("/namespaces/whisk.system/packages/utils?overwrite=true", json={})
            assert refused.status_code == 403, refused.text
    finally:
        admin(platform.admin_env, "user", "delete", subject, check=False)


def test_admin_system_packages_is_idempotent_on_a_seeded_store(platform: Server) -> None:
    assert platform.admin("system-packages") == "System packages are up to date"


# two controllers sharing pouchdb-server ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_controllers(
    kafka_broker: str, couchdb_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    # Both controllers seed whisk.system at the same moment on an empty store: one writes, the other's
    # conflicts are taken as done.
    deployment = start_deployment(
        kafka_broker,
        couchdb_url,
        tmp_path_factory.mktemp("packages-two-controllers"),
        controllers=2,
        invokers=1,
        controller_env=TEST_CONTROLLER_ENV,
    )
    yield deployment
    deployment.stop()


@pytest.mark.kafka
def test_with_two_controllers_a_package_made_on_one_is_bound_and_invoked_on_the_other(
    two_controllers: Deployment,
) -> None:
    with two_controllers.client(0) as first, two_controllers.client(1) as second:
        package_flow(first, second)
        system_echo_flow(second)
        system_echo_flow(first)
