"""Tenancy against real servers: `pywhisk admin` on SQLite and on the CouchDB-API server, keys and limits
taking effect on a running platform, OpenWhisk's 429s, and namespaces kept apart, in both modes.

The test platform runs its controllers with no identity cache (``TEST_CONTROLLER_ENV`` in conftest), so an
admin change holds from the next request on and nothing here waits for a cache to expire.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from launcher.testing import Deployment, Server, admin, drop_databases, start_deployment
from tests.conftest import TEST_CONTROLLER_ENV, wasm_code
from tests.integration.helpers import create_wasm_action, wait_for_record

pytestmark = pytest.mark.integration

RATE_MESSAGE = "Too many requests in the last minute (count: {count}, allowed: {allowed})."
CONCURRENT_MESSAGE = "Too many concurrent requests in flight (count: {count}, allowed: {allowed})."


class Tenant:
    """A subject created with `pywhisk admin user create`, and an API client with its key."""

    def __init__(self, server: Server, name: str, namespace: str | None = None) -> None:
        self.name = name
        self.namespace = namespace or name
        self.auth = admin(server.admin_env, "user", "create", name, "--namespace", self.namespace).stdout.strip()
        uuid_, key = self.auth.split(":")
        self.api = httpx.Client(base_url=f"{server.apihost}/api/v1", auth=(uuid_, key), timeout=70)

    def create_action(self, name: str, module: str = "hello", **limits: int) -> None:
        create_wasm_action(self.api, name, module, **limits)

    def invoke(self, name: str, params: dict[str, Any] | None = None, **query: str) -> httpx.Response:
        return self.api.post(f"/namespaces/_/actions/{name}", params=query, json=params or {})


@pytest.fixture
def tenants(platform: Server, request: pytest.FixtureRequest) -> Iterator[tuple[Tenant, Tenant]]:
    suffix = uuid.uuid4().hex[:8]
    pair = (Tenant(platform, f"tenant-a-{suffix}"), Tenant(platform, f"tenant-b-{suffix}"))
    yield pair
    for tenant in pair:
        tenant.api.close()
        admin(platform.admin_env, "user", "delete", tenant.name, check=False)
        admin(platform.admin_env, "namespace", "limits", "delete", tenant.name, check=False)


def set_limits(server: Server, namespace: str, *options: str) -> None:
    """Set limits with the admin command; the test platform's controllers see them at the next request."""
    admin(server.admin_env, "namespace", "limits", "set", namespace, *options)


def away_from_a_minute_boundary() -> None:
    """Do not start a per-minute count in the last seconds of a minute.

    The controller counts invokes per calendar minute of the wall clock (OpenWhisk's fixed windows), in
    another process, so a test can neither inject a clock nor shorten the window without a setting that
    would change behaviour; a burst that straddled a boundary would be counted in two windows. This waits
    for the clock, not for the platform, and only when less than 15 s of the minute remain.
    """
    second = time.time() % 60
    if second > 45:
        time.sleep(60.5 - second)


# the admin command ----------------------------------------------------------------------------------


def _admin_round_trip(env: dict[str, str]) -> str:
    """Every admin command once; returns the key it created (for the callers' store checks)."""
    subject = f"ada-{uuid.uuid4().hex[:8]}"
    key = admin(env, "user", "create", subject).stdout.strip()
    key_uuid, secret = key.split(":")
    assert uuid.UUID(key_uuid) and len(secret) == 64 and secret.isalnum()
    team_key = admin(env, "user", "create", subject, "--namespace", "team-x").stdout.strip()

    assert admin(env, "user", "get", subject).stdout.splitlines() == [
        f"{subject}\t{key_uuid}",
        f"team-x\t{team_key.split(':')[0]}",
    ]
    listed = admin(env, "user", "list").stdout.splitlines()
    assert f"{key_uuid}\t{subject}\t{subject}" in listed
    assert admin(env, "user", "list", "team-x").stdout.splitlines() == [f"{team_key.split(':')[0]}\t{subject}\tteam-x"]

    twice = admin(env, "user", "create", subject, check=False)
    assert (twice.returncode, twice.stderr.strip()) == (1, "Namespace already exists")
    short = admin(env, "user", "create", "ada", check=False)
    assert (short.returncode, short.stderr.strip()) == (1, "Subject name must be at least 5 characters")

    assert admin(env, "namespace", "limits", "get", "team-x").stdout.splitlines() == [
        "invocationsPerMinute = 60 (system default)",
        "concurrentInvocations = 30 (system default)",
        "firesPerMinute = 60 (system default)",
    ]
    ok = admin(env, "namespace", "limits", "set", "team-x", "--invocations-per-minute", "7")
    assert ok.stdout.strip() == 'Limits successfully set for "team-x"'
    admin(env, "namespace", "limits", "set", "team-x", "--concurrentInvocations", "3")  # wskadmin's spelling
    assert admin(env, "namespace", "limits", "get", "team-x").stdout.splitlines() == [
        "invocationsPerMinute = 7",
        "concurrentInvocations = 3",
        "firesPerMinute = 60 (system default)",
    ]
    negative = admin(env, "namespace", "limits", "set", "team-x", "--invocations-per-minute", "-1", check=False)
    assert negative.returncode == 2  # refused by the option's range
    assert admin(env, "namespace", "limits", "delete", "team-x").stdout.strip() == "Limits deleted"
    assert admin(env, "namespace", "limits", "delete", "team-x", check=False).returncode == 1
    assert "(system default)" in admin(env, "namespace", "limits", "get", "team-x").stdout

    assert admin(env, "user", "delete", subject, "--namespace", "team-x").stdout.strip() == "Namespace deleted"
    assert admin(env, "user", "list", "team-x").stdout == ""
    assert admin(env, "user", "delete", subject).stdout.strip() == "Subject deleted"
    gone = admin(env, "user", "get", subject, check=False)
    assert (gone.returncode, gone.stderr.strip()) == (1, f'Subject "{subject}" does not exist')
    return key


