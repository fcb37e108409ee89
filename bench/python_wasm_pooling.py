"""Benchmark (not a test): warm hello.py on WASM with and without the pooling allocator, interleaved.

    python bench/python_wasm_pooling.py            # 300 warm invokes on each server
    python bench/python_wasm_pooling.py --warm 1000

Two standalone servers run at once, one with ``PYWHISK_WASM_POOLING=0 PYWHISK_WASM_PYTHON_READY=0`` (every run
instantiated and closed on its own path, on demand) and one with both on (docs/python-wasm.md, "Pooling
allocator"); warm blocking invokes alternate between them, so both see the same load on a shared machine.
Reports the records' ``duration`` and ``waitTime + duration`` (whole milliseconds, as OpenWhisk records them).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path
from typing import Any

import httpx

from launcher.testing import GUEST_AUTH, start_standalone, stop_standalone

REPO = Path(__file__).resolve().parent.parent
CONFIGURATIONS = {"off": "0", "on": "1"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warm", type=int, default=300, help="warm invokes on each server")
    args = parser.parse_args()
    code = (REPO / "actions" / "python" / "hello.py").read_text()
    servers = {
        name: start_standalone(
            Path(tempfile.mkdtemp(prefix=f"pywhisk-pooling-{name}-")),
            env={"PYWHISK_WASM_POOLING": flag, "PYWHISK_WASM_PYTHON_READY": flag},
        )
        for name, flag in CONFIGURATIONS.items()
    }
    uuid, key = GUEST_AUTH.split(":")
    clients = {
        name: httpx.Client(base_url=f"{server.apihost}/api/v1", auth=(uuid, key), timeout=60)
        for name, server in servers.items()
    }
    try:
        body = {"exec": {"kind": "python:3", "code": code}, "annotations": [{"key": "executor", "value": "wasm"}]}
        for client in clients.values():
            client.put("/namespaces/_/actions/hello", json=body).raise_for_status()
            invoke(client)  # the cold start
        durations: dict[str, list[int]] = {name: [] for name in clients}
        totals: dict[str, list[int]] = {name: [] for name in clients}
        for _ in range(args.warm):
            for name, client in clients.items():
                record = invoke(client)
                wait = next(pair["value"] for pair in record["annotations"] if pair["key"] == "waitTime")
                durations[name].append(record["duration"])
                totals[name].append(wait + record["duration"])
        for name in clients:
            print(
                f"pooling+ready {name:3}: warm duration {summary(durations[name])};"
                f" waitTime+duration {summary(totals[name])};"
                f" duration <= 1 ms: {sum(d <= 1 for d in durations[name]) / args.warm:.0%}"
            )
    finally:
        for client in clients.values():
            client.close()
        for server in servers.values():
            stop_standalone(server)


def invoke(client: httpx.Client) -> dict[str, Any]:
    response = client.post("/namespaces/_/actions/hello", params={"blocking": "true"}, json={"name": "bench"})
    response.raise_for_status()
    record: dict[str, Any] = response.json()
    return record


def summary(values: list[int]) -> str:
    ordered = sorted(values)
    p50, p90 = ordered[len(ordered) // 2], ordered[len(ordered) * 9 // 10]
    return f"p50 {p50} p90 {p90} mean {statistics.fmean(ordered):.2f} ms"


if __name__ == "__main__":
    main()
