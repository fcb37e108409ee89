"""Benchmark (not a test): warm blocking invokes of hello.wasm against the floors, side by side, as ratios.

    python bench/throughput.py                        # echo floor, WASM floor, pywhisk standalone
    python bench/throughput.py --distributed          # and 1 controller + 2 invokers (Kafka, pouchdb-server)
    python bench/throughput.py --profile --out DIR    # and py-spy flame graphs of each server under load
    python bench/throughput.py --baseline /tmp/before # and a standalone from another source tree (A/B)
    python bench/throughput.py --distributed --workers 1 --workers 2   # each pywhisk target with 1 and 2 workers
    python bench/throughput.py --distributed --no-standalone --variant PYWHISK_KAFKA_LINGER_MS=0  # Kafka tuning A/B
    python bench/throughput.py --distributed --no-standalone --variant INVOKERS=1  # 1 invoker instead of 2
    python bench/throughput.py --distributed --wait-time  # and warm waitTime at 1 and 15 in flight

Every target gets ``wrk -t1 -cC -dDs -s bench/invoke.lua`` (blocking invokes with the guest's Basic auth, the same
JSON body), round after round, the targets interleaved within each round so a noisy neighbour on the shared
machine hits them all alike, and each round starting one target further on (a target's place in the order
mattered too). It prints req/s per round, the median, and each pywhisk figure as a ratio of the WASM
floor (bench/floors/wasm_floor.py: one process running hello.wasm inline, the floor of a warm invoke in Python) —
ratios, because the absolute numbers move with the machine's load, which is printed too. pywhisk's records are
counted afterwards: every answered invoke must have written one.

With --baseline (repeatable), another standalone runs from another checkout of the repo (e.g. ``git archive HEAD``
unpacked), interleaved with the rest: before and after a change in the same run, on the same noisy machine.

With --workers N (repeatable), each pywhisk target runs with ``--workers N`` (standalone: N whole servers on the
port; distributed: a controller of N workers, still 2 invokers), one target per N. A server's CPU is that of its
whole process tree (supervisor and workers). With --variant KEY=VALUE[,KEY=VALUE...] (repeatable), one more
distributed deployment per variant runs with those settings added (e.g. Kafka batching), beside the others.

With --wait-time, after the measured rounds each pywhisk target gets one more ``wrk -c1`` and ``wrk -c15`` run (10 s
each, after a 3 s warm-up) and the mean, p50 and p99 ``waitTime`` of the last 200 records it wrote are printed
(issue 15's targets: a mean of at most 1 ms at 1 in flight standalone, at most 5 ms at 15 in flight distributed).

With --profile, after the measured rounds each pywhisk server process is recorded by ``py-spy record
--nonblocking`` for one more wrk run (flame graph SVGs in --out; the profiler's sampling costs a little
throughput, so profiled runs are not part of the figures).
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

from launcher.testing import GUEST_AUTH, Deployment, free_port, start_deployment, start_standalone, stop_standalone

REPO = Path(__file__).resolve().parent.parent
INVOKE_LUA = REPO / "bench" / "invoke.lua"
ACTION = "throughput-hello"


@dataclass
class Target:
    """One server under load: its invoke URL, the processes to profile, and what wrk measured."""

    name: str
    url: str
    pids: dict[str, int] = field(default_factory=dict)
    rates: list[float] = field(default_factory=list)
    latencies: list[str] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)  # server CPU (all its processes) per answered request
    # Answered requests per second from wrk's start until the last of their records was stored.
    recorded_rates: list[float] = field(default_factory=list)
    activations_db: str | None = None  # distributed: the CouchDB database its records go to
    # Distributed: the backing services (Kafka, pouchdb-server), measured apart from the target's own CPU; they
    # serve every distributed target of the run, each measured during its own wrk runs.
    service_pids: dict[str, int] = field(default_factory=dict)
    service_cpu_us: dict[str, list[float]] = field(default_factory=dict)
    errors: int = 0
    answered: int = 0

    def forget_warm_up(self) -> None:
        """Drop what the warm-up run measured: its first instances and compiles are not a round.

        Its CPU too: it was kept before 2026-12-07, so each CPU median until then took the warm-up as one of its
        values (with 2 rounds, the median of 3: the warm-up and 2 rounds).
        """
        self.rates.clear()
        self.cpu_us.clear()
        self.service_cpu_us.clear()
        self.recorded_rates.clear()
        self.latencies.clear()
        self.errors = self.answered = 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", "-c", type=int, default=32)
    parser.add_argument("--duration", "-d", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="wrk runs per target, interleaved")
    parser.add_argument("--distributed", action="store_true", help="also 1 controller + 2 invokers")
    parser.add_argument("--no-standalone", action="store_true", help="skip pywhisk standalone")
    parser.add_argument(
        "--baseline", type=Path, action="append", default=[], help="also a standalone from this source tree (A/B)"
    )
    parser.add_argument("--profile", action="store_true", help="py-spy flame graphs into --out")
    parser.add_argument(
        "--wait-time", action="store_true", help="also warm waitTime at 1 and 15 in flight (records' annotations)"
    )
    parser.add_argument("--out", type=Path, help="directory for results.txt and the flame graphs")
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for the pywhisk processes")
    parser.add_argument(
        "--workers", type=int, action="append", default=[], help="pywhisk --workers (repeatable) [default: 1]"
    )
    parser.add_argument(
        "--variant", action="append", default=[], help="one more distributed target with KEY=VALUE[,KEY=VALUE]"
    )
    args = parser.parse_args()
    worker_counts = args.workers or [1]
    if not shutil.which("wrk"):
        sys.exit("wrk is required (apt-get install wrk)")
    if args.profile and not args.out:
        sys.exit("--profile needs --out")
    env = dict(item.split("=", 1) for item in args.env)
    work_dir = Path(tempfile.mkdtemp(prefix="pywhisk-throughput-"))
    lines: list[str] = []

    def say(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    say(f"date {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, load average {load_average()}")
    say(f"wrk -t1 -c{args.connections} -d{args.duration}s -s bench/invoke.lua, {args.rounds} rounds, interleaved")
    floors: list[subprocess.Popen[bytes]] = []
    servers = []
    deployments: list[Deployment] = []
    targets: list[Target] = []
    try:
        for name in ("echo_floor", "wasm_floor"):
            port = free_port()
            floors.append(spawn_floor(name, port, work_dir))
            targets.append(Target(name.replace("_", " "), f"http://127.0.0.1:{port}/", {name: floors[-1].pid}))
        for workers in [] if args.no_standalone else worker_counts:
            options = ["--workers", str(workers)] if workers > 1 else []
            server = start_standalone(work_dir / f"standalone-{workers}", *options, env=env)
            servers.append(server)
            label = "pywhisk standalone" + (f" w{workers}" if len(worker_counts) > 1 else "")
            targets.append(Target(label, prepare(server.apihost), {"standalone": server.process.pid}))
        for baseline in args.baseline:
            # Safe path: `-m pywhisk` must not put this checkout's cwd first; PYTHONPATH beats the editable install.
            baseline_env = {**env, "PYTHONSAFEPATH": "1", "PYTHONPATH": str(baseline.resolve())}
            server = start_standalone(work_dir / f"baseline-{baseline.name}", env=baseline_env)
            servers.append(server)
            label = f"{baseline.name} standalone"
            targets.append(Target(label, prepare(server.apihost), {baseline.name: server.process.pid}))
        if args.distributed:
            subprocess.run([str(REPO / "deploy" / "local" / "services"), "up"], check=True)
        distributed = [(f" w{n}" if len(worker_counts) > 1 else "", {"PYWHISK_WORKERS": str(n)}) for n in worker_counts]
        distributed += [
            (
                " " + variant.replace("PYWHISK_", "").lower(),
                {"PYWHISK_WORKERS": str(worker_counts[-1]), **dict(kv.split("=", 1) for kv in variant.split(","))},
            )
            for variant in args.variant
        ]
        for n, (suffix, variant_env) in enumerate(distributed if args.distributed else []):
            # INVOKERS=N in a variant is the deployment's invoker count, not a setting.
            invokers = int(variant_env.pop("INVOKERS", "2"))
            deployment = start_deployment(
                "127.0.0.1:9092",
                "http://127.0.0.1:5984",
                work_dir / f"distributed-{n}",
                invokers=invokers,
                controller_env={**env, **variant_env},
                invoker_env={**env, **variant_env},
            )
            deployments.append(deployment)
            pids = {f"controller{i}": p.pid for i, (p, _) in deployment.controller_procs.items()}
            pids |= {f"invoker{i}": p.pid for i, p in deployment.invoker_procs.items()}
            target = Target(f"pywhisk distributed{suffix}", prepare(deployment.apihost()), pids)
            # The database's document count: cheap, where the API's count would build a view on every poll.
            target.activations_db = f"http://127.0.0.1:5984/{deployment.prefix}activations"
            target.service_pids = service_pids()
            targets.append(target)
        for target in targets:
            wait_answering(target.url)
            wrk(target, args.connections, 2)  # warm-up: lazy imports, first instances, JIT-free but cache-cold
            target.forget_warm_up()
        for round_number in range(args.rounds):
            for target in rotated(targets, round_number):
                wrk(target, args.connections, args.duration)
        say(f"load average after the rounds {load_average()}")
        floor = statistics.median(next(t for t in targets if t.name == "wasm floor").rates)
        floor_cpu = statistics.median(next(t for t in targets if t.name == "wasm floor").cpu_us)
        width = max(24, *(len(t.name) + 2 for t in targets))
        # CPU per request is the steadier figure on a shared machine: a neighbour's load slows every server's
        # requests/s, but much less what each request costs the server.
        say(
            f"{'target':<{width}}{'median req/s':>13}{'x floor':>9}{'CPU µs/req':>12}{'floor/CPU':>10}"
            "   rounds (req/s)      mean latency   non-2xx"
        )
        for target in targets:
            median = statistics.median(target.rates)
            cpu = statistics.median(target.cpu_us)
            rounds = " ".join(f"{rate:.0f}" for rate in target.rates)
            say(
                f"{target.name:<{width}}{median:>13.0f}{median / floor:>9.2f}{cpu:>12.0f}{floor_cpu / cpu:>10.2f}   "
                f"{rounds:<19} {' '.join(target.latencies):<14} {target.errors}"
            )
        # Per round too: an A/B pair is judged round by round (the same round saw the same neighbours).
        for target in targets:
            say(f"{target.name}: CPU µs/req by round {' '.join(f'{cpu:.0f}' for cpu in target.cpu_us)}")
        for target in targets:
            if target.service_cpu_us:
                # What the same requests cost the broker and the store: on a small machine they share its cores.
                services = ", ".join(
                    f"{name} {statistics.median(values):.0f}" for name, values in target.service_cpu_us.items()
                )
                say(f"{target.name}: backing services' CPU µs/req (median): {services}")
        for target in targets:
            if not target.name.endswith("floor"):
                records = count_records(target.url)
                recorded = " ".join(f"{rate:.0f}" for rate in target.recorded_rates)
                say(
                    f"{target.name}: {records} records for {target.answered} answered invokes (+ warm-ups); "
                    f"recorded/s (answered until the last record stored) median "
                    f"{statistics.median(target.recorded_rates):.0f}, rounds {recorded}"
                )
        if args.wait_time:
            for target in targets:
                if not target.name.endswith("floor"):  # pywhisk's targets and the --baseline trees
                    for in_flight in WAIT_TIME_IN_FLIGHT:
                        say(f"{target.name}: {wait_time_line(target, in_flight)}")
        if args.profile:
            args.out.mkdir(parents=True, exist_ok=True)
            for target in targets:
                if target.name.startswith("pywhisk"):
                    profile(target, args.connections, args.duration, args.out, say)
    finally:
        for process in floors:
            process.terminate()
            process.wait()
        for server in servers:
            stop_standalone(server)
        for deployment in deployments:
            deployment.stop()
        shutil.rmtree(work_dir, ignore_errors=True)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.txt").write_text("\n".join(lines) + "\n")


def spawn_floor(name: str, port: int, work_dir: Path) -> subprocess.Popen[bytes]:
    log = (work_dir / f"{name}.log").open("wb")
    script = REPO / "bench" / "floors" / f"{name}.py"
    return subprocess.Popen(
        [sys.executable, str(script), "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def prepare(apihost: str) -> str:
    """Create the hello.wasm action on ``apihost``; its blocking invoke URL."""
    uuid, key = GUEST_AUTH.split(":")
    code = base64.b64encode((REPO / "actions" / "wasm" / "hello.wasm").read_bytes()).decode()
    with httpx.Client(base_url=f"{apihost}/api/v1", auth=(uuid, key), timeout=60) as client:
        body = {"exec": {"kind": "wasm:wasi", "code": code}}
        client.put(f"/namespaces/_/actions/{ACTION}", params={"overwrite": "true"}, json=body).raise_for_status()
    return f"{apihost}/api/v1/namespaces/_/actions/{ACTION}?blocking=true"


def wait_answering(url: str, timeout_s: float = 60.0) -> None:
    uuid, key = GUEST_AUTH.split(":")
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.post(url, auth=(uuid, key), json={"name": "warm"}, timeout=30).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} does not answer 200")
        time.sleep(0.1)


def rotated(targets: list[Target], round_number: int) -> list[Target]:
    """The targets in the order of round ``round_number``: each round starts one target further on.

    A fixed order favoured some places in it: two identical distributed deployments measured 13 % apart in
    req/s by their place alone (docs/benchmarks.md, issue 15, 2026-12-07 07:14), so every place is taken in turn.
    """
    start = round_number % len(targets) if targets else 0
    return targets[start:] + targets[:start]


def wrk(target: Target, connections: int, duration: int) -> None:
    pywhisk = not target.name.endswith("floor")
    recorded_before = record_count(target) if pywhisk else 0
    cpu_before = sum(tree_cpu_seconds(pid) for pid in target.pids.values())
    services_before = {name: tree_cpu_seconds(pid) for name, pid in target.service_pids.items()}
    started = time.monotonic()
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "-s", str(INVOKE_LUA), target.url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rate = re.search(r"Requests/sec:\s+(\S+)", out)
    done = re.search(r"(\d+) requests in", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    latency = re.search(r"Latency\s+(\S+)", out)
    if rate is None or done is None:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    target.rates.append(float(rate.group(1)))
    if pywhisk:
        # A record may trail its answer (distributed: the result goes ahead of the store write). Wait until this
        # run's records are all there, so the records still being written neither go uncounted in this target's
        # CPU nor slow the next target, and rate the run by the time until its last record too.
        deadline = time.monotonic() + 60
        while record_count(target) - recorded_before < int(done.group(1)) and time.monotonic() < deadline:
            time.sleep(0.05)
        target.recorded_rates.append(int(done.group(1)) / (time.monotonic() - started))
    cpu = sum(tree_cpu_seconds(pid) for pid in target.pids.values()) - cpu_before
    target.cpu_us.append(cpu * 1e6 / max(1, int(done.group(1))))
    for name, pid in target.service_pids.items():
        used = tree_cpu_seconds(pid) - services_before[name]
        target.service_cpu_us.setdefault(name, []).append(used * 1e6 / max(1, int(done.group(1))))
    target.latencies.append(latency.group(1) if latency else "?")
    target.errors += int(errors.group(1)) if errors else 0
    target.answered += int(done.group(1))


WAIT_TIME_IN_FLIGHT = (1, 15)
WAIT_TIME_RECORDS = 200  # the last records of a wait-time run that are summarised


def wait_time_line(target: Target, in_flight: int, duration: int = 10) -> str:
    """One more wrk run at ``in_flight`` connections; the waitTime of the last records it wrote, as a line."""
    wrk(target, in_flight, 3)  # warm: one instance per connection
    wrk(target, in_flight, duration)
    rate = target.rates[-1]
    apihost = target.url.split("/api/v1/")[0]
    uuid, key = GUEST_AUTH.split(":")
    records = httpx.get(
        f"{apihost}/api/v1/namespaces/_/activations",
        params={"name": ACTION, "limit": str(WAIT_TIME_RECORDS), "docs": "true"},
        auth=(uuid, key),
        timeout=60,
    ).json()
    return f"{in_flight} in flight, {rate:.0f} req/s: {summarise_wait_times(records)}"


def summarise_wait_times(records: list[dict[str, object]]) -> str:
    """Mean, p50, p99 and max of the records' ``waitTime`` annotations (ms); records without one are counted apart."""
    waits: list[float] = []
    for record in records:
        annotations = record.get("annotations")
        found = (
            [a["value"] for a in annotations if isinstance(a, dict) and a.get("key") == "waitTime"]
            if isinstance(annotations, list)
            else []
        )
        if found and isinstance(found[0], int | float):
            waits.append(float(found[0]))
    if not waits:
        return f"no waitTime in {len(records)} records"
    ordered = sorted(waits)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return (
        f"waitTime over the last {len(waits)} records: mean {statistics.mean(waits):.2f} ms, "
        f"p50 {statistics.median(waits):.1f}, p99 {p99:.1f}, max {ordered[-1]:.0f}"
        + (f" ({len(records) - len(waits)} records without one)" if len(waits) < len(records) else "")
    )


