"""Micro-benchmark of the in-process Wasmtime executor (not a test).

    python bench/wasm_executor.py [-n 2000] [--module actions/wasm/hello.wasm] [--compiles 50] [--zip-bomb]

Times, through the public ``Executor`` API on one event loop:
- warm: N sequential ``run`` calls of one initialised instance;
- cold: N ``create + init + run + destroy`` cycles with the module already loaded (in-memory LRU);
- cold, from disk: the same, with the in-memory LRU emptied before each cycle, so ``init`` maps the
  precompiled artifact (``Module.deserialize_file``) and builds a new ``InstancePre``;
- cold burst: 30 ``init`` calls at once of new instances of the loaded module (a warm action scaling out),
  with the event loop's CPU per burst;
- first compile: ``--compiles`` cycles with a module never seen before (the module plus a custom section
  holding a counter), compiled by a compiler process (compiler.py), against the same compile done
  in-process (``wasmtime.Module`` + serialize + write + ``deserialize_file``: what init did before);
- ``--zip-bomb``: the peak RSS growth of a child process decoding a 1 GiB deflate bomb (~1 MB) with
  ``decode_module``, against the decoding before it counted bytes (``zipfile`` trusting ``file_size``).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import wasmtime

from executor_wasm.cache import create_engine
from executor_wasm.executor import WasmExecutor
from executor_wasm.settings import WasmSettings, module_cache_dir
from pywhisk.executor import InitRequest, InstanceSpec, RunRequest

REPO = Path(__file__).resolve().parent.parent
TIMEOUT_MS = 60_000
LOG_LIMIT = 10 * 1_048_576


def run_request(activation: int) -> RunRequest:
    return RunRequest(
        value={"name": "bench"},
        namespace="guest",
        action_name="/guest/hello",
        action_version="0.0.1",
        activation_id=f"{activation:032x}",
        transaction_id="bench",
        deadline=str(int(time.time() * 1000) + TIMEOUT_MS),
    )


async def measure(n: int, once: Callable[[int], Awaitable[None]]) -> list[float]:
    for i in range(min(50, n)):  # warm-up: first calls pay for lazy imports and allocations
        await once(-1 - i)
    samples = []
    for i in range(n):
        started = time.perf_counter()
        await once(i)
        samples.append((time.perf_counter() - started) * 1e6)
    return samples


def report(label: str, samples: list[float]) -> None:
    p50 = statistics.median(samples)
    p99 = statistics.quantiles(samples, n=100)[98]
    mean = statistics.fmean(samples)
    print(f"{label:<44} n={len(samples):<6} p50 {p50:8.1f} µs   mean {mean:8.1f} µs   p99 {p99:8.1f} µs")


async def main(n: int, module: Path, wasm: bytes, compiles: int = 0) -> None:
    code = base64.b64encode(wasm).decode()
    init = InitRequest(name="hello", code=code, binary=True)
    with tempfile.TemporaryDirectory() as data_dir:
        executor = WasmExecutor(WasmSettings(), module_cache_dir(Path(data_dir)))
        await executor.start()
        try:
            await executor.create(InstanceSpec(instance_id="warm", kind="wasm:wasi", memory_mb=256))
            first = await executor.init("warm", init, TIMEOUT_MS, LOG_LIMIT)
            assert first.status == 200, first

            async def warm(i: int) -> None:
                result = await executor.run("warm", run_request(i), TIMEOUT_MS, LOG_LIMIT)
                assert result.status == 200, result

            async def cold(i: int, *, from_disk: bool = False) -> None:
                instance_id = f"cold-{i}"
                if from_disk:
                    executor.cache.clear_memory()
                await executor.create(InstanceSpec(instance_id=instance_id, kind="wasm:wasi", memory_mb=256))
                ready = await executor.init(instance_id, init, TIMEOUT_MS, LOG_LIMIT)
                result = await executor.run(instance_id, run_request(i), TIMEOUT_MS, LOG_LIMIT)
                await executor.destroy(instance_id)
                assert ready.status == 200 and result.status == 200, (ready, result)

            print(f"{module.name} ({len(wasm)} bytes), {platform.machine()}, {platform.python_version()}")
            report("warm run (one instance, sequential)", await measure(n, warm))
            report("cold create+init+run+destroy (LRU warm)", await measure(n, cold))
            report(
                "cold create+init+run+destroy (from disk)",
                await measure(n, lambda i: cold(i, from_disk=True)),
            )
            await cold_burst(executor, init, rounds=max(1, n // 200))
            if compiles:
                fresh = iter(range(10**9))

                async def first_compile(i: int) -> None:
                    unique = InitRequest(name="hello", code=base64.b64encode(with_counter(wasm, next(fresh))).decode())
                    await executor.create(InstanceSpec(instance_id=f"new-{i}", kind="wasm:wasi", memory_mb=256))
                    ready = await executor.init(f"new-{i}", unique, TIMEOUT_MS, LOG_LIMIT)
                    await executor.destroy(f"new-{i}")
                    assert ready.status == 200, ready

                engine = create_engine()
                artifact = Path(data_dir) / "in-process.cwasm"

                async def in_process_compile(i: int) -> None:
                    module = wasmtime.Module(engine, with_counter(wasm, next(fresh)))
                    artifact.write_bytes(module.serialize())
                    wasmtime.Module.deserialize_file(engine, str(artifact))

                report("first compile, init in a compiler process", await measure(compiles, first_compile))
                report("first compile in-process (before)", await measure(compiles, in_process_compile))
        finally:
            await executor.close()


async def cold_burst(executor: WasmExecutor, init: InitRequest, rounds: int, size: int = 30) -> None:
    """``size`` new instances of the loaded module initialised at once (a warm action's runs scaling out, or a
    flood of concurrent runs of one action): each init's latency, the burst's wall time and the event loop's CPU."""
    inits: list[float] = []
    walls: list[float] = []
    loop_cpu: list[float] = []

    async def one(i: int) -> None:
        await executor.create(InstanceSpec(instance_id=f"burst-{i}", kind="wasm:wasi", memory_mb=256))
        started = time.perf_counter()
        ready = await executor.init(f"burst-{i}", init, TIMEOUT_MS, LOG_LIMIT)
        inits.append((time.perf_counter() - started) * 1e6)
        await executor.destroy(f"burst-{i}")
        assert ready.status == 200, ready

    for r in range(rounds):
        cpu, wall = time.thread_time(), time.perf_counter()
        await asyncio.gather(*(one(r * size + i) for i in range(size)))
        walls.append((time.perf_counter() - wall) * 1e6)
        loop_cpu.append((time.thread_time() - cpu) * 1e6)
    report(f"cold init, {size} at once (LRU warm)", inits)
    print(
        f"{'':<44} burst wall p50 {statistics.median(walls):8.1f} µs   "
        f"event loop CPU p50 {statistics.median(loop_cpu):8.1f} µs per burst of {size}"
    )


