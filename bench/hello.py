"""Benchmark (not a test): cold and warm end-to-end latency and warm throughput of `hello`.

    python bench/hello.py                      # starts its own standalone server in a temp dir
    python bench/hello.py --distributed        # 1 controller + 2 invokers over deploy/local/services
    python bench/hello.py --apihost http://127.0.0.1:3233 --auth UUID:KEY
    python bench/hello.py --bus memory sqlite  # standalone on each bus in turn, side by side
    python bench/hello.py --kind python-wasm --env PYWHISK_WASM_POOLING=0 --env PYWHISK_WASM_POOLING=1

--env starts one standalone per value, in turn, with those variables set (several as A=1,B=2): settings
compared side by side in one run.

--bus chooses standalone's bus (PYWHISK_BUS): `sqlite`, the default, journals every activation before it
is accepted; `memory` does not (the cost of the journal is the difference).

Cold: N distinct actions of the same module, each invoked once (a fresh instance each; the module's
compiled artifact is cached after the first one, whose compile is reported separately). Starts that took a
stem cell (the pool's `pywhisk_starts_total` on /metrics moved) are also summarised apart, as "prewarmed only";
--wait-prewarmed waits before each cold invoke until a stem cell is ready, where a fixed --cold-gap may be
too short for the refill at a high load.
Warm: sequential blocking invokes of one action. Throughput: C concurrent clients doing blocking
invokes for D seconds, every one with its record written.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from launcher.testing import GUEST_AUTH, start_deployment, start_standalone, stop_standalone
from loadgen.transport import LendingTransport

REPO = Path(__file__).resolve().parent.parent


def ann(record: dict[str, Any], key: str) -> Any:
    return next((p.get("value") for p in record["annotations"] if p["key"] == key), None)


def summary(values: list[float]) -> str:
    values = sorted(values)

    def p(q: float) -> float:
        return values[min(len(values) - 1, int(q * len(values)))]

    return (
        f"n={len(values)} mean={statistics.fmean(values):.2f} p50={p(0.5):.2f} "
        f"p95={p(0.95):.2f} p99={p(0.99):.2f} max={values[-1]:.2f}"
    )


async def run(
    apihost: str, auth: str, cold_n: int, warm_n: int, concurrency: int, duration: float, options: argparse.Namespace
) -> None:
    uuid, key = auth.split(":")
    annotations: list[dict[str, Any]] = []
    if options.kind in ("python", "python-wasm"):
        kind, code = "python:3", (REPO / "actions" / "python" / "hello.py").read_text()
        if options.kind == "python-wasm":  # the same hello.py, pinned to the WASM executor
            annotations = [{"key": "executor", "value": "wasm"}]
    elif options.kind in ("nodejs", "nodejs-wasm"):
        kind, code = "nodejs:default", (REPO / "actions" / "js" / "hello.js").read_text()
        if options.kind == "nodejs-wasm":  # the same hello.js, pinned to the WASM executor
            annotations = [{"key": "executor", "value": "wasm"}]
    else:
        kind, code = "wasm:wasi", base64.b64encode((REPO / "actions" / "wasm" / "hello.wasm").read_bytes()).decode()
    for item in options.annotation:  # e.g. network=false: PYWHISK_DOCKER_ENGINE=crun-direct's path
        name, _, value = item.partition("=")
        annotations.append({"key": name, "value": {"true": True, "false": False}.get(value, value)})
    transport = LendingTransport(concurrency + 4)  # far cheaper per request than httpx's own pool
    prefix = f"bench-{os.urandom(3).hex()}"
    async with httpx.AsyncClient(base_url=f"{apihost}/api/v1", auth=(uuid, key), timeout=120, transport=transport) as c:
        create_ms: list[float] = []

        async def create(name: str) -> None:
            # --unique-source: a distinct source per action, so no content-hash cache helps a cold start.
            source = code
            if options.unique_source and kind in ("python:3", "nodejs:default"):
                source = f"{code}\n{'#' if kind == 'python:3' else '//'} {name}\n"
            body: dict[str, Any] = {"exec": {"kind": kind, "code": source}, "limits": {"memory": options.memory}}
            if annotations:
                body["annotations"] = annotations
            started = time.perf_counter()
            (await c.put(f"/namespaces/_/actions/{name}", json=body)).raise_for_status()
            create_ms.append((time.perf_counter() - started) * 1000)

        async def invoke(name: str) -> tuple[float, dict[str, Any]]:
            started = time.perf_counter()
            r = await c.post(f"/namespaces/_/actions/{name}", params={"blocking": "true"}, json={"name": "bench"})
            elapsed = (time.perf_counter() - started) * 1000
            r.raise_for_status()
            return elapsed, r.json()

        # The very first cold start of a module includes compiling it (then it is cached on disk).
        await create(f"{prefix}-first")
        first_ms, first = await invoke(f"{prefix}-first")
        print(
            f"first-ever cold start (compiles the module): client {first_ms:.1f} ms, "
            f"waitTime {ann(first, 'waitTime')} ms, initTime {ann(first, 'initTime')} ms"
        )

        client_ms, server_ms, cold_total_ms, prewarmed_ms = [], [], [], []
        executor = "wasm" if options.kind in ("wasm", "python-wasm", "nodejs-wasm") else "docker"
        for i in range(cold_n):
            name = f"{prefix}-cold-{i}"
            await create(name)
            await asyncio.sleep(options.cold_gap)  # e.g. time for the pool to refill its stem cells
            if options.wait_prewarmed:  # at a high load a refill can take longer than any fixed gap
                await until_prewarmed(c, apihost, executor)
            stem_cells_used = await starts(c, apihost, executor, "prewarmed")
            elapsed, record = await invoke(name)
            assert ann(record, "initTime") is not None, "expected a cold start"
            client_ms.append(elapsed)
            server_ms.append(ann(record, "waitTime") + ann(record, "initTime"))
            # duration is end - start, which includes initTime (records.py): add only the wait.
            cold_total_ms.append(ann(record, "waitTime") + record["duration"])
            if await starts(c, apihost, executor, "prewarmed") > stem_cells_used:
                prewarmed_ms.append(server_ms[-1])
        print(f"action create, client (ms):          {summary(create_ms)}")
        print(f"cold, client end to end (ms):        {summary(client_ms)}")
        print(f"cold, waitTime+initTime (ms, record): {summary(server_ms)}")
        print(f"cold, waitTime+initTime+duration (ms): {summary(cold_total_ms)}")
        if prewarmed_ms:  # a stem cell taken (the pool's metrics say so): a prewarmed start, not a fresh one
            print(f"prewarmed only, waitTime+initTime (ms): {summary(prewarmed_ms)}")
        print(f"cold starts on a stem cell: {len(prewarmed_ms)} of {cold_n}")

        warm = f"{prefix}-warm"
        await create(warm)
        await invoke(warm)
        client_ms, waits, durations = [], [], []
        for _ in range(warm_n):
            elapsed, record = await invoke(warm)
            assert ann(record, "initTime") is None, "expected a warm start"
            client_ms.append(elapsed)
            waits.append(ann(record, "waitTime"))
            durations.append(record["duration"])
        print(f"warm, client end to end (ms):        {summary(client_ms)}")
        print(f"warm, waitTime (ms, record):          {summary(waits)}")
        print(f"warm, duration (ms, record):          {summary(durations)}")
        totals = [wait + duration for wait, duration in zip(waits, durations, strict=True)]
        print(f"warm, waitTime+duration (ms, record): {summary(totals)}")

        done = await throughput(c, apihost, warm, concurrency, duration)
        recent = await c.get("/namespaces/_/activations", params={"name": warm, "limit": 200, "docs": "true"})
        waits = [ann(record, "waitTime") for record in recent.json()]
        print(f"waitTime of the last 200 records under load (ms): {summary(waits)}")
        count = await c.get("/namespaces/_/activations", params={"name": warm, "count": "true"})
        # wrk does not count the requests still in flight when it stops, so there may be a few more.
        expected = done + warm_n + 1
        print(f"records written for the warm action: {count.json()['activations']} (at least {expected})")


async def metric(c: httpx.AsyncClient, apihost: str, name: str, labels: dict[str, str]) -> float:
    """The sum of the samples of ``name`` with these labels on the server's ``/metrics`` (0 if none)."""
    text = (await c.get(f"{apihost}/metrics")).text
    wanted = [f'{key}="{value}"' for key, value in labels.items()]
    total = 0.0
    for line in text.splitlines():
        head, _, value = line.rpartition(" ")
        if head.startswith(name + "{") and all(label in head for label in wanted):
            total += float(value)
    return total


