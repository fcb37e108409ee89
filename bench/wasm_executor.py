"""Micro-benchmark of the in-process Wasmtime executor (not a test).

    python bench/wasm_executor.py [-n 2000] [--module actions/wasm/hello.wasm]

Times, through the public ``Executor`` API on one event loop:
- warm: N sequential ``run`` calls of one initialised instance;
- cold: N ``create + init + run + destroy`` cycles with the module already loaded (in-memory LRU);
- cold, from disk: the same, with the in-memory LRU emptied before each cycle, so ``init`` maps the
  precompiled artifact (``Module.deserialize_file``) and builds a new ``InstancePre``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import platform
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

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


async def main(n: int, module: Path, wasm: bytes) -> None:
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
        finally:
            await executor.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2000)
    parser.add_argument("--module", type=Path, default=REPO / "actions" / "wasm" / "hello.wasm")
    args = parser.parse_args()
    asyncio.run(main(args.n, args.module, args.module.read_bytes()))
