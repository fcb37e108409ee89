"""Benchmark (not a test): what the local CouchDB-API server's CPU pays per request and per activation record.

    python bench/couchdb_cost.py                  # deploy/local's pouchdb-server at http://127.0.0.1:5984
    python bench/couchdb_cost.py --requests 300 --records 1000

Distributed mode writes activation records in ``_bulk_docs`` batches (pywhisk/store/writer.py). Whether bigger
batches pay depends on how the server's cost splits between a request and a record in it: for pouchdb-server it
is ~4 ms of CPU per HTTP request and ~0.4 ms per record on the 2-vCPU VM of docs/benchmarks.md (issue 15,
2026-12-07), which is why an invoker's records linger for company (``PYWHISK_COUCHDB_RECORD_LINGER_MS``). This
prints the server's CPU (from /proc, the pid in deploy/local's pid file) per request of a few kinds, and per record
for ``_bulk_docs`` batches of 1 to 64 records shaped as a hello.wasm activation's. It needs the server on this
machine (for its CPU); it creates and deletes databases of its own.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.throughput import service_pids, tree_cpu_seconds

# A warm hello.wasm activation record as an invoker writes it (pywhisk/store/couchdb/activations.py).
RECORD: dict[str, object] = {
    "entityType": "activation",
    "namespace": "guest",
    "name": "throughput-hello",
    "version": "0.0.1",
    "subject": "guest",
    "start": 1_796_600_000_000,
    "end": 1_796_600_000_001,
    "duration": 1,
    "response": {"status": "success", "statusCode": 0, "success": True, "result": {"greeting": "Hello, wrk!"}},
    "logs": ["2026-12-07T06:00:00.000000Z stdout: hello"] * 2,
    "annotations": [
        {"key": "path", "value": "guest/throughput-hello"},
        {"key": "waitTime", "value": 1},
        {"key": "kind", "value": "wasm:wasi"},
        {"key": "timeout", "value": False},
        {"key": "limits", "value": {"timeout": 60000, "memory": 256, "logs": 10, "concurrency": 1}},
        {"key": "initTime", "value": 0},
    ],
    "publish": False,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:5984")
    parser.add_argument("--requests", type=int, default=300, help="requests of each kind")
    parser.add_argument("--records", type=int, default=1000, help="records written per batch size")
    args = parser.parse_args()
    pid = service_pids().get("couchdb")
    if pid is None:
        sys.exit("no local pouchdb-server (deploy/local/services up): its CPU cannot be read")
    print(f"{args.url}, pid {pid}, load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    db = f"bench_couchdb_cost_{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=args.url, timeout=60) as client:
        client.put(f"/{db}").raise_for_status()
        try:
            client.put(f"/{db}/one", json={"a": 1}).raise_for_status()
            kinds: dict[str, Callable[[], httpx.Response]] = {
                "GET /": lambda: client.get("/"),
                "GET /{db}": lambda: client.get(f"/{db}"),
                "GET /{db}/{doc}": lambda: client.get(f"/{db}/one"),
                "PUT /{db}/{doc} (a new document)": lambda: client.put(f"/{db}/{uuid.uuid4().hex}", json={"a": 1}),
            }
            for kind, send in kinds.items():
                cpu, seconds = measure(pid, args.requests, send)
                print(
                    f"{kind:<36} {cpu * 1e6 / args.requests:>7.0f} µs CPU per request, {args.requests / seconds:.0f}/s"
                )
            for batch in (1, 4, 16, 64):
                batches = max(1, args.records // batch)

                def bulk(size: int = batch) -> httpx.Response:
                    docs = [{**RECORD, "_id": f"guest/{uuid.uuid4().hex}"} for _ in range(size)]
                    return client.post(f"/{db}/_bulk_docs", json={"docs": docs})

                cpu, seconds = measure(pid, batches, bulk)
                records = batches * batch
                print(
                    f"_bulk_docs of {batch:>2} records{'':<16} {cpu * 1e6 / records:>7.0f} µs CPU per record, "
                    f"{records / seconds:.0f} records/s"
                )
        finally:
            client.delete(f"/{db}")


def measure(pid: int, count: int, send: Callable[[], httpx.Response]) -> tuple[float, float]:
    """The server's CPU seconds and the wall seconds for ``count`` requests made one after another."""
    cpu_before, started = tree_cpu_seconds(pid), time.monotonic()
    for _ in range(count):
        send().raise_for_status()
    return tree_cpu_seconds(pid) - cpu_before, time.monotonic() - started


if __name__ == "__main__":
    main()
