"""Escape attempts from a ``wasm:wasi`` action against real Wasmtime, and the grants that open the sandbox.

The probe is actions/src/sandbox.c (op read/list/write/getenv/socket); actions/src/httpget.c imports
WoW's ``http.get``. Two executors: one with the defaults (nothing can be granted) and one whose
operator allows a directory, one environment variable and ``net_access`` (executor_wasm/grants.py).
The last test goes through a real standalone server, so the annotations are seen to reach the executor.
"""

from __future__ import annotations

import base64
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import pytest_asyncio

from executor_wasm.executor import WasmExecutor
from executor_wasm.settings import WasmSettings, module_cache_dir
from invoker.results import init_failure, run_response
from pywhisk.activation import ActivationResponse, StatusCode
from pywhisk.executor import InitRequest, InstanceSpec
from tests.conftest import WASM_DIR, start_standalone, stop_standalone
from tests.executors import run_request
from tests.integration.helpers import invoke

pytestmark = pytest.mark.integration

SECRET_NAME = "PYWHISK_SANDBOX_TEST_SECRET"
OTHER_SECRET = "PYWHISK_SANDBOX_TEST_OTHER"


@dataclass(frozen=True)
class HostFiles:
    granted: Path  # allowed by the operator: file.txt, sub/, escape -> ../secret.txt, up -> ..
    secret: Path  # beside the granted directory, never granted


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> HostFiles:
    root = tmp_path_factory.mktemp("sandbox")
    granted = root / "granted"
    (granted / "sub").mkdir(parents=True)
    (granted / "file.txt").write_text("granted content\n")
    (granted / "sub" / "deep.txt").write_text("deep\n")
    secret = root / "secret.txt"
    secret.write_text("host secret\n")
    (granted / "escape").symlink_to(secret)
    (granted / "up").symlink_to("..")
    return HostFiles(granted, secret)


