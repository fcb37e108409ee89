"""The Docker executor's crun-direct engine (executor_docker/oci.py) against real crun, dockerd (for images only)
and pywhisk's runtime images: actions annotated ``network: false`` start without dockerd."""

from __future__ import annotations

import errno
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import docker
import pytest
import pytest_asyncio

from executor_docker.containers import INSTANCE_LABEL, PYTHON_IMAGE
from executor_docker.executor import DockerExecutor
from executor_docker.settings import DockerSettings
from pywhisk.activation import Messages
from pywhisk.errors import ExecutorError
from pywhisk.executor import ExecutorEnvironment, InitRequest, InstanceSpec, ProxyResult
from tests.docker_service import RuntimeImages, docker_daemon  # noqa: F401
from tests.executors import LOG_LIMIT, log_text, run_request

pytestmark = [pytest.mark.integration, pytest.mark.docker]

HELLO = (Path(__file__).resolve().parents[2] / "actions" / "python" / "hello.py").read_text()
NO_NETWORK = {"network": False}


def crun_ids() -> list[str]:
    return subprocess.run(["crun", "list", "--quiet"], capture_output=True, text=True, check=True).stdout.split()


def crun_state(container_id: str) -> str:
    return subprocess.run(["crun", "state", container_id], capture_output=True, text=True, check=True).stdout


def cgroup_of(container_id: str) -> Path:
    return Path(f"/sys/fs/cgroup/memory/pywhisk/{container_id}")


@pytest.fixture(scope="module")
def client(docker_daemon: RuntimeImages) -> Iterator[docker.DockerClient]:  # noqa: F811
    if shutil.which("crun") is None:
        pytest.skip("crun is not installed (deploy/local/dockerd.sh up installs it)")
    docker_client = docker.from_env()
    yield docker_client
    docker_client.close()


