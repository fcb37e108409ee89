"""The Docker executor against a real dockerd and pywhisk's runtime images, through the ``Executor`` seam."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import docker
import orjson
import pytest
import pytest_asyncio

from executor_docker.containers import INSTANCE_LABEL, OWNER_LABEL, SKELETON_IMAGE
from executor_docker.executor import DockerExecutor, UnknownInstance
from executor_docker.plugin import create_executor
from executor_docker.settings import DockerSettings
from pywhisk.activation import Messages
from pywhisk.errors import ActionStartupError, ExecutorError
from pywhisk.executor import ExecutorEnvironment, InitRequest, InstanceSpec, PausableExecutor, ProxyResult
from tests.docker_service import RuntimeImages, docker_daemon  # noqa: F401
from tests.executors import LOG_LIMIT, log_text, run_request

pytestmark = [pytest.mark.integration, pytest.mark.docker]

HELLO = (Path(__file__).resolve().parents[2] / "actions" / "python" / "hello.py").read_text()
SENTINEL = "XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX"


@pytest.fixture(scope="module")
def client(docker_daemon: RuntimeImages) -> Iterator[docker.DockerClient]:  # noqa: F811
    docker_client = docker.from_env()
    yield docker_client
    docker_client.close()


@pytest.fixture(scope="module")
def environment(tmp_path_factory: pytest.TempPathFactory) -> ExecutorEnvironment:
    return ExecutorEnvironment(data_dir=tmp_path_factory.mktemp("docker"))


@pytest_asyncio.fixture(scope="module")
async def executor(environment: ExecutorEnvironment, client: docker.DockerClient) -> AsyncIterator[DockerExecutor]:
    docker_executor = create_executor(environment)
    await docker_executor.start()
    yield docker_executor
    await docker_executor.close()


def require_crun(client: docker.DockerClient) -> None:
    if "crun" not in (client.api.info().get("Runtimes") or {}):
        pytest.skip("dockerd does not know the OCI runtime crun (deploy/local/dockerd.sh up registers it)")


@pytest_asyncio.fixture(scope="module")
async def crun_executor(environment: ExecutorEnvironment, client: docker.DockerClient) -> AsyncIterator[DockerExecutor]:
    """The executor with ``PYWHISK_DOCKER_RUNTIME=crun``, as another invoker (its own container owner)."""
    require_crun(client)
    crun = DockerExecutor(
        environment.model_copy(update={"invoker_id": 17}), client, settings=DockerSettings(runtime="crun")
    )
    await crun.start()
    yield crun
    await crun.close()


@pytest.fixture(params=["runc", "crun"])
def any_runtime(request: pytest.FixtureRequest) -> DockerExecutor:
    """The tests of what an OCI runtime could change (start, limits, kill, OOM, exit, pause) run under both."""
    found: DockerExecutor = request.getfixturevalue("executor" if request.param == "runc" else "crun_executor")
    return found


def containers_of(client: docker.DockerClient, instance_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = client.api.containers(all=True, filters={"label": f"{INSTANCE_LABEL}={instance_id}"})
    return found


async def deploy(
    executor: DockerExecutor, code: str, *, memory_mb: int = 256, kind: str = "python:3.11", **init: object
) -> tuple[str, ProxyResult]:
    instance_id = uuid.uuid4().hex
    await executor.create(InstanceSpec(instance_id=instance_id, kind=kind, memory_mb=memory_mb))
    request = InitRequest.model_validate({"name": "test", "code": code, **init})
    return instance_id, await executor.init(instance_id, request, 10_000, LOG_LIMIT)


async def invoke(
    executor: DockerExecutor,
    code: str,
    params: dict[str, object] | None = None,
    *,
    timeout_ms: int = 10_000,
    log_limit: int = LOG_LIMIT,
    memory_mb: int = 256,
) -> ProxyResult:
    instance_id, ready = await deploy(executor, code, memory_mb=memory_mb)
    assert ready.status == 200, ready
    try:
        return await executor.run(instance_id, run_request(params), timeout_ms, log_limit)
    finally:
        await executor.destroy(instance_id)


# --- results and logs --------------------------------------------------------------------------


async def test_hello_cold_then_warm_returns_the_greeting(any_runtime: DockerExecutor) -> None:
    executor = any_runtime
    instance_id, init = await deploy(executor, HELLO)
    assert (init.status, init.logs) == (200, [])
    try:
        cold = await executor.run(instance_id, run_request({"name": "Ada"}), 10_000, LOG_LIMIT)
        warm = await executor.run(instance_id, run_request({"name": "Grace"}), 10_000, LOG_LIMIT)
    finally:
        await executor.destroy(instance_id)
    assert (cold.status, orjson.loads(cold.body)) == (200, {"greeting": "Hello, Ada!"})
    assert (warm.status, orjson.loads(warm.body)) == (200, {"greeting": "Hello, Grace!"})
    assert cold.logs == warm.logs == []
    assert not (warm.timed_out or warm.memory_exhausted or warm.exited)
    assert warm.duration_ms is not None and warm.duration_ms > 0


async def test_logs_of_both_streams_come_per_activation_without_sentinels(executor: DockerExecutor) -> None:
    code = (
        "import sys\nprint('loading')\n"
        "def main(args):\n    print('out', args['n'])\n    print('err', args['n'], file=sys.stderr)\n"
        "    print('ünïcode ✓')\n    return {'n': args['n']}\n"
    )
    instance_id, _ = await deploy(executor, code)
    try:
        first = await executor.run(instance_id, run_request({"n": 1}), 10_000, LOG_LIMIT)
        second = await executor.run(instance_id, run_request({"n": 2}), 10_000, LOG_LIMIT)
    finally:
        await executor.destroy(instance_id)
    # The init's output is reported with the first run, as OpenWhisk reads logs once, after /run.
    assert sorted(log_text(first)) == sorted(["stdout: loading", "stdout: out 1", "stderr: err 1", "stdout: ünïcode ✓"])
    assert sorted(log_text(second)) == sorted(["stdout: out 2", "stderr: err 2", "stdout: ünïcode ✓"])
    assert not any(SENTINEL in line for line in first.logs + second.logs)


async def test_params_and_the_ow_environment_reach_the_action(executor: DockerExecutor) -> None:
    code = (
        "import os\ndef main(args):\n"
        "    return {'args': args, 'id': os.environ['__OW_ACTIVATION_ID'], 'x': os.environ['X']}\n"
    )
    instance_id, _ = await deploy(executor, code, env={"X": "init-param"})
    request = run_request({"text": "multi\nline ü", "n": [1, 2.5, None]})
    try:
        result = await executor.run(instance_id, request, 10_000, LOG_LIMIT)
    finally:
        await executor.destroy(instance_id)
    assert orjson.loads(result.body) == {"args": request.value, "id": request.activation_id, "x": "init-param"}


async def test_a_result_that_is_not_a_dictionary_is_the_proxys_502(executor: DockerExecutor) -> None:
    result = await invoke(executor, "def main(args):\n    return 42\n")
    assert result.status == 502
    assert orjson.loads(result.body) == {"error": "The action did not return a dictionary or array."}
    assert log_text(result)[-1] == f"stderr: {Messages.logs_missing}"


async def test_an_exception_is_answered_with_its_error_and_traceback(executor: DockerExecutor) -> None:
    result = await invoke(executor, "def main(args):\n    raise ValueError('boom')\n")
    # The proxy answers as OpenWhisk's Python launcher: 200 {"error": ...}, an application error.
    assert orjson.loads(result.body) == {"error": "boom"}
    assert "stderr: ValueError: boom" in log_text(result)


async def test_a_failing_init_is_the_proxys_answer_with_the_logs_so_far(executor: DockerExecutor) -> None:
    instance_id, init = await deploy(executor, "def main(args) this is not python\n")
    await executor.destroy(instance_id)
    assert init.status == 502 and "error" in orjson.loads(init.body)
    assert any("SyntaxError" in line for line in log_text(init))
    assert log_text(init)[-1] == f"stderr: {Messages.logs_missing}"


async def test_a_second_init_is_refused_by_the_proxy(executor: DockerExecutor) -> None:
    instance_id, _ = await deploy(executor, HELLO)
    try:
        again = await executor.init(instance_id, InitRequest(name="again", code=HELLO), 10_000, LOG_LIMIT)
    finally:
        await executor.destroy(instance_id)
    assert (again.status, orjson.loads(again.body)) == (403, {"error": "Cannot initialize the action more than once."})


async def test_logs_past_the_limit_are_truncated_and_the_next_run_is_clean(executor: DockerExecutor) -> None:
    code = "def main(args):\n    for i in range(args.get('lines', 0)):\n        print('x' * 99)\n    return {}\n"
    instance_id, _ = await deploy(executor, code)
    try:
        flood = await executor.run(instance_id, run_request({"lines": 5000}), 30_000, 64 * 1024)
        after = await executor.run(instance_id, run_request({"lines": 2}), 10_000, 64 * 1024)
    finally:
        await executor.destroy(instance_id)
    assert flood.status == 200
    assert len(flood.logs) == 64 * 1024 // 100 + 1  # each line costs 100 bytes
    assert log_text(flood)[-1] == f"stderr: {Messages.truncated_logs(64 * 1024)}"
    assert log_text(after) == ["stdout: " + "x" * 99] * 2


# --- the platform's limits ---------------------------------------------------------------------


async def test_an_action_past_its_timeout_is_killed_and_gone_after_destroy(
    any_runtime: DockerExecutor, client: docker.DockerClient
) -> None:
    executor = any_runtime
    instance_id, _ = await deploy(executor, "def main(args):\n    print('spinning')\n    while True:\n        pass\n")
    started = time.monotonic()
    result = await executor.run(instance_id, run_request(), 1000, LOG_LIMIT)
    assert 1.0 <= time.monotonic() - started < 5.0
    assert (result.status, result.timed_out) == (None, True)
    assert log_text(result) == ["stdout: spinning", f"stderr: {Messages.logs_missing}"]
    assert containers_of(client, instance_id)[0]["State"] == "exited"  # killed at once
    await executor.destroy(instance_id)
    assert containers_of(client, instance_id) == []


async def test_an_action_past_its_memory_limit_has_exhausted_its_memory(any_runtime: DockerExecutor) -> None:
    executor = any_runtime
    result = await invoke(executor, "def main(args):\n    return {'n': len(bytearray(512 << 20))}\n", memory_mb=128)
    assert result.status is None
    assert result.memory_exhausted
    assert not result.timed_out


async def test_an_action_that_exits_the_process_leaves_no_answer(any_runtime: DockerExecutor) -> None:
    executor = any_runtime
    result = await invoke(executor, "import os\ndef main(args):\n    print('bye')\n    os._exit(1)\n")
    assert (result.status, result.exited, result.memory_exhausted) == (None, True, False)
    assert log_text(result) == ["stdout: bye", f"stderr: {Messages.logs_missing}"]


async def test_containers_get_openwhisks_limits_and_no_privileges(
    any_runtime: DockerExecutor, client: docker.DockerClient
) -> None:
    executor = any_runtime
    instance_id, _ = await deploy(executor, HELLO, memory_mb=192)
    try:
        found = containers_of(client, instance_id)
        details = client.api.inspect_container(found[0]["Id"])
    finally:
        await executor.destroy(instance_id)
    host = details["HostConfig"]
    assert (host["Memory"], host["MemorySwap"]) == (192 << 20, 192 << 20)
    assert host["PidsLimit"] == 1024
    assert host["Ulimits"] == [{"Name": "nofile", "Soft": 1024, "Hard": 1024}]
    assert host["CpuShares"] == 1024 * 192 // executor.environment.user_memory_mb
    assert host["CapDrop"] == ["ALL"] and not host["Privileged"]
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["NetworkMode"] in ("default", "bridge")
    assert host["Runtime"] == executor.settings.runtime
    assert not any("docker.sock" in mount["Source"] for mount in details["Mounts"])
    assert details["Config"]["Labels"][OWNER_LABEL] == executor.owner


# --- pause, prewarm, kinds ----------------------------------------------------------------------


async def test_a_paused_container_runs_again_after_resume(
    any_runtime: DockerExecutor, client: docker.DockerClient
) -> None:
    executor = any_runtime
    assert isinstance(executor, PausableExecutor)
    instance_id, _ = await deploy(executor, HELLO)
    try:
        await executor.run(instance_id, run_request(), 10_000, LOG_LIMIT)
        await executor.pause(instance_id)
        assert containers_of(client, instance_id)[0]["State"] == "paused"
        await executor.resume(instance_id)
        result = await executor.run(instance_id, run_request({"name": "again"}), 10_000, LOG_LIMIT)
        # A run on a paused container (a missed resume) resumes it rather than hanging.
        await executor.pause(instance_id)
        missed = await executor.run(instance_id, run_request({"name": "missed"}), 10_000, LOG_LIMIT)
    finally:
        await executor.destroy(instance_id)
    assert orjson.loads(result.body) == {"greeting": "Hello, again!"}
    assert orjson.loads(missed.body) == {"greeting": "Hello, missed!"}


async def test_a_prewarmed_container_is_initialized_later(executor: DockerExecutor) -> None:
    instance_id = uuid.uuid4().hex
    await executor.create(InstanceSpec(instance_id=instance_id, kind="python:3", memory_mb=256))
    try:
        await executor.pause(instance_id)  # a stem cell waits paused in the pool
        await asyncio.sleep(1.5)
        await executor.resume(instance_id)
        started = time.perf_counter()
        init = await executor.init(instance_id, InitRequest(name="hello", code=HELLO), 10_000, LOG_LIMIT)
        result = await executor.run(instance_id, run_request({"name": "stem cell"}), 10_000, LOG_LIMIT)
        elapsed_ms = (time.perf_counter() - started) * 1000
    finally:
        await executor.destroy(instance_id)
    assert init.status == 200
    assert orjson.loads(result.body) == {"greeting": "Hello, stem cell!"}
    assert elapsed_ms < 1000  # no container start on this path


def established_to_the_proxy(client: docker.DockerClient, instance_id: str) -> int:
    """Connections to the proxy's port 8080 that are established, as the container's own /proc/net/tcp says."""
    (container,) = containers_of(client, instance_id)
    read = "import sys; sys.stdout.write(open('/proc/net/tcp').read())"
    table = client.api.exec_start(client.api.exec_create(container["Id"], ["python3", "-c", read]))
    # Columns: sl local_address rem_address st ...; 1F90 is 8080 and state 01 ESTABLISHED.
    rows = [line.split() for line in table.decode().splitlines()[1:]]
    return sum(1 for row in rows if row[1].endswith(":1F90") and row[3] == "01")


async def test_a_started_container_already_has_the_connection_its_first_init_uses(
    executor: DockerExecutor, client: docker.DockerClient
) -> None:
    instance_id = uuid.uuid4().hex
    await executor.create(InstanceSpec(instance_id=instance_id, kind="python:3", memory_mb=256))
    try:
        before = established_to_the_proxy(client, instance_id)
        init = await executor.init(instance_id, InitRequest(name="hello", code=HELLO), 10_000, LOG_LIMIT)
        result = await executor.run(instance_id, run_request({"name": "stem cell"}), 10_000, LOG_LIMIT)
        after = established_to_the_proxy(client, instance_id)
    finally:
        await executor.destroy(instance_id)
    # Opened while the container started (a stem cell: long before its activation), and kept alive for
    # the /init and the /run: a prewarmed start sets up no connection (issue 17).
    assert (before, after) == (1, 1)
    assert (init.status, orjson.loads(result.body)) == (200, {"greeting": "Hello, stem cell!"})


async def test_blackbox_without_an_image_runs_on_the_native_skeleton(executor: DockerExecutor) -> None:
    script = "#!/bin/sh\necho 'a log line'\necho '{\"native\": true}'\n"
    instance_id, init = await deploy(executor, script, kind="blackbox")
    try:
        result = await executor.run(instance_id, run_request(), 10_000, LOG_LIMIT)
    finally:
        await executor.destroy(instance_id)
    assert init.status == 200, init
    assert (result.status, orjson.loads(result.body)) == (200, {"native": True})
    assert log_text(result) == ["stdout: a log line"]


async def test_a_blackbox_image_of_the_users_runs_and_its_logs_are_not_waited_for(
    executor: DockerExecutor, client: docker.DockerClient
) -> None:
    # A user's image (here: the skeleton under another name). OpenWhisk only waits for the sentinels of
    # native images; any the image writes anyway are dropped.
    client.api.tag(SKELETON_IMAGE, "pywhisk-test/users-blackbox", "1")
    try:
        instance_id = uuid.uuid4().hex
        spec = InstanceSpec(
            instance_id=instance_id, kind="blackbox", memory_mb=128, image="pywhisk-test/users-blackbox:1"
        )
        await executor.create(spec)
        script = "#!/bin/sh\necho 'a log line'\necho '{\"users\": true}'\n"
        init = await executor.init(instance_id, InitRequest(name="b", code=script), 10_000, LOG_LIMIT)
        started = time.perf_counter()
        results = [await executor.run(instance_id, run_request(), 10_000, LOG_LIMIT) for _ in range(3)]
        elapsed_s = time.perf_counter() - started
        await executor.destroy(instance_id)
    finally:
        client.api.remove_image("pywhisk-test/users-blackbox:1")
    assert init.status == 200
    assert [orjson.loads(result.body) for result in results] == [{"users": True}] * 3
    assert [line for result in results for line in log_text(result)] == ["stdout: a log line"] * 3
    assert elapsed_s < 1.5  # no 2 s wait for sentinels per run


async def test_containers_start_concurrently(executor: DockerExecutor) -> None:
    ids = [uuid.uuid4().hex for _ in range(4)]
    specs = [InstanceSpec(instance_id=i, kind="python:3.11", memory_mb=128) for i in ids]
    await asyncio.gather(*(executor.create(spec) for spec in specs))
    try:
        inits = await asyncio.gather(
            *(executor.init(i, InitRequest(name="h", code=HELLO), 10_000, LOG_LIMIT) for i in ids)
        )
        assert [init.status for init in inits] == [200] * 4
        assert len({executor._containers[i].url for i in ids}) == 4
    finally:
        await asyncio.gather(*(executor.destroy(i) for i in ids))


# --- errors and lifecycle -------------------------------------------------------------------------


async def test_a_missing_blackbox_image_is_the_actions_fault_and_a_missing_runtime_image_the_platforms(
    executor: DockerExecutor, environment: ExecutorEnvironment, client: docker.DockerClient
) -> None:
    """A user's image that is not there is [OW] DockerContainer's BlackboxStartupError(imagePullError); a
    runtime image of pywhisk's that is not there is the platform's fault, with what to do about it."""
    with pytest.raises(ActionStartupError) as missing:
        await executor.create(
            InstanceSpec(instance_id="x", kind="blackbox", memory_mb=128, image="pywhisk-test/absent:1")
        )
    assert missing.value.args == ("Failed to pull container image 'pywhisk-test/absent:1'.",)
    ours = DockerExecutor(environment, client, images={"python:3.11": "pywhisk/action-python-v3.11:absent"})
    await ours.start()
    try:
        with pytest.raises(ExecutorError, match=r"not found; run deploy/local/build-images") as platform:
            await ours.create(InstanceSpec(instance_id="y", kind="python:3.11", memory_mb=128))
        assert not isinstance(platform.value, ActionStartupError)
    finally:
        await ours.close()


async def test_a_blackbox_image_that_cannot_start_is_the_actions_fault_and_leaves_no_container(
    executor: DockerExecutor, client: docker.DockerClient
) -> None:
    image = f"pywhisk-test/no-entrypoint:{uuid.uuid4().hex[:8]}"
    made = client.api.create_container(SKELETON_IMAGE, entrypoint=["/nowhere"])
    client.api.commit(made["Id"], *image.split(":"))
    client.api.remove_container(made["Id"], force=True)
    instance_id = uuid.uuid4().hex
    try:
        with pytest.raises(ActionStartupError) as broken:
            await executor.create(InstanceSpec(instance_id=instance_id, kind="blackbox", memory_mb=128, image=image))
    finally:
        client.api.remove_image(image, force=True)
    assert broken.value.args == (f"Failed to start container image '{image}'.",)
    assert containers_of(client, instance_id) == []


async def test_an_action_cannot_write_past_its_disk_quota_nor_outside_its_writable_paths(
    environment: ExecutorEnvironment, client: docker.DockerClient
) -> None:
    """The root filesystem is read-only; /tmp is a tmpfs of ``tmpfs_mb``: writing past it is ENOSPC in
    the action, the host's disk gets nothing, and the container's next activation works."""
    quota = DockerExecutor(environment, client, settings=DockerSettings(tmpfs_mb=8))
    await quota.start()
    code = (
        "import os\n"
        "def main(args):\n"
        "    out = {}\n"
        "    try:\n"
        "        open('/action/x', 'w').write('x')\n"
        "    except OSError as e:\n"
        "        out['root'] = e.strerror\n"
        "    written = 0\n"
        "    try:\n"
        "        with open('/tmp/fill', 'wb') as f:\n"
        "            while written < 64 << 20:\n"
        "                f.write(b'x' * (1 << 20)); f.flush(); written += 1 << 20\n"
        "    except OSError as e:\n"
        "        out['tmp'] = e.strerror\n"
        "    out['written_mb'] = written >> 20\n"
        "    os.remove('/tmp/fill')\n"
        "    return out\n"
    )
    instance_id = uuid.uuid4().hex
    try:
        await quota.create(InstanceSpec(instance_id=instance_id, kind="python:3.11", memory_mb=256))
        request = InitRequest.model_validate({"name": "fill", "code": code})
        assert (await quota.init(instance_id, request, 10_000, LOG_LIMIT)).status == 200
        first = await quota.run(instance_id, run_request({}), 10_000, LOG_LIMIT)
        second = await quota.run(instance_id, run_request({}), 10_000, LOG_LIMIT)
        details = client.api.inspect_container(containers_of(client, instance_id)[0]["Id"])
    finally:
        await quota.destroy(instance_id)
        await quota.close()
    result = orjson.loads(first.body)
    assert result["root"] == "Read-only file system"
    assert result["tmp"] == "No space left on device"
    assert result["written_mb"] <= 8
    assert orjson.loads(second.body) == result, "the quota is freed with the file: the container goes on"
    assert details["HostConfig"]["ReadonlyRootfs"] is True
    assert "size=8m" in details["HostConfig"]["Tmpfs"]["/tmp"]


async def test_a_kind_pinned_to_crun_runs_under_crun_and_the_others_under_the_setting(
    environment: ExecutorEnvironment, client: docker.DockerClient
) -> None:
    require_crun(client)
    pinned = DockerExecutor(
        environment.model_copy(update={"invoker_id": 18}), client, container_runtimes={"python:3.11": "crun"}
    )
    await pinned.start()
    try:
        on_crun, init = await deploy(pinned, HELLO, kind="python:3.11")
        on_runc, _ = await deploy(pinned, HELLO, kind="python:3")
        result = await pinned.run(on_crun, run_request({"name": "crun"}), 10_000, LOG_LIMIT)
        runtimes = [
            client.api.inspect_container(containers_of(client, i)[0]["Id"])["HostConfig"]["Runtime"]
            for i in (on_crun, on_runc)
        ]
    finally:
        await pinned.close()
    assert init.status == 200 and orjson.loads(result.body) == {"greeting": "Hello, crun!"}
    assert runtimes == ["crun", "runc"]


async def test_an_oci_runtime_dockerd_does_not_know_is_a_clear_error_and_no_container(
    environment: ExecutorEnvironment, client: docker.DockerClient
) -> None:
    unknown = DockerExecutor(
        environment.model_copy(update={"invoker_id": 19}), client, container_runtimes={"python:3.11": "kata"}
    )
    await unknown.start()
    try:
        with pytest.raises(ExecutorError, match=r"dockerd does not know the OCI runtime 'kata' \(it knows: .*runc"):
            await unknown.create(InstanceSpec(instance_id="kata", kind="python:3.11", memory_mb=128))
        assert containers_of(client, "kata") == []
    finally:
        await unknown.close()


async def test_unknown_kinds_and_instances_are_refused(executor: DockerExecutor) -> None:
    assert executor.kinds() == {"python:3.11", "python:3", "python:default", "nodejs:18", "nodejs:default", "blackbox"}
    with pytest.raises(ExecutorError, match="cannot run kind"):
        await executor.create(InstanceSpec(instance_id="z", kind="nodejs:20", memory_mb=128))
    with pytest.raises(UnknownInstance):
        await executor.run("no-such-instance", run_request(), 1000, LOG_LIMIT)
    await executor.destroy("no-such-instance")  # idempotent


async def test_start_removes_the_containers_of_an_earlier_run_and_no_others(
    executor: DockerExecutor, client: docker.DockerClient, tmp_path: Path
) -> None:
    crashed = DockerExecutor(ExecutorEnvironment(data_dir=tmp_path, invoker_id=7), client)
    await crashed.start()
    await crashed.create(InstanceSpec(instance_id="orphan", kind="python:3.11", memory_mb=128))
    survivor, _ = await deploy(executor, HELLO)  # another invoker's container
    try:
        restarted = DockerExecutor(ExecutorEnvironment(data_dir=tmp_path, invoker_id=7), client)
        await restarted.start()  # the same invoker, back after a crash
        assert containers_of(client, "orphan") == []
        assert containers_of(client, survivor) != []
        await restarted.close()
    finally:
        await crashed.close()
        await executor.destroy(survivor)


async def test_close_removes_every_container_it_created(
    environment: ExecutorEnvironment, client: docker.DockerClient
) -> None:
    own = DockerExecutor(environment.model_copy(update={"invoker_id": 99}), client)
    await own.start()
    ids = [uuid.uuid4().hex for _ in range(2)]
    for instance_id in ids:
        await own.create(InstanceSpec(instance_id=instance_id, kind="python:3.11", memory_mb=128))
    await own.pause(ids[0])  # paused ones too
    await own.close()
    assert [containers_of(client, i) for i in ids] == [[], []]


def test_no_daemon_means_no_executor(
    environment: ExecutorEnvironment, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-dockerd.sock")
    with pytest.raises(docker.errors.DockerException):
        create_executor(environment)