def test_admin_commands_on_the_standalone_sqlite_store_keep_only_key_hashes(tmp_path: Path) -> None:
    env = {"PYWHISK_STORE": "couchdb", "PYWHISK_COUCHDB_URL": "http://127.0.0.1:1"}  # --data-dir wins over these
    data_dir = tmp_path / "data"
    key = admin(env, "user", "create", "keeper-1", "--data-dir", str(data_dir)).stdout.strip()
    _admin_round_trip({"PYWHISK_STORE": "sqlite", "PYWHISK_DATA_DIR": str(data_dir)})

    with sqlite3.connect(data_dir / "pywhisk.sqlite3") as conn:
        rows = conn.execute("SELECT uuid, subject, key_hash FROM subject_keys").fetchall()
    assert [(r[0], r[1]) for r in rows] == [(key.split(":")[0], "keeper-1")]
    assert rows[0][2].startswith("hmac-sha256$")
    assert key.split(":")[1].encode() not in (data_dir / "pywhisk.sqlite3").read_bytes()


def test_admin_commands_on_the_couchdb_store_keep_openwhisk_subject_documents(couchdb_url: str) -> None:
    prefix = f"t{uuid.uuid4().hex[:10]}_"
    env = {"PYWHISK_STORE": "couchdb", "PYWHISK_COUCHDB_URL": couchdb_url, "PYWHISK_COUCHDB_DB_PREFIX": prefix}
    try:
        key = admin(env, "user", "create", "keeper-1", "--namespace", "keepers").stdout.strip()
        _admin_round_trip(env)
        admin(env, "namespace", "limits", "set", "keepers", "--invocations-per-minute", "9")

        docs = httpx.get(f"{couchdb_url}/{prefix}subjects/_all_docs", params={"include_docs": "true"}).json()
        by_id = {row["id"]: row["doc"] for row in docs["rows"] if not row["id"].startswith("_design")}
        assert set(by_id) == {"keeper-1", "keepers/limits"}
        assert by_id["keeper-1"]["subject"] == "keeper-1"
        [entry] = by_id["keeper-1"]["namespaces"]
        assert (entry["name"], entry["uuid"]) == ("keepers", key.split(":")[0])
        assert entry["key_hash"].startswith("hmac-sha256$") and key.split(":")[1] not in str(by_id)
        assert by_id["keepers/limits"]["invocationsPerMinute"] == 9
    finally:
        drop_databases(couchdb_url, prefix)


def test_admin_says_so_when_the_store_cannot_be_reached() -> None:
    env = {"PYWHISK_STORE": "couchdb", "PYWHISK_COUCHDB_URL": "http://127.0.0.1:1"}
    done = admin(env, "user", "list", check=False)
    assert done.returncode == 1 and "unreachable" in done.stderr and "Traceback" not in done.stderr


# keys on a running platform -------------------------------------------------------------------------


def test_a_created_key_works_at_once_and_a_deleted_one_stops_working(platform: Server) -> None:
    tenant = Tenant(platform, f"short-lived-{uuid.uuid4().hex[:8]}")
    try:
        assert tenant.api.get("/namespaces").json() == [tenant.name]
        admin(platform.admin_env, "user", "delete", tenant.name)
        assert tenant.api.get("/namespaces").status_code == 401
    finally:
        tenant.api.close()


# namespace isolation ---------------------------------------------------------------------------------


