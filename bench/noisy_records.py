"""Benchmark (not a test): does one namespace's big activation records stall another namespace's hello?

    python bench/noisy_records.py                      # starts its own standalone server in a temp dir
    python bench/noisy_records.py --apihost http://127.0.0.1:3233 --auth UUID:KEY

Standalone runs controller, invoker and executor on one event loop, so every pass over a big record made on
that loop (building it, bounding it, serialising it for the store and the completion, parsing it back,
rendering the answer) stalls every other request. This runs `hello` (blocking) at `--rate` per second
through a quiet phase and then beside back-to-back blocking invokes of the `logs` sample at its 10 MB log
limit (records cut to `activation_max_bytes`, ~7 MB), and prints hello's latency in both phases with a
loop-lag probe: `GET /api/v1` (no auth, no store) every `--probe-ms`, whose latency above its quiet floor is
time the server's loop was busy elsewhere.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from launcher.testing import GUEST_AUTH, start_standalone, stop_standalone

REPO = Path(__file__).resolve().parent.parent


def summary(values: list[float]) -> str:
    if not values:
        return "n=0"
    values = sorted(values)

    def p(q: float) -> float:
        return values[min(len(values) - 1, int(q * len(values)))]

    return (
        f"n={len(values)} mean={statistics.fmean(values):.1f} p50={p(0.5):.1f} p99={p(0.99):.1f} max={values[-1]:.1f}"
    )


async def every(period_s: float, stop: asyncio.Event, call: Callable[[], Awaitable[None]]) -> list[asyncio.Task[None]]:
    """Start ``call()`` every ``period_s`` (open loop: a slow answer does not delay the next request)."""
    tasks: list[asyncio.Task[None]] = []
    next_at = time.perf_counter()
    while not stop.is_set():
        tasks.append(asyncio.ensure_future(call()))
        next_at += period_s
        await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
    return tasks


async def run(apihost: str, auth: str, options: argparse.Namespace) -> None:
    uuid, key = auth.split(":")
    async with httpx.AsyncClient(base_url=f"{apihost}/api/v1", auth=(uuid, key), timeout=120) as c:
        for name, limits in (("nr-hello", {}), ("nr-logs", {"logs": 10, "timeout": 60_000})):
            code = base64.b64encode((REPO / "actions" / "wasm" / f"{name[3:]}.wasm").read_bytes()).decode()
            body = {"exec": {"kind": "wasm:wasi", "code": code}, "limits": limits}
            r = await c.put(f"/namespaces/_/actions/{name}", params={"overwrite": "true"}, json=body)
            r.raise_for_status()
        (await c.post("/namespaces/_/actions/nr-hello", params={"blocking": "true"}, json={})).raise_for_status()

        phase = "quiet"
        hello: dict[str, list[float]] = {"quiet": [], "attack": []}
        probe: dict[str, list[float]] = {"quiet": [], "attack": []}
        errors: list[str] = []

        async def one_hello() -> None:
            started, at = time.perf_counter(), phase
            r = await c.post("/namespaces/_/actions/nr-hello", params={"blocking": "true"}, json={"name": "x"})
            hello[at].append((time.perf_counter() - started) * 1000)
            if r.status_code != 200:
                errors.append(f"hello {r.status_code}")

        async def one_probe() -> None:
            started, at = time.perf_counter(), phase
            await c.get("", auth=None)
            probe[at].append((time.perf_counter() - started) * 1000)

        stop = asyncio.Event()
        victims = [
            asyncio.create_task(every(1 / options.rate, stop, one_hello)),
            asyncio.create_task(every(options.probe_ms / 1000, stop, one_probe)),
        ]
        await asyncio.sleep(options.quiet)
        phase = "attack"
        big: list[float] = []
        record_bytes = 0
        end = time.monotonic() + options.attack_seconds
        while time.monotonic() < end:
            started = time.perf_counter()
            r = await c.post(
                "/namespaces/_/actions/nr-logs", params={"blocking": "true"}, json={"count": options.log_lines}
            )
            big.append((time.perf_counter() - started) * 1000)
            record_bytes = len(r.content)
            if r.status_code != 200:
                errors.append(f"logs {r.status_code}")
        stop.set()
        for task in victims:
            await asyncio.gather(*await task)

    print(f"big records: {len(big)} blocking invokes of logs ({options.log_lines} lines), answer {record_bytes} bytes")
    print(f"  their latency (ms):  {summary(big)}")
    for at in ("quiet", "attack"):
        print(f"hello, {at:6} (ms):    {summary(hello[at])}")
        print(f"probe, {at:6} (ms):    {summary(probe[at])}")
    print(f"errors: {errors or 'none'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--apihost")
    parser.add_argument("--auth", default=GUEST_AUTH)
    parser.add_argument("--quiet", type=float, default=10.0, help="seconds of hello alone")
    parser.add_argument("--attack-seconds", type=float, default=20.0, help="seconds of big records beside it")
    parser.add_argument("--rate", type=float, default=20.0, help="hellos per second")
    parser.add_argument("--probe-ms", type=float, default=10.0, help="period of the loop-lag probe")
    parser.add_argument("--log-lines", type=int, default=1_000_000, help="lines the logs action prints")
    options = parser.parse_args()
    if options.apihost:
        asyncio.run(run(options.apihost, options.auth, options))
        return
    with tempfile.TemporaryDirectory(prefix="pywhisk-noisy-") as tmp:
        server = start_standalone(Path(tmp) / "data")
        try:
            asyncio.run(run(server.apihost, server.auth, options))
        finally:
            stop_standalone(server)


if __name__ == "__main__":
    main()
