"""Benchmark (not a test): how long a thread waits for the GIL beside a busy asyncio loop (issue 12).

    python bench/gil_starvation.py                  # 60 tasks x 50 µs per round, then 1 task x 50 ms
    python bench/gil_starvation.py --jobs 10 --tasks 60 --step-us 50

A trivial job is handed to a thread (``run_in_executor``) while the loop is kept busy, and the time until the job
starts is printed. CPython's GIL hands over to a waiting thread only when that thread, after waiting one switch
interval (5 ms), finds that no switch has happened meanwhile and asks the holder to drop it. An asyncio loop with
work ready gives the GIL up and takes it straight back at every round (``select(0)``) and at every other system call
it makes, each one counting as a switch, so the waiting thread never asks, and only gets the GIL if it happens to
wake inside one of those microsecond gaps. One task burning 50 ms per step (no rounds, no system calls) lets the
thread in after one switch interval, as designed; 60 tasks of 50 µs each, the shape of a burst of requests, kept
it waiting for seconds on this machine. Hence pywhisk keeps the warm path's small SQLite work on the loop (the
journal's and the records' commits, identity reads) rather than on a thread.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from concurrent.futures import ThreadPoolExecutor


async def waits(jobs: int, tasks: int, step_s: float) -> list[float]:
    """Milliseconds from handing each of ``jobs`` trivial jobs to a thread until it started."""
    stop = False

    async def busy() -> None:
        while not stop:
            until = time.perf_counter() + step_s
            while time.perf_counter() < until:
                pass
            await asyncio.sleep(0)

    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(1) as pool:
        await loop.run_in_executor(pool, time.perf_counter)  # the thread exists before the loop is busy
        workers = [asyncio.create_task(busy()) for _ in range(tasks)]
        started: list[float] = []
        for _ in range(jobs):
            handed = time.perf_counter()
            began = await loop.run_in_executor(pool, time.perf_counter)
            started.append((began - handed) * 1000)
        stop = True
        await asyncio.gather(*workers)
    return started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=5, help="jobs handed to the thread, one at a time")
    parser.add_argument("--tasks", type=int, action="append", help="busy tasks (default: 60, then 1)")
    parser.add_argument("--step-us", type=float, action="append", help="µs each burns per step (default: 50, 50000)")
    args = parser.parse_args()
    shapes = list(zip(args.tasks or [60, 1], args.step_us or [50.0, 50_000.0], strict=True))
    for tasks, step_us in shapes:
        started = asyncio.run(waits(args.jobs, tasks, step_us / 1e6))
        print(
            f"{tasks:3d} busy tasks x {step_us:8.0f} µs per step: a thread's job started after "
            f"median {statistics.median(started):9.1f} ms, max {max(started):9.1f} ms "
            f"({', '.join(f'{ms:.1f}' for ms in started)})"
        )


if __name__ == "__main__":
    main()
