"""Benchmark (not a test): the CPU the Prometheus metrics add to one warm invoke, hook by hook.

    python bench/metrics_cost.py [--n 50000]

Each hook on the invoke path is timed in this one process against the same work without it, side by side
(``time.process_time``, so other processes' load skews it less than wall time): the request middleware
around a trivial ASGI app, counting one activation record, one start, one bus publish (memory bus) and one
group-commit observation. A warm invoke meets each once (the bus twice: activation and completion), so their
sum is the metrics' share of an invoke's CPU (compare with ``bench/throughput.py``'s CPU µs per request).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from controller.metrics import INVOKE_ROUTE, RequestMetrics
from pywhisk.activation import Activation, ActivationResponse, StatusCode
from pywhisk.bus.memory import MemoryBus
from pywhisk.entities import KeyValue
from pywhisk.metrics import MeteredBus, Metrics

SCOPE = {"type": "http", "method": "POST", "path": "/api/v1/namespaces/_/actions/hello"}


async def _app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


async def _send(message: Any) -> None:
    return None


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b""}


def _record() -> Activation:
    limits = {"memory": 256, "timeout": 60000, "logs": 10, "concurrency": 1}
    annotations = [KeyValue(key="waitTime", value=1), KeyValue(key="kind", value="wasm:wasi")]
    return Activation(
        activationId="0" * 32,
        namespace="guest",
        name="hello",
        subject="guest",
        start=0,
        end=1,
        duration=1,
        response=ActivationResponse.of(StatusCode.SUCCESS, {"greeting": "Hello"}),
        annotations=[*annotations, KeyValue(key="limits", value=limits)],
    )


async def _per_call_us(call: Callable[[], Awaitable[Any]], n: int) -> float:
    started = time.process_time()
    for _ in range(n):
        await call()
    return (time.process_time() - started) / n * 1e6


async def main(n: int) -> None:
    metrics = Metrics()
    wrapped = RequestMetrics(_app, metrics, route=INVOKE_ROUTE)
    bus = MemoryBus()
    metered = MeteredBus(bus, metrics)
    await bus.subscribe("invoker0", "bench")
    record, flush = _record(), metrics.record_store_flush("sqlite")

    async def count_activation() -> None:
        metrics.record_activation(record, "guest")

    async def count_start() -> None:
        metrics.record_start("wasm", "warm")

    async def observe_flush() -> None:
        flush(10, 0.001)

    async def nothing() -> None:
        return None

    rows = [
        ("request middleware", lambda: _app(SCOPE, _receive, _send), lambda: wrapped(SCOPE, _receive, _send), 1),
        ("bus publish", lambda: bus.send("invoker0", b"x"), lambda: metered.send("invoker0", b"x"), 2),
        ("activation record", nothing, count_activation, 1),
        ("start", nothing, count_start, 1),
        ("group commit", nothing, observe_flush, 1),
    ]
    total = 0.0
    print(f"{'hook':<20} {'without µs':>11} {'with µs':>9} {'added µs':>9} {'per invoke':>11}")
    for name, without, with_, per_invoke in rows:
        base, hooked = await _per_call_us(without, n), await _per_call_us(with_, n)
        total += (hooked - base) * per_invoke
        print(f"{name:<20} {base:>11.2f} {hooked:>9.2f} {hooked - base:>9.2f} {per_invoke:>11}")
    print(f"added per warm invoke: {total:.1f} µs of CPU")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000, help="calls per measurement")
    asyncio.run(main(parser.parse_args().n))
