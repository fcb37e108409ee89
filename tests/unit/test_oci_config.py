"""The crun-direct engine's OCI ``config.json`` (executor_docker/oci.py): the dockerd path's limits, no network."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from executor_docker.logs import SENTINEL, LogCollector
from executor_docker.oci import SOCKET_DIR, ImageConfig, OciHost, OciStarted, _user, bundle_config, connect_output
from executor_docker.settings import DockerSettings

pytestmark = pytest.mark.unit

IMAGE = ImageConfig(
    image_id="sha256:abc",
    rootfs=Path("/cache/sha256-abc/rootfs"),
    args=["python3", "-u", "/action/actionproxy.py"],
    env=["PATH=/usr/bin:/bin", "HOME=/tmp", "__OW_PROXY_SOCKET=/elsewhere"],
    cwd="/action",
    uid=1000,
    gid=1000,
)


def config(**settings: object) -> dict[str, object]:
    return bundle_config(IMAGE, 256, 512, DockerSettings(**settings), Path("/run/b/sock"), "/pywhisk/c1", "action")


def test_memory_limit_without_swap_pids_and_cpu_shares() -> None:
    resources = config()["linux"]["resources"]  # type: ignore[index]
    assert resources == {
        "memory": {"limit": 256 << 20, "swap": 256 << 20},
        "pids": {"limit": 1024},
        "cpu": {"shares": 512},
    }


def test_read_only_root_of_the_shared_rootfs_and_sized_tmpfs_writable_paths() -> None:
    found = config(tmpfs_mb=32, writable_paths=["/tmp", "/var/cache"])
    assert found["root"] == {"path": "/cache/sha256-abc/rootfs", "readonly": True}
    tmpfs = {
        m["destination"]: m["options"] for m in found["mounts"] if m["source"] == "tmpfs" and m["destination"] != "/dev"
    }  # type: ignore[union-attr,index]
    assert set(tmpfs) == {"/tmp", "/var/cache"}
    assert all("size=32m" in options and "nosuid" in options for options in tmpfs.values())


def test_no_privileges_the_images_user_and_nofile() -> None:
    process = config()["process"]
    assert process["user"] == {"uid": 1000, "gid": 1000}  # type: ignore[index]
    assert process["noNewPrivileges"] is True  # type: ignore[index]
    assert all(caps == [] for caps in process["capabilities"].values())  # type: ignore[index]
    assert process["rlimits"] == [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}]  # type: ignore[index]
    assert process["args"] == IMAGE.args and process["cwd"] == "/action"  # type: ignore[index]


def test_a_network_namespace_of_its_own_and_the_proxy_on_a_bind_mounted_socket() -> None:
    found = config()
    namespaces = [n["type"] for n in found["linux"]["namespaces"]]  # type: ignore[index]
    assert "network" in namespaces and "pid" in namespaces and "mount" in namespaces
    (bind,) = [m for m in found["mounts"] if m["type"] == "bind"]  # type: ignore[union-attr,index]
    assert bind["source"] == "/run/b/sock" and bind["destination"] == SOCKET_DIR
    env = found["process"]["env"]  # type: ignore[index]
    assert [e for e in env if e.startswith("__OW_PROXY_SOCKET=")] == [f"__OW_PROXY_SOCKET={SOCKET_DIR}/proxy.sock"]
    assert found["linux"]["cgroupsPath"] == "/pywhisk/c1"  # type: ignore[index]


def test_users_resolve_from_numbers_or_the_images_passwd(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\nnode:x:1000:1001::/home/node:/bin/sh\n")
    assert _user(tmp_path, "1000:1000") == (1000, 1000)
    assert _user(tmp_path, "0") == (0, 0)
    assert _user(tmp_path, "node") == (1000, 1001)


def test_container_ids_name_their_owner_and_are_safe_for_crun() -> None:
    settings = DockerSettings()
    no_docker = SimpleNamespace(api=None)  # ids need no daemon
    one = OciHost(no_docker, "invoker0@host:/a", settings)  # type: ignore[arg-type]
    other = OciHost(no_docker, "invoker1@host:/a", settings)  # type: ignore[arg-type]
    assert one.container_id("x/y z").startswith(one.prefix)
    assert one.container_id("x/y z").endswith("x_y_z")
    assert one.prefix != other.prefix


def test_seccomp_allows_by_default_and_refuses_user_namespaces() -> None:
    seccomp = config()["linux"]["seccomp"]  # type: ignore[index]
    assert seccomp["defaultAction"] == "SCMP_ACT_ALLOW"
    denied = {name for rule in seccomp["syscalls"] if rule["action"] == "SCMP_ACT_ERRNO" for name in rule["names"]}
    assert {"unshare", "setns", "keyctl", "bpf", "ptrace", "mount", "clone", "clone3"} <= denied


async def test_output_pipes_feed_the_log_collector_per_stream_and_close_it_at_the_end() -> None:
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    started = OciStarted("c1", Path("/nowhere"), out_r, err_r, None)
    collector = LogCollector()
    pipes = await connect_output(started, collector)
    assert (started.stdout, started.stderr) == (-1, -1)  # the event loop owns them now
    started.close()  # and a close of what was handed over closes nothing
    os.write(out_w, b"out\n" + SENTINEL + b"\n")
    os.write(err_w, b"err\n" + SENTINEL + b"\n")
    assert await collector.wait(5.0)
    assert [line.split(" ", 1)[1].strip() for line in collector.take()] == ["stdout: out", "stderr: err"]
    os.close(out_w)
    os.close(err_w)
    assert await collector.wait_closed(5.0)
    pipes.close()
