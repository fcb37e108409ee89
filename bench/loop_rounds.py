"""Benchmark (not a test): how many event-loop rounds a warm blocking invoke of `hello` waits through.

    python bench/loop_rounds.py                    # 200 invokes quiet, then beside 60 busy tasks
    python bench/loop_rounds.py --tasks 60 --step-us 50 -n 300 --bus memory

Why: in standalone, every namespace's requests share one event loop. When another namespace's burst puts
many tasks on the loop's ready queue (issue 12's flood class: 60 requests at once), each time a victim's
request awaits something, it waits for the loop to come round again: behind one step of every ready task.
Its latency is then about *rounds x the cost of one round*, so the number of rounds on the warm path is the
multiplier that a burst's cost is paid by.

How: standalone is built in this process as `pywhisk standalone` builds it (`launcher.compose.build_standalone`:
the SQLite store, the SQLite-journalled bus unless --bus memory, the real WASM executor) and reached over ASGI
(httpx's ASGITransport: no sockets, so the HTTP server's own rounds are not counted). Beside it run --tasks
*noise* tasks, each spinning --step-us of CPU and then yielding (`await asyncio.sleep(0)`), so each is on the
ready queue at every round. The first of them counts its steps: the count when an invoke starts and when its
answer arrives is the number of rounds the invoke spanned. Quiet latency is measured first, with no noise.

The noise never lets the loop idle, so a thread that needs the GIL (the bus journal's SQLite thread, the record
writer) gets it only when the loop is made to drop it, every switch interval (5 ms unless
--switch-interval-ms): harsher than a real burst, which ends. The rounds with `--bus memory` are the warm
path's own; what the journal adds on top is that convoy.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from launcher.compose import build_standalone
from pywhisk.identity import GUEST_KEY, GUEST_UUID
from pywhisk.settings import Settings

REPO = Path(__file__).resolve().parent.parent
ACTION = "/api/v1/namespaces/_/actions/hello"


class Noise:
    """``tasks`` tasks, each burning ``step_s`` of CPU per loop round; task 0 counts the rounds."""

    def __init__(self, tasks: int, step_s: float) -> None:
        self.rounds = 0
        self._step_s = step_s
        self._stop = False
        self._tasks = [asyncio.create_task(self._spin(i)) for i in range(tasks)]

    async def _spin(self, index: int) -> None:
        while not self._stop:
            until = time.perf_counter() + self._step_s
            while time.perf_counter() < until:
                pass
            if index == 0:
                self.rounds += 1
            await asyncio.sleep(0)

    async def stop(self) -> None:
        self._stop = True
        await asyncio.gather(*self._tasks)


def percentile(values: list[float] | list[int], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def hello(api: httpx.AsyncClient) -> Awaitable[httpx.Response]:
    return api.post(ACTION, params={"blocking": "true", "result": "true"}, json={"name": "x"})


def invokers(api: httpx.AsyncClient) -> Awaitable[httpx.Response]:
    """A request that never suspends: the transport's and the edge's own rounds."""
    return api.get("/invokers")


async def invokes(
    api: httpx.AsyncClient,
    n: int,
    noise: Noise | None,
    request: Callable[[httpx.AsyncClient], Awaitable[httpx.Response]] = hello,
) -> tuple[list[float], list[int]]:
    """``n`` sequential ``request``s (warm blocking invokes of hello by default): latencies and rounds spanned."""
    latencies: list[float] = []
    rounds: list[int] = []
    for _ in range(n):
        began_round = noise.rounds if noise else 0
        began = time.perf_counter()
        response = await request(api)
        latencies.append((time.perf_counter() - began) * 1000)
        rounds.append((noise.rounds if noise else 0) - began_round)
        assert response.status_code == 200, response.text
    return latencies, rounds


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as data_dir:
        settings = Settings(data_dir=Path(data_dir), bus=args.bus)
        app = build_standalone(settings)
        async with app.router.lifespan_context(app):
            assert await app.state.balancer.wait_for_invoker(10), "the invoker never reported healthy"
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://whisk.test", auth=(GUEST_UUID, GUEST_KEY), timeout=60
            ) as api:
                code = base64.b64encode((REPO / "actions" / "wasm" / "hello.wasm").read_bytes()).decode()
                created = await api.put(ACTION, json={"exec": {"kind": "wasm:wasi", "code": code}})
                assert created.status_code == 200, created.text
                await invokes(api, 50, None)  # cold start, then warm: the inline streak established

                quiet, _ = await invokes(api, args.n, None)
                noise = Noise(args.tasks, args.step_us / 1e6)
                await asyncio.sleep(0.05)  # the noise tasks running before the first measured invoke
                started_round, started = noise.rounds, time.perf_counter()
                busy, rounds = await invokes(api, args.n, noise)
                round_ms = (time.perf_counter() - started) * 1000 / max(1, noise.rounds - started_round)
                _, ping_rounds = await invokes(api, 20, noise, invokers)
                await noise.stop()

    interval_ms = sys.getswitchinterval() * 1000
    print(f"bus={args.bus} switch interval {interval_ms:g} ms n={args.n}")
    print(f"noise: {args.tasks} tasks x {args.step_us:.0f} us per round")
    print(f"quiet latency       p50 {percentile(quiet, 0.5):6.2f} ms  p99 {percentile(quiet, 0.99):6.2f} ms")
    print(f"beside the noise    p50 {percentile(busy, 0.5):6.2f} ms  p99 {percentile(busy, 0.99):6.2f} ms")
    print(f"one round of the loop   {round_ms:6.2f} ms (measured over the noisy invokes)")
    print(
        f"rounds per invoke   p50 {percentile(rounds, 0.5):6.0f}     "
        f"p99 {percentile(rounds, 0.99):6.0f}     mean {statistics.fmean(rounds):.1f}"
    )
    ping = percentile(ping_rounds, 0.5)
    print(f"rounds of GET /invokers p50 {ping:3.0f} (the transport and the edge alone)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=200, help="invokes per phase (quiet, then beside the noise)")
    parser.add_argument("--tasks", type=int, default=60, help="noise tasks on the loop (the flood's burst: 60)")
    parser.add_argument("--step-us", type=float, default=50.0, help="CPU each noise task burns per round")
    parser.add_argument("--bus", choices=["sqlite", "memory"], default="sqlite", help="standalone's bus")
    parser.add_argument("--switch-interval-ms", type=float, help="sys.setswitchinterval for this run (default 5)")
    arguments = parser.parse_args()
    if arguments.switch_interval_ms is not None:
        sys.setswitchinterval(arguments.switch_interval_ms / 1000)
    asyncio.run(main(arguments))