async def starts(c: httpx.AsyncClient, apihost: str, executor: str, start: str) -> float:
    """Instances the pool handed to activations so far, by how they started (cold, prewarmed, warm)."""
    return await metric(c, apihost, "pywhisk_starts_total", {"executor": executor, "start": start})


async def until_prewarmed(c: httpx.AsyncClient, apihost: str, executor: str, timeout_s: float = 60.0) -> None:
    """Wait until the pool holds a started stem cell of ``executor`` (its instances gauge says so)."""
    deadline = time.monotonic() + timeout_s
    while await metric(c, apihost, "pywhisk_pool_instances", {"executor": executor, "state": "prewarmed"}) < 1:
        if time.monotonic() > deadline:
            raise RuntimeError(f"no {executor} stem cell within {timeout_s:.0f} s")
        await asyncio.sleep(0.05)


async def throughput(c: httpx.AsyncClient, apihost: str, action: str, concurrency: int, duration: float) -> int:
    """Blocking invokes from ``concurrency`` connections for ``duration`` s; returns how many completed.

    Uses wrk when installed: a Python client saturates a core at a few hundred requests per second,
    which would measure the client, not the server.
    """
    wrk = shutil.which("wrk")
    url = f"{apihost}/api/v1/namespaces/_/actions/{action}?blocking=true"
    if wrk:
        proc = await asyncio.create_subprocess_exec(
            wrk,
            "-t1",
            f"-c{concurrency}",
            f"-d{int(duration)}s",
            "-s",
            str(REPO / "bench" / "invoke.lua"),
            url,
            stdout=asyncio.subprocess.PIPE,
        )
        out = (await proc.communicate())[0].decode()
        done = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
        errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        latency = re.search(r"Latency\s+(\S+)", out)
        rate = float(re.search(r"Requests/sec:\s+(\S+)", out).group(1))  # type: ignore[union-attr]
        print(
            f"warm throughput (wrk, {concurrency} connections, {duration:.0f} s): "
            f"{rate:.0f} invokes/s, "
            f"mean latency {latency.group(1) if latency else '?'}, non-2xx {errors.group(1) if errors else 0}"
        )
        return done
    done = 0
    deadline = time.perf_counter() + duration

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            r = await c.post(f"/namespaces/_/actions/{action}", params={"blocking": "true"}, json={"name": "bench"})
            r.raise_for_status()
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    print(
        f"warm throughput (httpx, client-bound; install wrk for a fair figure), {concurrency} clients: "
        f"{done / elapsed:.0f} invokes/s ({done} in {elapsed:.1f} s)"
    )
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--apihost", help="use a running server instead of starting one")
    parser.add_argument("--auth", default=GUEST_AUTH)
    parser.add_argument("--cold", type=int, default=200, help="cold starts to measure")
    parser.add_argument("--warm", type=int, default=1000, help="sequential warm invokes")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of the throughput phase")
    parser.add_argument("--distributed", action="store_true", help="start 1 controller + 2 invokers instead")
    parser.add_argument(
        "--kind",
        choices=["wasm", "python", "python-wasm", "nodejs", "nodejs-wasm"],
        default="wasm",
        help="hello.wasm, hello.py (Docker) or hello.py on WASM (annotation executor=wasm); hello.js likewise",
    )
    parser.add_argument("--unique-source", action="store_true", help="python/nodejs: a distinct source per action")
    parser.add_argument("--memory", type=int, default=256, help="action memory (MB); python stem cells are 256 MB")
    parser.add_argument("--cold-gap", type=float, default=0.0, help="seconds to wait before each cold invoke")
    parser.add_argument(
        "--wait-prewarmed",
        action="store_true",
        help="before each cold invoke, also wait until the pool has a stem cell ready (its /metrics say so)",
    )
    parser.add_argument(
        "--bus",
        nargs="+",
        choices=["sqlite", "memory"],
        default=["sqlite"],
        help="standalone's bus; several: one server each, in turn (e.g. --bus memory sqlite)",
    )
    parser.add_argument(
        "--annotation", action="append", default=[], metavar="KEY=VALUE", help="an action annotation (network=false)"
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="A=1[,B=2]",
        help="standalone: one server per --env, in turn, with these variables set (e.g. PYWHISK_WASM_POOLING=0)",
    )
    args = parser.parse_args()
    if args.distributed or args.apihost:
        bench_once(args, bus=None)
        return
    for env in args.env or [""]:
        for bus in args.bus:
            bench_once(args, bus, dict(item.split("=", 1) for item in env.split(",") if item))


def bench_once(args: argparse.Namespace, bus: str | None, env: dict[str, str] | None = None) -> None:
    """One run: against ``--apihost``, a deployment (``--distributed``), or a new standalone on ``bus``."""
    work_dir = Path(tempfile.mkdtemp(prefix="pywhisk-bench-"))
    server, deployment, apihost = None, None, args.apihost
    if args.distributed:
        subprocess.run([str(REPO / "deploy" / "local" / "services"), "up"], check=True)
        deployment = start_deployment("127.0.0.1:9092", "http://127.0.0.1:5984", work_dir)
        apihost = deployment.apihost()
        print(f"started controller0 + invoker0 + invoker1 at {apihost} (Kafka, CouchDB API)")
    elif not apihost:
        server = start_standalone(work_dir, env={"PYWHISK_BUS": bus or "sqlite", **(env or {})})
        apihost = server.apihost
        print(f"== started standalone on the {bus} bus at {server.apihost} (data in {server.data_dir}) {env or ''}")
    try:
        asyncio.run(run(apihost, args.auth, args.cold, args.warm, args.concurrency, args.duration, args))
    finally:
        if server:
            stop_standalone(server)
        if deployment:
            deployment.stop()


if __name__ == "__main__":
    main()