@pytest.fixture(scope="module", autouse=True)
def host_env() -> Iterator[None]:
    # The executor runs in this process: these are "host" environment variables to it.
    os.environ[SECRET_NAME] = "s3cret"
    os.environ[OTHER_SECRET] = "not granted"
    yield
    os.environ.pop(SECRET_NAME, None)
    os.environ.pop(OTHER_SECRET, None)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def strict(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[WasmExecutor]:
    """The default operator settings: nothing may be granted."""
    executor = WasmExecutor(WasmSettings(threads=2), module_cache_dir(tmp_path_factory.mktemp("strict")))
    await executor.start()
    yield executor
    await executor.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def granting(tmp_path_factory: pytest.TempPathFactory, host: HostFiles) -> AsyncIterator[WasmExecutor]:
    settings = WasmSettings(threads=2, grant_dirs=[host.granted], grant_env=[SECRET_NAME], grant_net=True)
    executor = WasmExecutor(settings, module_cache_dir(tmp_path_factory.mktemp("granting")))
    await executor.start()
    yield executor
    await executor.close()


def module_code(name: str) -> str:
    path = WASM_DIR / f"{name}.wasm"
    if not path.exists():
        pytest.skip(f"{path} is not built (run actions/build.sh)")
    return base64.b64encode(path.read_bytes()).decode()


async def activate(
    executor: WasmExecutor, module: str, params: dict[str, Any], annotations: dict[str, Any] | None = None
) -> ActivationResponse:
    """Create, init and run one instance as the invoker would; the activation's response."""
    instance_id = uuid.uuid4().hex
    await executor.create(
        InstanceSpec(instance_id=instance_id, kind="wasm:wasi", memory_mb=128, annotations=annotations or {})
    )
    try:
        init = await executor.init(instance_id, InitRequest(name=module, code=module_code(module)), 10_000, 65_536)
        failed = init_failure(init, 10_000)
        if failed is not None:
            return failed
        request = run_request(params, action_name=f"/guest/{module}")
        return run_response(await executor.run(instance_id, request, 10_000, 65_536), 10_000)
    finally:
        await executor.destroy(instance_id)


def error_of(response: ActivationResponse) -> str:
    assert isinstance(response.result, dict) and "error" in response.result, response
    return str(response.result["error"])


# --- files -------------------------------------------------------------------------------------


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("path", ["/etc/passwd", "../../etc/passwd", "/proc/self/environ", ".", "/"])
async def test_a_module_without_grants_sees_no_host_file(strict: WasmExecutor, path: str) -> None:
    op = "list" if path in (".", "/") else "read"
    response = await activate(strict, "sandbox", {"op": op, "path": path})
    assert response.statusCode == StatusCode.APPLICATION_ERROR
    assert error_of(response) == f"{op} {path}: No such file or directory"


@pytest.mark.asyncio(loop_scope="module")
async def test_a_granted_directory_is_readable_at_its_own_path(granting: WasmExecutor, host: HostFiles) -> None:
    grant = {"dir": str(host.granted)}
    read = await activate(granting, "sandbox", {"op": "read", "path": f"{host.granted}/sub/deep.txt"}, grant)
    assert read.statusCode == StatusCode.SUCCESS and read.result == {"content": "deep\n"}
    listed = await activate(granting, "sandbox", {"op": "list", "path": str(host.granted)}, grant)
    assert sorted(listed.result["entries"]) == ["escape", "file.txt", "sub", "up"]


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize(
    ("op", "relative"),
    [
        ("read", "../secret.txt"),  # `..` out of the preopen
        ("read", "sub/../../secret.txt"),
        ("read", "escape"),  # a symlink to a file outside
        ("read", "up/secret.txt"),  # a symlink to the parent directory
        ("list", "up"),
        ("write", "file.txt"),  # read-only: neither overwrite
        ("write", "new.txt"),  # nor create
    ],
)
async def test_a_granted_directory_cannot_be_left_or_written(
    granting: WasmExecutor, host: HostFiles, op: str, relative: str
) -> None:
    path = f"{host.granted}/{relative}"
    response = await activate(granting, "sandbox", {"op": op, "path": path}, {"dir": str(host.granted)})
    assert response.statusCode == StatusCode.APPLICATION_ERROR
    assert error_of(response) == f"{op} {path}: Operation not permitted"
    assert (host.granted / "file.txt").read_text() == "granted content\n"
    assert not (host.granted / "new.txt").exists()


@pytest.mark.asyncio(loop_scope="module")
async def test_the_same_directory_is_not_granted_by_a_strict_operator(strict: WasmExecutor, host: HostFiles) -> None:
    response = await activate(strict, "sandbox", {"op": "list", "path": "/"}, {"dir": str(host.granted)})
    assert response.statusCode == StatusCode.DEVELOPER_ERROR
    assert error_of(response) == f"The directory {host.granted} is not granted by the operator."


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize(
    ("requested", "message"),
    [
        ("/etc", "The directory /etc is not granted by the operator."),
        ("{granted}/..", "The directory {granted}/.. is not granted by the operator."),
        ("{granted}/up", "The directory {granted}/up is not granted by the operator."),  # symlink to ..
        ("{granted}/nothing", "The directory {granted}/nothing does not exist on the invoker."),
        ("granted", "The directory granted is not an absolute path."),
    ],
)
async def test_a_directory_outside_the_operators_list_fails_the_init(
    granting: WasmExecutor, host: HostFiles, requested: str, message: str
) -> None:
    requested = requested.format(granted=host.granted)
    response = await activate(granting, "sandbox", {"op": "list", "path": "/"}, {"dir": requested})
    assert response.statusCode == StatusCode.DEVELOPER_ERROR
    assert error_of(response) == message.format(granted=host.granted)


# --- environment -------------------------------------------------------------------------------


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("name", [SECRET_NAME, "PATH", "HOME"])
async def test_a_module_does_not_see_the_host_environment(granting: WasmExecutor, name: str) -> None:
    response = await activate(granting, "sandbox", {"op": "getenv", "name": name})
    assert response.statusCode == StatusCode.SUCCESS and response.result == {"value": None}


@pytest.mark.asyncio(loop_scope="module")
async def test_an_environment_grant_passes_only_the_allowed_name(granting: WasmExecutor) -> None:
    granted = await activate(granting, "sandbox", {"op": "getenv", "name": SECRET_NAME}, {"env": [SECRET_NAME]})
    assert granted.result == {"value": "s3cret"}
    other = await activate(granting, "sandbox", {"op": "getenv", "name": OTHER_SECRET}, {"env": [SECRET_NAME]})
    assert other.result == {"value": None}
    denied = await activate(granting, "sandbox", {"op": "getenv", "name": "x"}, {"env": [SECRET_NAME, OTHER_SECRET]})
    assert denied.statusCode == StatusCode.DEVELOPER_ERROR
    assert error_of(denied) == f"The environment variable {OTHER_SECRET} is not granted by the operator."


# --- network -----------------------------------------------------------------------------------


@pytest.mark.asyncio(loop_scope="module")
async def test_a_module_has_no_socket(granting: WasmExecutor) -> None:
    # WASI preview 1 cannot create sockets; accepting on a descriptor that was never preopened fails.
    response = await activate(granting, "sandbox", {"op": "socket"}, {"net_access": True})
    assert response.statusCode == StatusCode.APPLICATION_ERROR
    assert error_of(response) == "socket fd 3: Bad file descriptor"


@pytest.mark.asyncio(loop_scope="module")
async def test_http_get_is_linked_only_when_granted(granting: WasmExecutor, strict: WasmExecutor) -> None:
    ungranted = await activate(granting, "httpget", {})
    assert ungranted.statusCode == StatusCode.DEVELOPER_ERROR
    assert error_of(ungranted) == "Invalid WebAssembly module: unknown import: `http::get` has not been defined"
    refused = await activate(strict, "httpget", {}, {"net_access": True})
    assert error_of(refused) == "Network access (net_access) is not granted by the operator."
    started = time.monotonic()
    granted = await activate(granting, "httpget", {}, {"net_access": True})
    assert granted.statusCode == StatusCode.SUCCESS and granted.result == {"http_get": 0}
    assert time.monotonic() - started >= 0.3  # WoW's stand-in blocks 300 ms


@pytest.mark.asyncio(loop_scope="module")
async def test_malformed_grant_annotations_fail_the_init(granting: WasmExecutor) -> None:
    malformed: list[tuple[dict[str, Any], str]] = [
        ({"dir": 42}, "The annotation dir must be a string or a list of strings."),
        ({"env": {"a": 1}}, "The annotation env must be a string or a list of strings."),
        ({"net_access": "yes"}, "The annotation net_access must be true or false."),
    ]
    for requested, message in malformed:
        response = await activate(granting, "sandbox", {"op": "getenv", "name": "x"}, requested)
        assert response.statusCode == StatusCode.DEVELOPER_ERROR
        assert error_of(response) == message


# --- through the platform ----------------------------------------------------------------------


def test_grants_reach_the_executor_through_the_api(tmp_path: Path, host: HostFiles) -> None:
    env = {"PYWHISK_WASM_GRANT_DIRS": orjson.dumps([str(host.granted)]).decode()}
    server = start_standalone(tmp_path / "server", env=env)
    try:
        with server.client() as api:
            code = module_code("sandbox")
            for name, pairs in [("granted", [{"key": "dir", "value": str(host.granted)}]), ("plain", [])]:
                body = {"exec": {"kind": "wasm:wasi", "code": code}, "annotations": pairs}
                assert api.put(f"/namespaces/_/actions/{name}", json=body).status_code == 200
            path = f"{host.granted}/file.txt"
            granted = invoke(api, "granted", {"op": "read", "path": path})
            assert granted.status_code == 200 and granted.json()["response"]["result"] == {
                "content": "granted content\n"
            }
            plain = invoke(api, "plain", {"op": "read", "path": path}).json()
            assert plain["response"]["status"] == "application error"
            assert plain["response"]["result"] == {"error": f"read {path}: No such file or directory"}
            body = {"exec": {"kind": "wasm:wasi", "code": code}, "annotations": [{"key": "dir", "value": "/etc"}]}
            assert api.put("/namespaces/_/actions/etc", json=body).status_code == 200
            denied = invoke(api, "etc", {"op": "read", "path": "/etc/passwd"}).json()
            assert denied["response"]["status"] == "action developer error"
            assert denied["response"]["result"] == {"error": "The directory /etc is not granted by the operator."}
    finally:
        assert stop_standalone(server) == 0
