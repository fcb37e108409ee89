"""Benchmark (not a test): where a standalone's CPU goes under wrk, per thread, with context switches (run with -m).

    python -m bench.threads                              # pywhisk standalone from this checkout, 1 worker
    python -m bench.threads --workers 2 --runs 3         # each worker process's threads, 3 wrk runs
    python -m bench.threads --source /tmp/before         # another source tree (``git archive`` unpacked)
    python -m bench.threads --env PYWHISK_WASM_INLINE=false

Starts ``pywhisk standalone``, creates hello.wasm as bench/throughput.py does, warms it up, then for each run reads
``/proc/<pid>/task/*/stat`` and ``status`` of the server's processes before and after one ``wrk -t1 -cC -dDs -s
bench/invoke.lua`` and prints, per thread (pool threads summed by name: ``wasm_*``), CPU µs and voluntary and
involuntary context switches per answered request. Python 3.11 does not give threads OS names, so the names come
from ``py-spy dump`` (PyPI). Thread CPU is the figure to trust for thread pools: py-spy's ``--nonblocking``
samples cannot tell an idle pool thread from a working one (docs/benchmarks.md, issue 15).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.throughput import INVOKE_LUA, prepare, wait_answering
from launcher.testing import start_standalone, stop_standalone

TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Usage:
    """One thread's counters: CPU seconds, voluntary and involuntary context switches."""

    cpu_s: float
    voluntary: int
    involuntary: int


def processes(pid: int) -> list[int]:
    """``pid`` and its children (``--workers``: the supervisor and its workers)."""
    found = [pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rpartition(")")[2].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, ValueError):
                continue
    return found


def usage(pid: int) -> dict[tuple[int, int], Usage]:
    """(process, thread id) -> its counters so far."""
    threads: dict[tuple[int, int], Usage] = {}
    for process in processes(pid):
        for task in Path(f"/proc/{process}/task").iterdir():
            try:
                fields = (task / "stat").read_text().rpartition(")")[2].split()
                status = (task / "status").read_text()
            except OSError:  # ended meanwhile
                continue
            voluntary = re.search(r"^voluntary_ctxt_switches:\s+(\d+)", status, re.M)
            involuntary = re.search(r"^nonvoluntary_ctxt_switches:\s+(\d+)", status, re.M)
            threads[(process, int(task.name))] = Usage(
                (int(fields[11]) + int(fields[12])) / TICKS,
                int(voluntary.group(1)) if voluntary else 0,
                int(involuntary.group(1)) if involuntary else 0,
            )
    return threads


def thread_names(pid: int) -> dict[int, str]:
    """Thread id -> Python thread name, from ``py-spy dump`` of each process."""
    names: dict[int, str] = {}
    for process in processes(pid):
        dump = subprocess.run(
            ["py-spy", "dump", "--nonblocking", "-p", str(process)], capture_output=True, text=True, check=False
        ).stdout
        for match in re.finditer(r'^Thread (\d+) \(\w+\): "([^"]+)"', dump, re.M):
            names[int(match.group(1))] = match.group(2)
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", "-c", type=int, default=32)
    parser.add_argument("--duration", "-d", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--source", type=Path, help="run pywhisk from this source tree instead")
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for the server")
    args = parser.parse_args()
    env = dict(item.split("=", 1) for item in args.env)
    if args.source is not None:  # as bench/throughput.py --baseline: PYTHONPATH beats the editable install
        env |= {"PYTHONSAFEPATH": "1", "PYTHONPATH": str(args.source.resolve())}
    options = ["--workers", str(args.workers)] if args.workers > 1 else []
    server = start_standalone(Path(tempfile.mkdtemp(prefix="pywhisk-threads-")), *options, env=env)
    try:
        url = prepare(server.apihost)
        wait_answering(url)
        command = ["wrk", "-t1", f"-c{args.connections}", "-s", str(INVOKE_LUA), url]
        subprocess.run([*command, "-d2s"], capture_output=True, check=True)  # warm-up: first instances, streaks
        for run in range(args.runs):
            before = usage(server.process.pid)
            out = subprocess.run([*command, f"-d{args.duration}s"], capture_output=True, text=True, check=True).stdout
            after = usage(server.process.pid)
            names = thread_names(server.process.pid)
            done = re.search(r"(\d+) requests in", out)
            rate = re.search(r"Requests/sec:\s+(\S+)", out)
            if done is None or rate is None:
                raise RuntimeError(f"unexpected wrk output:\n{out}")
            requests = max(1, int(done.group(1)))
            groups: dict[tuple[int, str], list[float]] = {}
            for key, now in after.items():
                then = before.get(key, Usage(0.0, 0, 0))
                name = re.sub(r"_\d+$", "_*", names.get(key[1], "?"))
                group = groups.setdefault((key[0], name), [0.0, 0.0, 0.0, 0.0])
                group[0] += now.cpu_s - then.cpu_s
                group[1] += now.voluntary - then.voluntary
                group[2] += now.involuntary - then.involuntary
                group[3] += 1
            print(f"run {run + 1}: {float(rate.group(1)):.0f} req/s, load average {os.getloadavg()[0]:.2f}")
            print(f"  {'process':>8} {'thread':<22}{'CPU µs/req':>11}{'vol/req':>9}{'invol/req':>10}")
            for (process, name), (cpu, voluntary, involuntary, count) in sorted(
                groups.items(), key=lambda item: -item[1][0]
            ):
                if cpu * 1e6 / requests >= 1 or voluntary / requests >= 0.05:
                    label = f"{name} x{count:.0f}" if count > 1 else name
                    print(
                        f"  {process:>8} {label:<22}{cpu * 1e6 / requests:>11.0f}"
                        f"{voluntary / requests:>9.2f}{involuntary / requests:>10.2f}"
                    )
            total = [sum(group[i] for group in groups.values()) for i in range(3)]
            print(
                f"  {'':>8} {'total':<22}{total[0] * 1e6 / requests:>11.0f}"
                f"{total[1] / requests:>9.2f}{total[2] / requests:>10.2f}"
            )
    finally:
        stop_standalone(server)


if __name__ == "__main__":
    main()