@pytest.fixture(scope="module")
def state_dir() -> Iterator[Path]:
    # Short: the proxy's Unix socket lives under it (sun_path holds 108 bytes).
    directory = Path(tempfile.mkdtemp(prefix="oci", dir="/tmp"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def direct_executor(client: docker.DockerClient, state_dir: Path, data_dir: Path, invoker_id: int) -> DockerExecutor:
    settings = DockerSettings(engine="crun-direct", oci_state_dir=state_dir)
    environment = ExecutorEnvironment(data_dir=data_dir, invoker_id=invoker_id)
    return DockerExecutor(environment, client, settings=settings)


@pytest_asyncio.fixture(scope="module")
async def executor(
    client: docker.DockerClient, state_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[DockerExecutor]:
    direct = direct_executor(client, state_dir, tmp_path_factory.mktemp("oci"), 0)
    await direct.start()
    assert direct.oci is not None
    yield direct
    await direct.close()


async def deploy(
    executor: DockerExecutor, code: str, *, memory_mb: int = 256, kind: str = "python:3.11"
) -> tuple[str, ProxyResult]:
    instance_id = uuid.uuid4().hex
    spec = InstanceSpec(instance_id=instance_id, kind=kind, memory_mb=memory_mb, annotations=NO_NETWORK)
    await executor.create(spec)
    return instance_id, await executor.init(instance_id, InitRequest(name="test", code=code), 10_000, LOG_LIMIT)


async def invoke(
    executor: DockerExecutor, code: str, *, memory_mb: int = 256, kind: str = "python:3.11"
) -> ProxyResult:
    instance_id, ready = await deploy(executor, code, memory_mb=memory_mb, kind=kind)
    assert ready.status == 200, ready
    try:
        return await executor.run(instance_id, run_request({"name": "Ada"}), 10_000, LOG_LIMIT)
    finally:
        await executor.destroy(instance_id)


def container_of(executor: DockerExecutor, instance_id: str) -> str:
    assert executor.oci is not None
    return executor.oci.container_id(instance_id)


async def test_hello_runs_in_a_crun_container_that_dockerd_does_not_know(
    executor: DockerExecutor, client: docker.DockerClient
) -> None:
    instance_id, ready = await deploy(executor, HELLO)
    assert ready.status == 200, ready
    assert container_of(executor, instance_id) in crun_ids()
    assert client.api.containers(all=True, filters={"label": f"{INSTANCE_LABEL}={instance_id}"}) == []
    for _ in range(2):  # cold, then warm on the kept-alive Unix socket connection
        result = await executor.run(instance_id, run_request({"name": "Ada"}), 10_000, LOG_LIMIT)
        assert (result.status, result.body) == (200, '{"greeting": "Hello, Ada!"}')
    await executor.destroy(instance_id)


async def test_nodejs_runs_on_its_unix_socket_too(executor: DockerExecutor) -> None:
    code = "function main(args) { console.log('hi'); return {greeting: `Hello, ${args.name}!`}; }"
    result = await invoke(executor, code, kind="nodejs:18")
    assert (result.status, result.body) == (200, '{"greeting":"Hello, Ada!"}')
    assert log_text(result) == ["stdout: hi"]


async def test_logs_of_both_streams_come_per_activation_cut_at_the_sentinels(executor: DockerExecutor) -> None:
    code = (
        "import sys\ndef main(args):\n    print('out', args['n'])\n"
        "    print('err', args['n'], file=sys.stderr)\n    return {}\n"
    )
    instance_id, _ = await deploy(executor, code)
    for n in (1, 2):
        result = await executor.run(instance_id, run_request({"n": n}), 10_000, LOG_LIMIT)
        assert result.status == 200
        assert sorted(log_text(result)) == [f"stderr: err {n}", f"stdout: out {n}"]  # no "logs missing" note
    await executor.destroy(instance_id)


async def test_an_action_past_its_timeout_is_killed_and_leaves_nothing_after_destroy(
    executor: DockerExecutor, state_dir: Path
) -> None:
    instance_id, _ = await deploy(executor, "def main(args):\n    print('spinning')\n    while True:\n        pass\n")
    result = await executor.run(instance_id, run_request(), 1000, LOG_LIMIT)
    assert (result.status, result.timed_out) == (None, True)
    assert log_text(result) == ["stdout: spinning", f"stderr: {Messages.logs_missing}"]
    container_id = container_of(executor, instance_id)
    await executor.destroy(instance_id)
    assert container_id not in crun_ids()
    assert not (state_dir / container_id).exists()
    assert not cgroup_of(container_id).exists()


async def test_an_action_past_its_memory_limit_has_exhausted_its_memory(executor: DockerExecutor) -> None:
    result = await invoke(executor, "def main(args):\n    return {'n': len(bytearray(512 << 20))}\n", memory_mb=128)
    assert (result.status, result.memory_exhausted, result.timed_out) == (None, True, False)


async def test_an_action_that_exits_has_not_exhausted_its_memory(executor: DockerExecutor) -> None:
    result = await invoke(executor, "import os\ndef main(args):\n    print('bye')\n    os._exit(1)\n")
    assert (result.status, result.exited, result.memory_exhausted) == (None, True, False)
    assert log_text(result) == ["stdout: bye", f"stderr: {Messages.logs_missing}"]


async def test_an_action_has_no_network_but_loopback(executor: DockerExecutor) -> None:
    code = (
        "import socket\n"
        "def main(args):\n"
        "    found = {}\n"
        "    for host in ('1.1.1.1', '172.17.0.1', '127.0.0.1'):\n"
        "        s = socket.socket()\n"
        "        s.settimeout(1)\n"
        "        found[host] = s.connect_ex((host, 9))\n"
        "        s.close()\n"
        "    found['interfaces'] = [name for _, name in socket.if_nameindex()]\n"
        "    return found\n"
    )
    result = await invoke(executor, code)
    assert result.status == 200, result
    found = __import__("json").loads(result.body)
    assert found["interfaces"] == ["lo"]
    assert found["1.1.1.1"] == found["172.17.0.1"] == errno.ENETUNREACH  # no route out, not even to the host
    assert found["127.0.0.1"] == errno.ECONNREFUSED  # loopback is up; nothing listens on port 9


async def test_limits_and_no_privileges(executor: DockerExecutor) -> None:
    code = (
        "import os, resource\n"
        "def main(args):\n"
        "    status = dict(l.split(':', 1) for l in open('/proc/self/status').read().splitlines())\n"
        "    try:\n"
        "        open('/action/x', 'w')\n"
        "        root = 'writable'\n"
        "    except OSError:\n"
        "        root = 'read-only'\n"
        "    return {'uid': os.getuid(), 'nofile': resource.getrlimit(resource.RLIMIT_NOFILE)[0],\n"
        "            'caps': status['CapEff'].strip(), 'nnp': status['NoNewPrivs'].strip(), 'root': root}\n"
    )
    result = await invoke(executor, code)
    assert result.status == 200, result
    found = __import__("json").loads(result.body)
    assert found == {"uid": 1000, "nofile": 1024, "caps": "0000000000000000", "nnp": "1", "root": "read-only"}


async def test_seccomp_refuses_user_namespaces_and_the_keyring(executor: DockerExecutor) -> None:
    code = (
        "import ctypes, os\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "def errno_of(result):\n"
        "    return ctypes.get_errno() if result == -1 else 0\n"
        "def main(args):\n"
        "    status = dict(l.split(':', 1) for l in open('/proc/self/status').read().splitlines())\n"
        "    return {'seccomp': status['Seccomp'].strip(),\n"
        "            'unshare': errno_of(libc.unshare(0x10000000)),\n"  # CLONE_NEWUSER needs no capability
        "            'keyctl': errno_of(libc.syscall(250, 0, 0, 0, 0, 0))}\n"  # keyctl(KEYCTL_GET_KEYRING_ID)
    )
    result = await invoke(executor, code)
    assert result.status == 200, result
    assert __import__("json").loads(result.body) == {"seccomp": "2", "unshare": 1, "keyctl": 1}  # EPERM


async def test_a_paused_container_runs_again_after_resume(executor: DockerExecutor) -> None:
    instance_id, _ = await deploy(executor, HELLO)
    await executor.pause(instance_id)
    assert '"paused"' in crun_state(container_of(executor, instance_id))
    await executor.resume(instance_id)
    result = await executor.run(instance_id, run_request({"name": "Ada"}), 10_000, LOG_LIMIT)
    assert result.status == 200
    await executor.destroy(instance_id)


async def test_without_the_annotation_an_action_goes_through_dockerd(
    executor: DockerExecutor, client: docker.DockerClient
) -> None:
    instance_id = uuid.uuid4().hex
    await executor.create(InstanceSpec(instance_id=instance_id, kind="python:3.11", memory_mb=256))
    try:
        assert len(client.api.containers(all=True, filters={"label": f"{INSTANCE_LABEL}={instance_id}"})) == 1
        assert container_of(executor, instance_id) not in crun_ids()
    finally:
        await executor.destroy(instance_id)


async def test_a_second_executors_start_removes_only_its_own_leftovers(
    executor: DockerExecutor, client: docker.DockerClient, state_dir: Path, tmp_path: Path
) -> None:
    first, _ = await deploy(executor, HELLO)
    other = direct_executor(client, state_dir, tmp_path, 1)
    await other.start()
    try:
        second, _ = await deploy(other, HELLO)
        second_id = container_of(other, second)
        # An earlier run of the second owner, gone without cleaning up: its next start removes its leftovers.
        del other._containers[second]
        assert other.oci is not None
        restarted = direct_executor(client, state_dir, tmp_path, 1)
        await restarted.start()
        await restarted.close()
        assert second_id not in crun_ids()
        assert not (state_dir / second_id).exists()
        assert container_of(executor, first) in crun_ids()  # the first owner's container stays
        result = await executor.run(first, run_request({"name": "Ada"}), 10_000, LOG_LIMIT)
        assert result.status == 200
    finally:
        await other.close()
        await executor.destroy(first)


async def test_crun_failing_to_start_is_a_platform_error_with_its_message_and_leaves_nothing(
    client: docker.DockerClient, state_dir: Path, tmp_path: Path
) -> None:
    image = f"pywhisk-test/oci-no-entrypoint:{uuid.uuid4().hex[:8]}"
    made = client.api.create_container(PYTHON_IMAGE, entrypoint=["/nowhere"])
    client.api.commit(made["Id"], *image.split(":"))
    client.api.remove_container(made["Id"], force=True)
    settings = DockerSettings(engine="crun-direct", oci_state_dir=state_dir, oci_cache_dir=tmp_path / "cache")
    environment = ExecutorEnvironment(data_dir=tmp_path, invoker_id=2)
    broken = DockerExecutor(environment, client, images={"python:3.11": image}, settings=settings)
    await broken.start()
    instance_id = uuid.uuid4().hex
    try:
        with pytest.raises(ExecutorError, match=r"crun run of .* failed .*/nowhere"):
            await broken.create(
                InstanceSpec(instance_id=instance_id, kind="python:3.11", memory_mb=128, annotations=NO_NETWORK)
            )
    finally:
        await broken.close()
        client.api.remove_image(image, force=True)
    container_id = container_of(broken, instance_id)
    assert container_id not in crun_ids()
    assert not (state_dir / container_id).exists()
