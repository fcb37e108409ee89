"""Many sleeping WASM activations at once (issue 17): a sleeping run holds no file descriptor, costs a bounded
amount of memory, and thousands of sleepers on a real standalone server all end with a record.

The descriptor hard limit (20,000 on the benchmark machine) bounded the executor when each run held its stdio
memfds; stdout and stderr are now in-memory buffers (executor_wasm/stdio.py).
"""

from __future__ import annotations

import asyncio
import base64
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import wasmtime

from executor_wasm.executor import WasmExecutor
from executor_wasm.settings import WasmSettings, module_cache_dir
from launcher.testing import Server, start_standalone, stop_standalone
from loadgen.transport import LendingTransport
from pywhisk.executor import InitRequest, InstanceSpec
from tests.conftest import wasm_code
from tests.executors import LOG_LIMIT, run_request
from tests.executors import wasm_module as action_bytes

pytestmark = pytest.mark.integration

SLEEPERS = 200
# What one sleeping run may add to the process's RSS: measured ~85 KiB (its thread's stack pages, the Store, the
# guest's touched memory); a descriptor, a buffer per stream or a copy of the module per run would show here.
RSS_PER_SLEEPER_BYTES = 1_048_576


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def rss_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def until(condition: Callable[[], bool], what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"not reached within {timeout_s} s: {what}"
        await asyncio.sleep(0.01)


async def deploy(executor: WasmExecutor, code: str, name: str) -> str:
    instance_id = uuid.uuid4().hex
    await executor.create(InstanceSpec(instance_id=instance_id, kind="wasm:wasi", memory_mb=128))
    ready = await executor.init(instance_id, InitRequest(name=name, code=code, binary=True), 30_000, LOG_LIMIT)
    assert ready.status == 200, ready
    return instance_id


async def test_sleeping_runs_hold_no_descriptor_and_little_memory(tmp_path: Path) -> None:
    executor = WasmExecutor(WasmSettings(threads=2, max_runs=SLEEPERS + 8), module_cache_dir(tmp_path))
    await executor.start()
    runs: list[asyncio.Task[object]] = []
    try:
        instance_id = await deploy(executor, base64.b64encode(action_bytes("sleep")).decode(), "sleep")
        # Warm: the module is loaded and as many worker threads exist as the sleepers will use.
        warm = [executor.run(instance_id, run_request({"ms": 0}), 10_000, LOG_LIMIT) for _ in range(SLEEPERS)]
        assert all(result.status == 200 for result in await asyncio.gather(*warm))
        before, rss_before = open_descriptors(), rss_bytes()

        runs = [
            asyncio.create_task(executor.run(instance_id, run_request({"ms": 600_000}), 600_000, LOG_LIMIT))
            for _ in range(SLEEPERS)
        ]
        await until(lambda: executor.runs_asleep == SLEEPERS, f"{SLEEPERS} guests asleep")
        during, rss_during = open_descriptors(), rss_bytes()
    finally:
        await executor.close()  # wakes every sleeper: its run ends at once
    await asyncio.gather(*runs, return_exceptions=True)

    assert during == before, f"{during - before} descriptors held by {SLEEPERS} sleeping runs"
    assert open_descriptors() <= before
    assert rss_during - rss_before < SLEEPERS * RSS_PER_SLEEPER_BYTES


def fd_write_call(fd: int, iovs_ptr: int, iovs_len: int) -> str:
    """A module that calls ``fd_write(fd, iovs_ptr, iovs_len, 64)`` over an iovec of "hi\\n" at 16 and exits with the
    errno: what the host function answered becomes the action's exit status."""
    return base64.b64encode(
        bytes(
            wasmtime.wat2wasm(f"""
            (module
              (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
              (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
              (memory (export "memory") 1)
              (data (i32.const 16) "\\20\\00\\00\\00\\03\\00\\00\\00")
              (data (i32.const 32) "hi\\n")
              (func (export "_start")
                (call $exit (call $w (i32.const {fd}) (i32.const {iovs_ptr}) (i32.const {iovs_len}) (i32.const 64)))))
            """)
        )
    ).decode()


@pytest.mark.parametrize(
    ("fd", "iovs_ptr", "iovs_len", "errno"),
    [
        (1, 16, 1, 0),  # stdout: written
        (2, 16, 1, 0),  # stderr: written
        (0, 16, 1, 8),  # stdin: EBADF
        (3, 16, 1, 8),  # no such descriptor (a preopen is read-only anyway): EBADF
        (-1, 16, 1, 8),
        (1, 16, 1025, 28),  # more iovecs than IOV_MAX: EINVAL, as writev
        (1, 65_536 - 4, 1, 21),  # the iovec array leaves the memory: EFAULT
        (1, -8, 1, 21),  # a pointer that is negative as i32 is a large unsigned offset
    ],
)
async def test_stdout_writes_of_every_shape_get_the_errno_a_file_would_give(
    tmp_path: Path, fd: int, iovs_ptr: int, iovs_len: int, errno: int
) -> None:
    executor = WasmExecutor(WasmSettings(threads=2), module_cache_dir(tmp_path))
    await executor.start()
    try:
        instance_id = await deploy(executor, fd_write_call(fd, iovs_ptr, iovs_len), "writer")
        result = await executor.run(instance_id, run_request({}), 10_000, LOG_LIMIT)
    finally:
        await executor.close()
    if errno:
        assert result.status == 502 and f"status {errno}" in (result.body or ""), result
    else:
        assert result.status == 200, result
        logs = [line.split(": ", 1)[1] for line in result.logs]
        assert (result.body, logs) == (("hi", []) if fd == 1 else ("", ["hi"]))  # stdout's last line is the result


# --- a real standalone server ------------------------------------------------------------------------------

MANY = 2_000


@pytest.fixture(scope="module")
def roomy_standalone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A standalone server whose pool, executor and throttles hold ``MANY`` sleepers at once."""
    env = {
        "PYWHISK_USER_MEMORY_MB": str(MANY * 128 * 2),  # the pool charges every run its limits.memory
        "PYWHISK_WASM_MAX_RUNS": str(MANY + 100),
        "PYWHISK_INVOCATIONS_PER_MINUTE": str(MANY * 10),
        "PYWHISK_CONCURRENT_INVOCATIONS": str(MANY * 10),
    }
    server = start_standalone(tmp_path_factory.mktemp("many-sleepers"), env=env)
    yield server
    code = stop_standalone(server)
    assert code == 0, f"standalone exited with {code}:\n{server.log_path.read_text()}"


async def test_two_thousand_sleepers_at_once_all_succeed_and_are_recorded(roomy_standalone: Server) -> None:
    async with httpx.AsyncClient(
        base_url=f"{roomy_standalone.apihost}/api/v1",
        auth=tuple(roomy_standalone.auth.split(":", 1)),  # type: ignore[arg-type]
        timeout=60.0,
        transport=LendingTransport(32),
    ) as api:
        put = await api.put(
            "/namespaces/_/actions/sleeper", json={"exec": {"kind": "wasm:wasi", "code": wasm_code("sleep")}}
        )
        assert put.status_code == 200, put.text

        async def accepted() -> str:
            response = await api.post("/namespaces/_/actions/sleeper", params={"blocking": "false"}, json={"ms": 2000})
            assert response.status_code == 202, response.text
            return str(response.json()["activationId"])

        # Non-blocking, as `loadgen capacity --non-blocking`: the server holds no connection per sleeper.
        ids = await asyncio.gather(*(accepted() for _ in range(MANY)))

        async def record(activation_id: str) -> dict[str, object]:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                response = await api.get(f"/namespaces/_/activations/{activation_id}")
                if response.status_code == 200:
                    return dict(response.json())
                assert response.status_code == 404, response.text
                await asyncio.sleep(0.5)
            raise AssertionError(f"no record for {activation_id}")

        records = await asyncio.gather(*(record(activation_id) for activation_id in ids))

    assert len({r["activationId"] for r in records}) == MANY
    failed = [r["response"] for r in records if r["response"]["status"] != "success"]  # type: ignore[index]
    assert not failed, f"{len(failed)} of {MANY} failed, e.g. {failed[0]}"
    assert all(r["response"]["result"] == {"slept": 2000} for r in records)  # type: ignore[index]
