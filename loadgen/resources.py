"""CPU and memory of the server processes and of the Docker containers, sampled over time (capacity).

Read straight from ``/proc`` and the cgroup filesystem (no psutil needed), so it only sees anything when the API
host runs on this machine:

- server: the process listening on the API host's port (found through ``/proc/net/tcp*`` and the processes' socket
  file descriptors) and its descendants (e.g. ``pywhisk executor-wasm`` children); if no listener is found, every
  process whose command line contains ``pywhisk``. ``--server-pid`` overrides both.
- containers: every Docker container's cgroup -- v1 ``/sys/fs/cgroup/{memory,cpuacct}/docker/<id>/`` or v2
  ``/sys/fs/cgroup/system.slice/docker-<id>.scope/``. All containers on the host count, pywhisk's or not.

CPU is in percent of one core over the sampling interval (200 % = two cores busy), memory in bytes: the summed RSS
of the server processes, and the summed cgroup memory usage (``memory.usage_in_bytes`` / ``memory.current``,
which includes page cache) of the containers.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

PROC = Path("/proc")
CGROUP = Path("/sys/fs/cgroup")
_TCP_LISTEN = "0A"


@dataclass(frozen=True)
class ProcessTimes:
    """A process's CPU time (seconds) and resident memory (bytes) at one moment."""

    cpu_s: float
    rss_bytes: int


@dataclass(frozen=True)
class ContainerUsage:
    """A container's cumulative CPU time (seconds) and memory usage (bytes) at one moment."""

    cpu_s: float | None
    memory_bytes: int | None


class ResourceSampler:
    """Appends one sample per ``interval_s`` to a JSONL file from a background thread, until stopped.

    Each line: ``t`` (seconds since start), ``time`` (epoch), ``level`` (what ``level_of()`` said), ``server``
    (``pids``, ``cpu_percent``, ``rss_bytes``) and ``containers`` (``count``, ``cpu_percent``, ``memory_bytes``).
    A thread, not a task: the event loop is busy with thousands of requests and must not skew the intervals.
    """

    def __init__(
        self,
        path: Path,
        *,
        server_pids: Callable[[], list[int]],
        level_of: Callable[[], int | None] = lambda: None,
        interval_s: float = 0.5,
    ) -> None:
        self.path = path
        self.server_pids = server_pids
        self.level_of = level_of
        self.interval_s = interval_s
        self.samples = 0
        self._stop = threading.Event()
        self._out: IO[str]
        self._thread = threading.Thread(target=self._loop, name="loadgen-resources", daemon=True)

    def __enter__(self) -> ResourceSampler:
        self._out = self.path.open("w", encoding="utf-8")
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._out.close()

    def _loop(self) -> None:
        origin = last_time = time.monotonic()
        # The first reading only gives the CPU counters to take differences from.
        last_procs = self._processes()
        last_containers = container_usage()
        while not self._stop.wait(self.interval_s):
            now = time.monotonic()
            procs, containers = self._processes(), container_usage()
            elapsed = max(now - last_time, 1e-9)
            sample = {
                "t": round(now - origin, 3),
                "time": round(time.time(), 3),
                "level": self.level_of(),
                "server": {
                    "pids": sorted(procs),
                    "cpu_percent": _cpu_percent(procs, last_procs, elapsed),
                    "rss_bytes": sum(p.rss_bytes for p in procs.values()),
                },
                "containers": {
                    "count": len(containers),
                    "cpu_percent": _container_cpu_percent(containers, last_containers, elapsed),
                    "memory_bytes": sum(c.memory_bytes or 0 for c in containers.values()),
                },
            }
            self._out.write(json.dumps(sample) + "\n")
            self._out.flush()
            self.samples += 1
            last_time, last_procs, last_containers = now, procs, containers

    def _processes(self) -> dict[int, ProcessTimes]:
        return {pid: t for pid in self.server_pids() if (t := process_times(pid)) is not None}


def find_server_pids(apihost: str, explicit: list[int] | None = None) -> list[int]:
    """The server's processes: ``explicit`` (with descendants), else the local listener of the API host's port
    (with descendants), else every process whose command line mentions ``pywhisk``; none if not local."""
    if explicit:
        return with_descendants(explicit)
    parts = urlsplit(apihost)
    local = parts.hostname in ("127.0.0.1", "localhost", "::1", "0.0.0.0") or parts.hostname == os.uname().nodename
    if not local:
        return []
    port = parts.port or (443 if parts.scheme == "https" else 80)
    listeners = listening_pids(port)
    if listeners:
        return with_descendants(listeners)
    return [pid for pid in _pids() if "pywhisk" in _cmdline(pid) and pid != os.getpid()]