def test_one_namespace_can_never_read_or_invoke_anothers_actions_or_activations(
    platform: Server, tenants: tuple[Tenant, Tenant]
) -> None:
    alice, bob = tenants
    alice.create_action("secret")
    done = alice.invoke("secret", {"name": "Alice"}, blocking="true")
    assert done.status_code == 200, done.text
    activation_id = done.json()["activationId"]
    theirs = f"/namespaces/{alice.name}"

    # Addressed by the other namespace's name: 403, whatever the method and collection.
    for method, path, body in [
        ("GET", f"{theirs}/actions", None),
        ("GET", f"{theirs}/actions/secret", None),
        ("PUT", f"{theirs}/actions/secret?overwrite=true", {"exec": {"kind": "wasm:wasi", "code": wasm_code("echo")}}),
        ("PUT", f"{theirs}/actions/planted", {"exec": {"kind": "wasm:wasi", "code": wasm_code("echo")}}),
        ("DELETE", f"{theirs}/actions/secret", None),
        ("POST", f"{theirs}/actions/secret?blocking=true", {}),
        ("GET", f"{theirs}/activations", None),
        ("GET", f"{theirs}/activations/{activation_id}", None),
        ("GET", f"{theirs}/activations/{activation_id}/result", None),
        ("GET", f"{theirs}/activations/{activation_id}/logs", None),
        ("GET", f"{theirs}/limits", None),
    ]:
        response = bob.api.request(method, path, json=body)
        assert response.status_code == 403, f"{method} {path}: {response.status_code} {response.text}"
        assert response.json()["error"] == "The supplied authentication is not authorized to access this resource."

    # Through their own namespace (`_`), the other's entities and records simply do not exist.
    assert bob.api.get("/namespaces/_/actions").json() == []
    assert bob.api.get("/namespaces/_/actions/secret").status_code == 404
    assert bob.invoke("secret", blocking="true").status_code == 404
    assert bob.api.delete("/namespaces/_/actions/secret").status_code == 404
    assert bob.api.get("/namespaces/_/activations").json() == []
    for suffix in ("", "/result", "/logs"):
        assert bob.api.get(f"/namespaces/_/activations/{activation_id}{suffix}").status_code == 404
    # Bob's action of the same name is his own and changes nothing of Alice's.
    bob.create_action("secret", module="echo")
    assert bob.invoke("secret", {"who": "bob"}, blocking="true", result="true").json() == {"who": "bob"}

    # Alice still has exactly what she had.
    assert [a["name"] for a in alice.api.get("/namespaces/_/actions").json()] == ["secret"]
    assert alice.invoke("secret", {"name": "Alice"}, blocking="true", result="true").json() == {
        "greeting": "Hello, Alice!"
    }
    assert alice.api.get(f"/namespaces/_/activations/{activation_id}").json()["namespace"] == alice.name
    listed = {a["activationId"] for a in alice.api.get("/namespaces/_/activations", params={"limit": 200}).json()}
    assert activation_id in listed
    assert not listed & {a["activationId"] for a in bob.api.get("/namespaces/_/activations").json()}


# throttles ------------------------------------------------------------------------------------------


def test_invocations_per_minute_set_on_a_running_server_give_openwhisks_429(
    platform: Server, tenants: tuple[Tenant, Tenant]
) -> None:
    alice, _ = tenants
    alice.create_action("hello")
    assert alice.api.get("/namespaces/_/limits").json()["invocationsPerMinute"] == 60  # the system default
    set_limits(platform, alice.name, "--invocations-per-minute", "3")
    assert alice.api.get("/namespaces/_/limits").json()["invocationsPerMinute"] == 3

    away_from_a_minute_boundary()
    statuses = [alice.invoke("hello").status_code for _ in range(3)]
    refused = alice.invoke("hello")
    assert statuses == [202, 202, 202]
    assert refused.status_code == 429
    assert refused.json()["error"] == RATE_MESSAGE.format(count=4, allowed=3)
    assert refused.json()["code"] == refused.headers["x-request-id"]

    # Raised with the admin command again: the running server follows without a restart.
    set_limits(platform, alice.name, "--invocations-per-minute", "1000")
    assert alice.invoke("hello").status_code == 202