def service_pids() -> dict[str, int]:
    """The local Kafka broker's and pouchdb-server's pids, from deploy/local's pid files (those that run)."""
    data = Path(os.environ.get("PYWHISK_DATA", Path.home() / ".cache" / "pywhisk"))
    found = {}
    for name, pid_file in (
        ("kafka", data / "kafka-data" / "kafka.pid"),
        ("couchdb", data / "couchdb-data" / "pouchdb-server.pid"),
    ):
        try:
            pid = int(pid_file.read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            continue
        found[name] = pid
    return found


def record_count(target: Target) -> int:
    if target.activations_db is not None:
        return int(httpx.get(target.activations_db, timeout=60).json()["doc_count"])
    apihost = target.url.split("/api/v1/")[0]
    uuid, key = GUEST_AUTH.split(":")
    answer = httpx.get(
        f"{apihost}/api/v1/namespaces/_/activations",
        params={"name": ACTION, "count": "true"},
        auth=(uuid, key),
        timeout=60,
    )
    return int(answer.json()["activations"])


def count_records(invoke_url: str) -> int:
    apihost = invoke_url.split("/api/v1/")[0]
    uuid, key = GUEST_AUTH.split(":")
    # Records are written in group commits after the answer: give the last batch a moment to land.
    deadline = time.monotonic() + 30
    previous = -1
    while True:
        count = httpx.get(
            f"{apihost}/api/v1/namespaces/_/activations",
            params={"name": ACTION, "count": "true"},
            auth=(uuid, key),
            timeout=60,
        ).json()["activations"]
        if count == previous or time.monotonic() > deadline:
            return int(count)
        previous = count
        time.sleep(1.0)


def profile(target: Target, connections: int, duration: int, out: Path, say: Callable[[str], None]) -> None:
    """py-spy flame graphs of each of ``target``'s processes during one more wrk run."""
    recorders = []
    slug = target.name.replace("pywhisk ", "")
    for name, pid in target.pids.items():
        path = out / f"{slug}-{name}.svg"
        recorders.append(
            subprocess.Popen(
                [
                    "py-spy",
                    "record",
                    "--nonblocking",
                    "--subprocesses",  # a --workers supervisor's workers
                    "--rate",
                    "200",
                    "-p",
                    str(pid),
                    "-d",
                    str(duration + 1),
                    "-f",
                    "flamegraph",
                    "-o",
                    str(path),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    time.sleep(0.5)
    wrk(target, connections, duration)
    for recorder in recorders:
        recorder.wait(timeout=60)
    say(f"{target.name} under py-spy: {target.rates[-1]:.0f} req/s; flame graphs {slug}-*.svg")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of process ``pid`` (all its threads) so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """CPU of ``pid`` and every live process below it (``--workers``: the supervisor and its workers)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
            except (OSError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            total += cpu_seconds(current)
        except OSError:  # exited meanwhile
            continue
        todo.extend(children.get(current, []))
    return total


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


if __name__ == "__main__":
    main()
