"""Benchmark (not a test): warm hello.py on WASM with and without the pooling allocator, interleaved.

    python bench/python_wasm_pooling.py            # 300 warm invokes on each server
    python bench/python_wasm_pooling.py --warm 1000 --cold 100
    git archive HEAD | tar -x -C /tmp/before        # the same settings, two versions of the code:
    python bench/python_wasm_pooling.py --code before=/tmp/before --code after=.

Two standalone servers run at once, by default one with ``PYWHISK_WASM_POOLING=0 PYWHISK_WASM_PYTHON_READY=0``
(every run instantiated and closed on its own path, on demand) and one with both on (docs/python-wasm.md,
"Pooling allocator"); with ``--code NAME=DIR`` (twice) each server runs the code of its directory instead, with
default settings. Blocking invokes alternate between the servers, so both see the same load on a shared machine.
Reports the records' ``duration`` and ``waitTime + duration`` of warm invokes, and with ``--cold N``
``waitTime + initTime + duration`` of N cold starts (N actions of the same source: the compiled code is cached
after the first), whole milliseconds as OpenWhisk records them, and the load average before and after.
"""

from __future__ import annotations

import argparse
import os
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
    parser.add_argument("--cold", type=int, default=0, help="cold starts on each server (one action each)")
    parser.add_argument("--code", action="append", default=[], metavar="NAME=DIR", help="a server running DIR's code")
    args = parser.parse_args()
    code = (REPO / "actions" / "python" / "hello.py").read_text()
    envs = {
        f"pooling+ready {name}": {"PYWHISK_WASM_POOLING": flag, "PYWHISK_WASM_PYTHON_READY": flag}
        for name, flag in CONFIGURATIONS.items()
    }
    if args.code:
        envs = {}
        for spec in args.code:
            name, _, directory = spec.partition("=")
            envs[name] = {"PYTHONPATH": str(Path(directory).resolve())}
        # `python -m pywhisk` looks in its working directory first: not this checkout's.
        os.chdir(tempfile.mkdtemp(prefix="pywhisk-pooling-cwd-"))
    print(f"load average before: {' '.join(f'{load:.2f}' for load in os.getloadavg())}")
    servers = {
        name: start_standalone(Path(tempfile.mkdtemp(prefix="pywhisk-pooling-")), env=env) for name, env in envs.items()
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
        colds: dict[str, list[int]] = {name: [] for name in clients}
        for index in range(args.cold):
            for name, client in clients.items():
                client.put(f"/namespaces/_/actions/cold{index}", json=body).raise_for_status()
                record = invoke(client, f"cold{index}")
                colds[name].append(annotation(record, "waitTime") + annotation(record, "initTime") + record["duration"])
        for _ in range(args.warm):
            for name, client in clients.items():
                record = invoke(client)
                durations[name].append(record["duration"])
                totals[name].append(annotation(record, "waitTime") + record["duration"])
        for name in clients:
            print(
                f"{name}: warm duration {summary(durations[name])};"
                f" waitTime+duration {summary(totals[name])};"
                f" duration <= 1 ms: {sum(d <= 1 for d in durations[name]) / max(1, args.warm):.0%}"
            )
            if colds[name]:
                print(f"{name}: cold waitTime+initTime+duration {summary(colds[name])}")
        print(f"load average after: {' '.join(f'{load:.2f}' for load in os.getloadavg())}")
    finally:
        for client in clients.values():
            client.close()
        for server in servers.values():
            stop_standalone(server)


def invoke(client: httpx.Client, action: str = "hello") -> dict[str, Any]:
    response = client.post(f"/namespaces/_/actions/{action}", params={"blocking": "true"}, json={"name": "bench"})
    response.raise_for_status()
    record: dict[str, Any] = response.json()
    return record


def annotation(record: dict[str, Any], key: str) -> int:
    value: int = next((pair["value"] for pair in record["annotations"] if pair["key"] == key), 0)
    return value


def summary(values: list[int]) -> str:
    if not values:
        return "none"
    ordered = sorted(values)
    p50, p90 = ordered[len(ordered) // 2], ordered[len(ordered) * 9 // 10]
    return f"p50 {p50} p90 {p90} mean {statistics.fmean(ordered):.2f} ms"


if __name__ == "__main__":
    main()