def listening_pids(port: int) -> list[int]:
    """The processes holding a TCP socket that listens on ``port``."""
    inodes: set[str] = set()
    for table in ("net/tcp", "net/tcp6"):
        try:
            lines = (PROC / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == _TCP_LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    if not inodes:
        return []
    wanted = {f"socket:[{inode}]" for inode in inodes}
    found = []
    for pid in _pids():
        try:
            fds = os.listdir(PROC / str(pid) / "fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(PROC / str(pid) / "fd" / fd) in wanted:
                    found.append(pid)
                    break
            except OSError:
                continue
    return found


def with_descendants(pids: list[int]) -> list[int]:
    """``pids`` and all their descendant processes."""
    children: dict[int, list[int]] = {}
    for pid in _pids():
        parent = _ppid(pid)
        if parent is not None:
            children.setdefault(parent, []).append(pid)
    result, todo = set(pids), list(pids)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in result:
                result.add(child)
                todo.append(child)
    return sorted(result)


def process_times(pid: int) -> ProcessTimes | None:
    """CPU seconds (user + system) and RSS of ``pid``; None if it is gone."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
        statm = (PROC / str(pid) / "statm").read_text().split()
    except OSError:
        return None
    # The command name (field 2) may contain spaces: split after its closing parenthesis.
    fields = stat.rpartition(")")[2].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu_s = (int(fields[11]) + int(fields[12])) / ticks
    return ProcessTimes(cpu_s, int(statm[1]) * os.sysconf("SC_PAGE_SIZE"))


def container_usage(root: Path = CGROUP) -> dict[str, ContainerUsage]:
    """Cumulative CPU and current memory of every Docker container, by id (cgroup v1 or v2); empty if none."""
    usage: dict[str, ContainerUsage] = {}
    v1_memory, v1_cpu = root / "memory" / "docker", root / "cpuacct" / "docker"
    if v1_memory.is_dir():
        for entry in v1_memory.iterdir():
            if entry.is_dir() and len(entry.name) == 64:
                cpu_ns = _read_int(v1_cpu / entry.name / "cpuacct.usage")
                usage[entry.name] = ContainerUsage(
                    None if cpu_ns is None else cpu_ns / 1e9, _read_int(entry / "memory.usage_in_bytes")
                )
        return usage
    slice_dir = root / "system.slice"
    if slice_dir.is_dir():
        for entry in slice_dir.glob("docker-*.scope"):
            cid = entry.name[len("docker-") : -len(".scope")]
            usage[cid] = ContainerUsage(_v2_cpu_s(entry / "cpu.stat"), _read_int(entry / "memory.current"))
    return usage


def _cpu_percent(now: dict[int, ProcessTimes], before: dict[int, ProcessTimes], elapsed: float) -> float:
    used = sum(t.cpu_s - before[pid].cpu_s for pid, t in now.items() if pid in before)
    return round(max(used, 0.0) / elapsed * 100, 1)


def _container_cpu_percent(now: dict[str, ContainerUsage], before: dict[str, ContainerUsage], elapsed: float) -> float:
    used = 0.0
    for cid, usage in now.items():
        previous = before.get(cid)
        if previous is not None and usage.cpu_s is not None and previous.cpu_s is not None:
            used += max(usage.cpu_s - previous.cpu_s, 0.0)
    return round(used / elapsed * 100, 1)


def _v2_cpu_s(path: Path) -> float | None:
    try:
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "usage_usec":
                return int(value) / 1e6
    except (OSError, ValueError):
        pass
    return None


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _pids() -> list[int]:
    try:
        return [int(name) for name in os.listdir(PROC) if name.isdigit()]
    except OSError:
        return []


def _ppid(pid: int) -> int | None:
    try:
        return int((PROC / str(pid) / "stat").read_text().rpartition(")")[2].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _cmdline(pid: int) -> str:
    try:
        return (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def summarize_samples(samples: list[dict[str, Any]]) -> dict[str, float]:
    """Peaks and means of a resources file's samples (for the summary and the report)."""
    if not samples:
        return {}

    def column(group: str, key: str) -> list[float]:
        return [float(s[group][key]) for s in samples if isinstance(s.get(group), dict) and key in s[group]]

    result: dict[str, float] = {"samples": float(len(samples))}
    for group, key in (
        ("server", "cpu_percent"),
        ("server", "rss_bytes"),
        ("containers", "cpu_percent"),
        ("containers", "memory_bytes"),
        ("containers", "count"),
    ):
        values = column(group, key)
        if values:
            result[f"{group}_{key}_max"] = max(values)
            result[f"{group}_{key}_mean"] = sum(values) / len(values)
    return result