def with_counter(wasm: bytes, counter: int) -> bytes:
    """``wasm`` plus a custom section holding ``counter``: the same code under a new digest."""
    payload = b"\x07counter" + counter.to_bytes(8, "little")
    return wasm + b"\x00" + bytes([len(payload)]) + payload


BOMB_PROBE = """
import base64, io, resource, sys, zipfile
from executor_wasm.cache import InvalidModule
from executor_wasm.executor import decode_module

def before(code):  # executor_wasm/executor.py's decode_module until issue 12: trusts file_size
    data = base64.b64decode(code)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        member = archive.infolist()[0]
        if member.file_size > 256 * 1_048_576:
            raise InvalidModule("too large")
        return archive.read(member)

code = base64.b64encode(open(sys.argv[2], "rb").read()).decode()
start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    (before if sys.argv[1] == "before" else decode_module)(code)
except Exception as error:
    print(type(error).__name__, str(error)[:80], file=sys.stderr)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - start)
"""


def zip_bomb_rss() -> None:
    """Peak RSS growth (KiB) decoding a 1 GiB deflate bomb whose header claims 1,000 bytes."""
    import io
    import struct
    import zipfile

    buffer = io.BytesIO()
    zeros = bytes(1_048_576)
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive, archive.open("bomb.wasm", "w") as member:
        for _ in range(1024):
            member.write(zeros)
    honest = bytes(buffer.getvalue())
    for claim, size in (("1,000 bytes", 1_000), ("64 MiB (the budget)", 64 * 1_048_576), ("1 GiB (honest)", None)):
        data = bytearray(honest)
        if size is not None:
            cd_offset = struct.unpack_from("<L", data, len(data) - 6)[0]
            struct.pack_into("<L", data, cd_offset + 24, size)
            struct.pack_into("<L", data, struct.unpack_from("<L", data, cd_offset + 42)[0] + 22, size)
        print(f"1 GiB deflate bomb, {len(data)} bytes zipped, header claims {claim}")
        bomb_rss(bytes(data))


def bomb_rss(data: bytes) -> None:
    with tempfile.NamedTemporaryFile(suffix=".zip") as bomb:
        bomb.write(data)
        bomb.flush()
        for which in ("before", "after"):
            done = subprocess.run(
                [sys.executable, "-c", BOMB_PROBE, which, bomb.name], capture_output=True, text=True, check=True
            )
            print(f"  {which:<6} peak RSS growth {int(done.stdout) / 1024:8.1f} MiB   ({done.stderr.strip()})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2000)
    parser.add_argument("--module", type=Path, default=REPO / "actions" / "wasm" / "hello.wasm")
    parser.add_argument("--compiles", type=int, default=0, help="first-compile cycles (0: skip)")
    parser.add_argument("--zip-bomb", action="store_true", help="only the zip-bomb RSS measurement")
    args = parser.parse_args()
    if args.zip_bomb:
        zip_bomb_rss()
    else:
        asyncio.run(main(args.n, args.module, args.module.read_bytes(), args.compiles))
