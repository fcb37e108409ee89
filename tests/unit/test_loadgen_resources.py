"""Resource sampling from /proc and cgroup files (fake cgroup trees; this process for /proc)."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import pytest

from loadgen.resources import (
    ResourceSampler,
    container_usage,
    find_server_pids,
    listening_pids,
    process_times,
    summarize_samples,
    with_descendants,
)

pytestmark = pytest.mark.unit
CID = "a" * 64
needs_proc = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")


def test_cgroup_v1_containers(tmp_path: Path) -> None:
    (tmp_path / "memory" / "docker" / CID).mkdir(parents=True)
    (tmp_path / "memory" / "docker" / CID / "memory.usage_in_bytes").write_text("4096\n")
    (tmp_path / "cpuacct" / "docker" / CID).mkdir(parents=True)
    (tmp_path / "cpuacct" / "docker" / CID / "cpuacct.usage").write_text("2500000000\n")
    (tmp_path / "memory" / "docker" / "not-a-container").mkdir()

    usage = container_usage(tmp_path)

    assert list(usage) == [CID]
    assert (usage[CID].cpu_s, usage[CID].memory_bytes) == (2.5, 4096)


def test_cgroup_v2_containers(tmp_path: Path) -> None:
    scope = tmp_path / "system.slice" / f"docker-{CID}.scope"
    scope.mkdir(parents=True)
    (scope / "memory.current").write_text("8192\n")
    (scope / "cpu.stat").write_text("usage_usec 1500000\nuser_usec 1000000\n")

    usage = container_usage(tmp_path)

    assert (usage[CID].cpu_s, usage[CID].memory_bytes) == (1.5, 8192)


def test_no_cgroups_means_no_containers(tmp_path: Path) -> None:
    assert container_usage(tmp_path) == {}


@needs_proc
def test_this_process_has_cpu_time_and_memory() -> None:
    times = process_times(os.getpid())

    assert times is not None and times.rss_bytes > 0 and times.cpu_s >= 0
    assert process_times(2**22 + 12345) is None


@needs_proc
def test_the_listener_of_a_port_is_found() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]

        assert os.getpid() in listening_pids(port)
        assert os.getpid() in find_server_pids(f"http://127.0.0.1:{port}")
    assert find_server_pids("https://openwhisk.example.com") == []
    assert find_server_pids("http://remote:1", explicit=[os.getpid()]) == with_descendants([os.getpid()])


@needs_proc
def test_the_sampler_writes_samples_with_the_current_level(tmp_path: Path) -> None:
    path = tmp_path / "resources.jsonl"
    with ResourceSampler(path, server_pids=lambda: [os.getpid()], level_of=lambda: 7, interval_s=0.02):
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and len(path.read_text().splitlines()) < 3:
            time.sleep(0.02)
    samples = [json.loads(line) for line in path.read_text().splitlines()]

    assert len(samples) >= 3
    assert samples[0]["level"] == 7
    assert samples[0]["server"]["pids"] == [os.getpid()]
    assert samples[0]["server"]["rss_bytes"] > 0
    assert summarize_samples(samples)["samples"] == len(samples)
