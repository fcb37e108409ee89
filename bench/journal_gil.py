"""Benchmark (not a test): the bus journal's ``send`` while another thread runs Python (issue 12, flood class).

    python bench/journal_gil.py [-n 200] [--busy 0 1 2] [--switch-interval-ms 0.5]

Standalone's journal commits on its own SQLite thread (pywhisk/bus/sqlite.py). Every SQLite call there gives up
the GIL; a thread busy with Python (in the server: the event loop working through a burst of requests) takes it,
and the journal's thread waits up to the switch interval (5 ms) to get it back, once per statement. This measures
``send`` of one 600-byte message, sequentially, with 0, 1, ... threads spinning Python beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from pywhisk.bus.sqlite import SqliteBus

MESSAGE = b"x" * 600


def spin(stop: threading.Event) -> None:
    """Python bytecode until told to stop (the GIL held but for the interpreter's forced switches)."""
    count = 0
    while not stop.is_set():
        count += 1


async def sends(n: int, busy: int) -> list[float]:
    with tempfile.TemporaryDirectory() as directory:
        bus = SqliteBus(Path(directory) / "bus.sqlite3")
        await bus.start()
        consumer = await bus.subscribe("invoker0", "invoker0")
        stop = threading.Event()
        spinners = [threading.Thread(target=spin, args=(stop,)) for _ in range(busy)]
        for thread in spinners:
            thread.start()
        latencies = []
        try:
            for _ in range(n):
                started = time.perf_counter()
                await bus.send("invoker0", MESSAGE)
                latencies.append((time.perf_counter() - started) * 1000)
                for delivery in await consumer.receive(1, 10.0):
                    await consumer.ack(delivery)
        finally:
            stop.set()
            for thread in spinners:
                thread.join()
            await bus.close()
        return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("-n", type=int, default=200)
    parser.add_argument("--busy", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--switch-interval-ms", type=float, help="sys.setswitchinterval (default: Python's 5 ms)")
    args = parser.parse_args()
    if args.switch_interval_ms is not None:
        sys.setswitchinterval(args.switch_interval_ms / 1000)
    print(f"switch interval {sys.getswitchinterval() * 1000:.1f} ms, {args.n} sends of {len(MESSAGE)} bytes")
    for busy in args.busy:
        latencies = sorted(asyncio.run(sends(args.n, busy)))
        p90 = latencies[int(0.9 * len(latencies))]
        print(
            f"{busy} thread(s) busy with Python: send p50 {statistics.median(latencies):7.2f} ms   "
            f"p90 {p90:7.2f} ms   max {latencies[-1]:7.2f} ms"
        )


if __name__ == "__main__":
    main()
