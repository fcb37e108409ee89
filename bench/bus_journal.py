"""Benchmark (not a test): what standalone's bus journal adds per activation, without HTTP, store or executor.

    python bench/bus_journal.py                 # memory vs sqlite vs sqlite+fsync, 1 and 64 in flight

Each message is what the invoker does with an activation: ``send`` (the controller, before its 202),
``receive``, ``ack`` (after the record is stored). Sequential: one at a time, latency of send and of ack.
Concurrent: N senders at once (group commit), messages per second through send → receive → ack.
Messages are 600 bytes, the size of a hello ActivationMessage.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from pywhisk.bus import Bus, Consumer
from pywhisk.bus.memory import MemoryBus
from pywhisk.bus.sqlite import SqliteBus

MESSAGE = b"x" * 600


async def sequential(bus: Bus, consumer: Consumer, n: int) -> tuple[list[float], list[float]]:
    sends, acks = [], []
    for _ in range(n):
        started = time.perf_counter()
        await bus.send("invoker0", MESSAGE)
        sends.append((time.perf_counter() - started) * 1e6)
        (delivery,) = await consumer.receive(max_messages=1, timeout_s=1)
        started = time.perf_counter()
        await consumer.ack(delivery)
        acks.append((time.perf_counter() - started) * 1e6)
    return sends, acks


async def concurrent(bus: Bus, consumer: Consumer, n: int, in_flight: int) -> float:
    async def sender(count: int) -> None:
        for _ in range(count):
            await bus.send("invoker0", MESSAGE)

    async def acker() -> None:
        done = 0
        while done < n:
            deliveries = await consumer.receive(max_messages=1000, timeout_s=1)
            await asyncio.gather(*(consumer.ack(d) for d in deliveries))
            done += len(deliveries)

    started = time.perf_counter()
    await asyncio.gather(acker(), *(sender(n // in_flight) for _ in range(in_flight)))
    return n / (time.perf_counter() - started)


async def bench(name: str, bus: Bus, n: int, in_flight: int) -> None:
    await bus.start()
    consumer = await bus.subscribe("invoker0", "invoker0")
    sends, acks = await sequential(bus, consumer, n)
    rate = await concurrent(bus, consumer, 4 * n // in_flight * in_flight, in_flight)
    await bus.close()
    print(
        f"{name:14} send p50 {statistics.median(sends):7.1f} µs  ack p50 {statistics.median(acks):7.1f} µs  "
        f"| {in_flight} in flight: {rate:8.0f} messages/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=2000, help="sequential messages (4x that concurrently)")
    parser.add_argument("--in-flight", type=int, default=64)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pywhisk-bus-bench-"))
    buses: list[tuple[str, Bus]] = [
        ("memory", MemoryBus()),
        ("sqlite", SqliteBus(work / "normal.sqlite3")),
        ("sqlite+fsync", SqliteBus(work / "fsync.sqlite3", fsync=True)),
    ]
    for name, bus in buses:
        asyncio.run(bench(name, bus, args.n, args.in_flight))


if __name__ == "__main__":
    main()