def test_concurrent_invocations_give_openwhisks_429_and_free_on_completion(
    platform: Server, tenants: tuple[Tenant, Tenant]
) -> None:
    alice, _ = tenants
    alice.create_action("nap", module="sleep")
    set_limits(platform, alice.name, "--concurrent-invocations", "2")

    # A blocking invoke that gives up waiting (202) still holds its slot until the activation completes.
    waited = alice.invoke("nap", {"ms": 3000}, blocking="true", timeout="200")
    assert waited.status_code == 202
    background = alice.invoke("nap", {"ms": 3000})
    assert background.status_code == 202
    refused = alice.invoke("nap", {"ms": 10})
    assert refused.status_code == 429
    assert refused.json()["error"] == CONCURRENT_MESSAGE.format(count=2, allowed=2)

    for accepted in (waited, background):
        assert wait_for_record(alice.api, accepted.json()["activationId"])["response"]["success"] is True
    # Both completed: their slots are free again (the completion may trail the record by a moment).
    deadline = time.monotonic() + 10
    while (again := alice.invoke("nap", {"ms": 10}, blocking="true")).status_code == 429:
        assert time.monotonic() < deadline, again.text
        time.sleep(0.1)
    assert again.status_code == 200, again.text


def test_two_tenants_hammering_at_once_only_the_limited_one_is_throttled(
    platform: Server, tenants: tuple[Tenant, Tenant]
) -> None:
    limited, free = tenants
    # 128 MB (the smallest memory limit) lets the standalone invoker's 4 GiB run ~30 naps at once, not ~15.
    for tenant in tenants:
        tenant.create_action("nap", module="sleep", memory=128)
    set_limits(platform, limited.name, "--concurrent-invocations", "5", "--invocations-per-minute", "1000")
    set_limits(platform, free.name, "--concurrent-invocations", "1000", "--invocations-per-minute", "1000")

    async def hammer(tenant: Tenant, count: int) -> list[httpx.Response]:
        uuid_, key = tenant.auth.split(":")
        async with httpx.AsyncClient(base_url=str(tenant.api.base_url), auth=(uuid_, key), timeout=70) as client:
            return list(
                await asyncio.gather(
                    *(
                        client.post("/namespaces/_/actions/nap", params={"blocking": "false"}, json={"ms": 5000})
                        for _ in range(count)
                    )
                )
            )

    async def both() -> tuple[list[httpx.Response], list[httpx.Response]]:
        results = await asyncio.gather(hammer(limited, 60), hammer(free, 60))
        return results[0], results[1]

    # 60 invokes each stay far below the 1000 per minute: only the concurrency limit is in play here.
    limited_answers, free_answers = asyncio.run(both())

    limited_codes = [r.status_code for r in limited_answers]
    assert limited_codes.count(202) == 5, limited_codes  # exactly its limit, never more
    assert limited_codes.count(429) == 55
    assert {r.json()["error"] for r in limited_answers if r.status_code == 429} == {
        CONCURRENT_MESSAGE.format(count=5, allowed=5)
    }
    assert [r.status_code for r in free_answers] == [202] * 60  # not slowed down, not refused
    # Every accepted nap ends well, and none is left queued in the invoker for the tests after this one (the
    # standalone invoker runs ~30 at once: 65 take three 5 s waves).
    for response in free_answers + [r for r in limited_answers if r.status_code == 202]:
        tenant = free if response in free_answers else limited
        record = wait_for_record(tenant.api, response.json()["activationId"], timeout_s=60)
        assert record["response"]["success"] is True


# distributed: each controller enforces its share ----------------------------------------------------


@pytest.fixture(scope="module")
def two_controllers(
    kafka_broker: str, couchdb_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    deployment = start_deployment(
        kafka_broker,
        couchdb_url,
        tmp_path_factory.mktemp("two-controllers"),
        controllers=2,
        invokers=1,
        controller_env=TEST_CONTROLLER_ENV,
    )
    yield deployment
    deployment.stop()


@pytest.mark.kafka
def test_with_two_controllers_each_enforces_its_share_of_the_namespace_limits(two_controllers: Deployment) -> None:
    first, second = two_controllers.server(0), two_controllers.server(1)
    name = f"shared-{uuid.uuid4().hex[:8]}"
    # Two subjects with keys for one namespace, each calling its own controller.
    tenant_first = Tenant(first, f"{name}-one", namespace=name)
    tenant_second = Tenant(second, f"{name}-two", namespace=name)
    tenant_first.create_action("hello")
    # 10 per minute across 2 controllers: OpenWhisk gives each ceil(10 * 1.2) // 2 = 6.
    set_limits(first, name, "--invocations-per-minute", "10")
    assert tenant_first.api.get("/namespaces/_/limits").json()["invocationsPerMinute"] == 10

    away_from_a_minute_boundary()
    on_first = [tenant_first.invoke("hello").status_code for _ in range(7)]
    on_second = [tenant_second.invoke("hello").status_code for _ in range(7)]
    assert on_first == [202] * 6 + [429]
    assert on_second == [202] * 6 + [429]
    refused = tenant_second.invoke("hello")
    assert refused.json()["error"] == RATE_MESSAGE.format(count=8, allowed=6)
    tenant_first.api.close()
    tenant_second.api.close()
