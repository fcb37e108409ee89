"""Benchmark (not a test): what a sequence adds over its components' own durations.

    python bench/sequence_overhead.py                  # starts its own standalone server in a temp dir
    python bench/sequence_overhead.py --distributed    # 1 controller + 2 invokers over deploy/local/services

Warm, sequential, blocking invokes of one `hello` WASM action and of a sequence of three (`hello` thrice: the
greeting of one is the params of the next). For each, client-measured latency and the record's ``duration``
(for the sequence, the sum of its components'). The sequence's overhead per component is

    (sequence latency - sequence duration - (hello latency - hello duration)) / 3

what a sequence costs on top of one invoke's fixed cost (HTTP, authentication, the record), per component:
the controller's bookkeeping, one bus round trip and one record per component, and the sequence's own record.
Medians of --warm invokes each.
"""

from __future__ import annotations

import argparse
import base64
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from launcher.testing import start_deployment, start_standalone, stop_standalone

REPO = Path(__file__).resolve().parent.parent
COMPONENTS = 3


def measure(api: httpx.Client, name: str, n: int) -> tuple[list[float], list[float]]:
    """Latencies (ms) and record durations (ms) of ``n`` blocking invokes of ``name``."""
    latencies: list[float] = []
    durations: list[float] = []
    for _ in range(n):
        started = time.perf_counter()
        response = api.post(f"/namespaces/_/actions/{name}?blocking=true", json={"name": "Ada"})
        latencies.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.text
        record: dict[str, Any] = response.json()
        durations.append(record["duration"])
    return latencies, durations


def bench(api: httpx.Client, warm: int) -> None:
    code = base64.b64encode((REPO / "actions" / "wasm" / "hello.wasm").read_bytes()).decode()
    hello = {"exec": {"kind": "wasm:wasi", "code": code}}
    put = api.put("/namespaces/_/actions/bench-hello?overwrite=true", json=hello)
    assert put.status_code == 200, put.text
    sequence = {"exec": {"kind": "sequence", "components": ["/_/bench-hello"] * COMPONENTS}}
    put = api.put("/namespaces/_/actions/bench-hello3?overwrite=true", json=sequence)
    assert put.status_code == 200, put.text
    measure(api, "bench-hello", 20)  # warm the instances up
    measure(api, "bench-hello3", 20)

    hello_latency, hello_duration = measure(api, "bench-hello", warm)
    seq_latency, seq_duration = measure(api, "bench-hello3", warm)

    med = statistics.median
    one_fixed = med(hello_latency) - med(hello_duration)
    seq_fixed = med(seq_latency) - med(seq_duration)
    print(f"hello        latency p50 {med(hello_latency):7.2f} ms  duration p50 {med(hello_duration):6.2f} ms")
    print(f"3 x hello    latency p50 {med(seq_latency):7.2f} ms  duration p50 {med(seq_duration):6.2f} ms (sum)")
    print(f"fixed cost of one invoke (latency - duration):      {one_fixed:6.2f} ms")
    print(f"sequence latency - its components' durations:      {seq_fixed:6.2f} ms")
    print(f"overhead per component over one invoke's fixed cost: {(seq_fixed - one_fixed) / COMPONENTS:6.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warm", type=int, default=300, help="sequential warm invokes of each")
    parser.add_argument("--distributed", action="store_true", help="start 1 controller + 2 invokers instead")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pywhisk-bench-") as work:
        if args.distributed:
            deployment = start_deployment("127.0.0.1:9092", "http://127.0.0.1:5984", Path(work))
            try:
                with deployment.client() as api:
                    bench(api, args.warm)
            finally:
                deployment.stop()
        else:
            server = start_standalone(Path(work))
            try:
                with server.client() as api:
                    bench(api, args.warm)
            finally:
                stop_standalone(server)


if __name__ == "__main__":
    main()
