"""``OciHost``: action containers started by Debian's ``crun`` directly, without dockerd (issue 17).

Why: through dockerd a fresh container costs ~250-280 ms, ~85 % of it ``docker start`` (dockerd →
containerd → shim → runtime), and crun behind dockerd saves only ~19 ms (docs/benchmarks.md "crun beside
runc"). Driving the OCI runtime ourselves leaves only crun's own work and the proxy's start-up. In
exchange this module does what dockerd did:

- **rootfs**: an image's filesystem is exported once per image id (``docker export`` of a created, never
  started container) into ``<cache>/<image id>/rootfs`` and shared, read-only, by every container of that
  image; ``/tmp`` (the settings' writable paths) is a sized tmpfs per container, as on the dockerd path.
  dockerd is still asked which id an image name has (cached for ``IMAGE_TTL_S``): images stay built and
  tagged by ``deploy/local/build-images``, with no registry.
- **network**: none. Each container gets a new network namespace with only a loopback interface, and its
  proxy listens on a Unix socket (``__OW_PROXY_SOCKET``) in a per-container host directory bind-mounted at
  ``/run/pywhisk``. That is why only actions annotated ``network: false`` take this path (executor.py).
- **output**: the container's stdout and stderr are pipes held by the executor, fed to the same
  ``LogCollector`` (and sentinel handling) as dockerd's attach stream.
- **processes**: ``crun run`` stays in the foreground as the executor's child, so that the container's
  init is reaped by crun and crun by us (a detached container is re-parented to PID 1, which here does not
  reap). crun deletes a container whose init exited; ``remove`` deletes a running one.
- **cgroups**: ``--cgroup-manager=cgroupfs`` under ``/pywhisk/<container id>``; on this hybrid v1/v2 host
  crun only works once every controller is on the v1 side (deploy/local/dockerd.sh mounts hugetlb there).

Container ids are ``pywhisk-<hash of the owner>-<instance id>``, so ``remove_owned`` finds this owner's
leftovers in ``crun list`` and in the state directory, and never another owner's.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import struct
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import docker
import docker.errors

from executor_docker.containers import PostMortem, _oom_kills
from executor_docker.logs import LogCollector
from executor_docker.settings import DockerSettings
from pywhisk.errors import ExecutorError

# Where the proxy's Unix socket lives inside the container (a bind mount of the container's host dir).
SOCKET_DIR = "/run/pywhisk"
SOCKET_NAME = "proxy.sock"
# sockaddr_un's sun_path holds 108 bytes with the terminating NUL: the socket under the state directory must fit.
MAX_SOCKET_PATH = 107
# How long the id of an image name is trusted: a rebuilt image is picked up after at most this.
IMAGE_TTL_S = 10.0
# crun's own failures (a bad config, a missing binary in the image) show within this after `crun run`.
START_CHECK_S = 0.5
CRUN_TIMEOUT_S = 30.0
# After crun removed a dead container's cgroup, how long its `crun run` may take to exit.
EXIT_WAIT_S = 1.0
# Capabilities: none, as on the dockerd path (cap_drop ALL).
_NO_CAPABILITIES: dict[str, list[str]] = {
    "bounding": [],
    "effective": [],
    "inheritable": [],
    "permitted": [],
    "ambient": [],
}
# As crun's and runc's default spec (``crun spec``): kernel interfaces an action has no business reading.
_MASKED_PATHS = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/proc/scsi",
]
_READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
# Docker's default seccomp profile is an allowlist compiled into dockerd; this is its deny side for a
# container without capabilities: what it refuses (EPERM) that a process without CAP_SYS_ADMIN could
# otherwise still reach, above all new user namespaces (unshare, clone with CLONE_NEWUSER), the kernel
# keyring, bpf, perf events, userfaultfd and ptrace-like access to other processes.
_DENIED_SYSCALLS = [
    "acct", "add_key", "bpf", "clock_adjtime", "clock_settime", "create_module", "delete_module",
    "finit_module", "get_kernel_syms", "init_module", "ioperm", "iopl", "kcmp", "kexec_file_load",
    "kexec_load", "keyctl", "lookup_dcookie", "mount", "move_mount", "name_to_handle_at", "nfsservctl",
    "open_by_handle_at", "open_tree", "fsopen", "fsmount", "fspick", "perf_event_open", "pivot_root",
    "process_vm_readv", "process_vm_writev", "ptrace", "query_module", "quotactl", "reboot", "request_key",
    "setns", "settimeofday", "swapon", "swapoff", "sysfs", "_sysctl", "umount2", "unshare", "uselib",
    "userfaultfd", "ustat", "vm86", "vm86old",
]  # fmt: skip
_CLONE_NEWUSER = 0x10000000
_EPERM, _ENOSYS = 1, 38
_FRAME = ">BxxxL"  # Docker's stdcopy header, so that pipe output feeds the same LogCollector

logger = logging.getLogger(__name__)


class ContainerHost(Protocol):
    """What the executor does to a started container, on dockerd (``DockerHost``) or directly (``OciHost``)."""

    def kill(self, container_id: str) -> None: ...

    def remove(self, container_id: str) -> None: ...

    def pause(self, container_id: str) -> None: ...

    def unpause(self, container_id: str) -> None: ...

    def post_mortem(self, container_id: str, oom_counter: Path | None) -> PostMortem: ...

    def remove_owned(self) -> int: ...


@dataclass(frozen=True, slots=True)
class ImageConfig:
    """What of an image's configuration a container needs: its process and its exported filesystem."""

    image_id: str
    rootfs: Path
    args: list[str]
    env: list[str]
    cwd: str
    uid: int
    gid: int


@dataclass(slots=True)
class OciStarted:
    """A container started by ``crun run``: its proxy's socket, its output pipes and its OOM counter."""

    container_id: str
    socket_path: Path
    stdout: int  # read ends of the container's stdout and stderr pipes, for the event loop
    stderr: int
    oom_counter: Path | None

    def close(self) -> None:
        """Close the pipes not handed over to the event loop (``connect_output``); idempotent."""
        for fd in (self.stdout, self.stderr):
            if fd >= 0:
                os.close(fd)
        self.stdout = self.stderr = -1


def bundle_config(
    image: ImageConfig,
    memory_mb: int,
    cpu_shares: int,
    settings: DockerSettings,
    socket_dir: Path,
    cgroups_path: str,
    hostname: str,
    pids_limit: int = 1024,
    nofile: int = 1024,
) -> dict[str, Any]:
    """The OCI ``config.json`` of an action container: the dockerd path's limits, without a network.

    As ``DockerHost.host_config``: memory limit with no swap on top, 1024 pids, OpenWhisk's CPU shares,
    a read-only root with sized tmpfs writable paths, no capabilities, no-new-privileges, the image's
    user, ``nofile`` 1024. New namespaces include the network one: loopback only.
    """
    memory = memory_mb * 1024 * 1024
    tmpfs = f"size={settings.tmpfs_mb}m"
    mounts: list[dict[str, Any]] = [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755"]},
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"],
        },
        {
            "destination": "/dev/shm",
            "type": "tmpfs",
            "source": "shm",
            "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        },
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
    ]
    mounts += [
        {
            "destination": path,
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["rw", "exec", "nosuid", "nodev", tmpfs, "mode=1777"],
        }
        for path in settings.writable_paths
    ]
    mounts.append(
        {
            "destination": SOCKET_DIR,
            "type": "bind",
            "source": str(socket_dir),
            "options": ["rbind", "rw", "nosuid", "nodev", "noexec"],
        }
    )
    env = [item for item in image.env if not item.startswith("__OW_PROXY_SOCKET=")]
    env.append(f"__OW_PROXY_SOCKET={SOCKET_DIR}/{SOCKET_NAME}")
    return {
        "ociVersion": "1.0.0",
        "root": {"path": str(image.rootfs), "readonly": True},
        "hostname": hostname,
        "process": {
            "terminal": False,
            "user": {"uid": image.uid, "gid": image.gid},
            "args": image.args,
            "env": env,
            "cwd": image.cwd or "/",
            "capabilities": _NO_CAPABILITIES,
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": nofile, "soft": nofile}],
            "noNewPrivileges": True,
        },
        "mounts": mounts,
        "linux": {
            "resources": {
                "memory": {"limit": memory, "swap": memory},  # swap = memory + swap: none on top
                "pids": {"limit": pids_limit},
                "cpu": {"shares": cpu_shares},
            },
            "cgroupsPath": cgroups_path,
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            "seccomp": _seccomp(),
            "maskedPaths": _MASKED_PATHS,
            "readonlyPaths": _READONLY_PATHS,
        },
    }


def _seccomp() -> dict[str, Any]:
    """Allow by default; refuse ``_DENIED_SYSCALLS`` and user namespaces with EPERM.

    ``clone3`` answers ENOSYS, as in Docker's profile: its flags sit in memory a filter cannot read, and
    with ENOSYS the C library falls back to ``clone``, whose CLONE_NEWUSER flag the filter can see.
    """
    return {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": _DENIED_SYSCALLS, "action": "SCMP_ACT_ERRNO", "errnoRet": _EPERM},
            {
                "names": ["clone"],
                "action": "SCMP_ACT_ERRNO",
                "errnoRet": _EPERM,
                "args": [{"index": 0, "value": _CLONE_NEWUSER, "valueTwo": _CLONE_NEWUSER, "op": "SCMP_CMP_MASKED_EQ"}],
            },
            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": _ENOSYS},
        ],
    }


class RootfsCache:
    """Image name → its exported, read-only root filesystem under ``cache_dir/<image id>/``."""

    def __init__(self, client: docker.DockerClient, cache_dir: Path, writable_paths: list[str]) -> None:
        self.api: Any = client.api  # the SDK's low-level client is untyped
        self.cache_dir = cache_dir
        self.writable_paths = writable_paths
        self._ids: dict[str, tuple[float, str]] = {}  # name → (monotonic expiry, image id)
        self._configs: dict[str, ImageConfig] = {}  # image id → its config
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, image: str) -> ImageConfig:
        """The image's config and rootfs, exporting it on first use of its id (~1 s for the Python image)."""
        now = time.monotonic()
        known = self._ids.get(image)
        if known is not None and known[0] > now and known[1] in self._configs:
            return self._configs[known[1]]
        try:
            inspected = self.api.inspect_image(image)
        except docker.errors.ImageNotFound:
            raise ExecutorError(f"image {image} not found; run deploy/local/build-images") from None
        except docker.errors.DockerException as error:
            raise ExecutorError(f"docker inspect {image} failed: {error}") from error
        image_id = str(inspected["Id"])
        with self._lock:
            lock = self._locks.setdefault(image_id, threading.Lock())
        with lock:  # one export per image id, however many containers start at once
            config = self._configs.get(image_id) or self._load(image, image_id, inspected["Config"] or {})
            self._configs[image_id] = config
        self._ids[image] = (now + IMAGE_TTL_S, image_id)
        return config

    def _load(self, image: str, image_id: str, config: dict[str, Any]) -> ImageConfig:
        directory = self.cache_dir / image_id.replace(":", "-")
        rootfs = directory / "rootfs"
        if not rootfs.is_dir():
            self._export(image, directory)
        args = list(config.get("Entrypoint") or []) + list(config.get("Cmd") or [])
        if not args:
            raise ExecutorError(f"image {image} has neither an entrypoint nor a command")
        uid, gid = _user(rootfs, str(config.get("User") or "0"))
        env = list(config.get("Env") or [])
        return ImageConfig(image_id, rootfs, args, env, str(config.get("WorkingDir") or "/"), uid, gid)

    def _export(self, image: str, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix="rootfs.", dir=directory))
        created = self.api.create_container(image, detach=True)
        try:
            tar = subprocess.Popen(["tar", "-x", "-C", str(staging)], stdin=subprocess.PIPE)
            assert tar.stdin is not None
            try:
                for chunk in self.api.export(created["Id"]):
                    tar.stdin.write(chunk)
            finally:
                tar.stdin.close()
                if tar.wait() != 0:
                    raise ExecutorError(f"exporting {image}: tar failed with {tar.returncode}")
            # Mount points must exist in the read-only root: the socket's directory and the writable paths.
            for path in [SOCKET_DIR, *self.writable_paths]:
                (staging / path.lstrip("/")).mkdir(parents=True, exist_ok=True)
            os.chmod(staging, 0o755)  # mkdtemp's 0700 would keep the image's user out of its own root
            staging.rename(directory / "rootfs")
            logger.info("exported the root filesystem of %s into %s", image, directory)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        finally:
            with contextlib.suppress(docker.errors.DockerException):
                self.api.remove_container(created["Id"], force=True)


@dataclass(slots=True)
class _Running:
    process: subprocess.Popen[bytes]
    bundle: Path
    killed: bool = False


@dataclass(slots=True)
class OciHost:
    """The direct-engine containers of one invoker, named after its ``owner``; methods block (run on a pool)."""

    client: docker.DockerClient
    owner: str
    settings: DockerSettings
    crun: str = "crun"
    _running: dict[str, _Running] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    rootfs: RootfsCache = field(init=False)
    prefix: str = field(init=False)

    def __post_init__(self) -> None:
        self.rootfs = RootfsCache(self.client, self.settings.oci_cache_dir.expanduser(), self.settings.writable_paths)
        self.prefix = f"pywhisk-{hashlib.sha256(self.owner.encode()).hexdigest()[:12]}-"

    @property
    def state_dir(self) -> Path:
        return self.settings.oci_state_dir

    def container_id(self, instance_id: str) -> str:
        """crun accepts letters, digits, ``_.-``: anything else of an instance id becomes ``_``."""
        return self.prefix + re.sub(r"[^A-Za-z0-9_.-]", "_", instance_id)

    def available(self) -> str | None:
        """Why the direct engine cannot run here, or None."""
        found = shutil.which(self.crun)
        if found is None:
            return f"{self.crun} is not installed (deploy/local/dockerd.sh up installs Debian's crun)"
        self.crun = found
        return None

    def start_container(self, instance_id: str, image: str, memory_mb: int, cpu_shares: int) -> OciStarted:
        """Write the bundle and ``crun run`` it in the foreground, its output on pipes.

        Returns once the proxy's socket exists (or after ``START_CHECK_S``: the executor keeps waiting for
        it); raises with crun's own message if ``crun run`` ends before that.
        """
        config = self.rootfs.get(image)
        container_id = self.container_id(instance_id)
        bundle = self.state_dir / container_id
        socket_dir = bundle / "sock"
        if len(str(socket_dir / SOCKET_NAME)) > MAX_SOCKET_PATH:
            raise ExecutorError(f"the socket path under {self.state_dir} is too long for a Unix socket")
        shutil.rmtree(bundle, ignore_errors=True)
        socket_dir.mkdir(parents=True)
        os.chown(socket_dir, config.uid, config.gid)
        os.chmod(socket_dir, 0o700)
        spec = bundle_config(
            config, memory_mb, cpu_shares, self.settings, socket_dir, f"/pywhisk/{container_id}", "action"
        )
        (bundle / "config.json").write_bytes(json.dumps(spec).encode())
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            process = subprocess.Popen(
                [self.crun, "--cgroup-manager=cgroupfs", "run", "--bundle", str(bundle), container_id],
                stdin=subprocess.DEVNULL,
                stdout=out_w,
                stderr=err_w,
                close_fds=True,
                start_new_session=True,  # a signal to the invoker's process group must not reach it
            )
        except OSError as error:
            os.close(out_r)
            os.close(err_r)
            shutil.rmtree(bundle, ignore_errors=True)
            raise ExecutorError(f"crun run failed: {error}") from error
        finally:  # the container holds the write ends now: ours would keep the pipes open after it exits
            os.close(out_w)
            os.close(err_w)
        with self._lock:
            self._running[container_id] = _Running(process, bundle)
        started = OciStarted(container_id, socket_dir / SOCKET_NAME, out_r, err_r, _oom_counter(container_id))
        # crun's own errors (no such binary, a config it refuses) end it within milliseconds: report them
        # as the platform's, not as the action's output. A proxy that listens is a start.
        deadline = time.monotonic() + START_CHECK_S
        while time.monotonic() < deadline and not started.socket_path.exists():
            if process.poll() is not None:
                message = _read_available(err_r)
                started.close()
                self.remove(container_id)
                raise ExecutorError(f"crun run of {image} failed ({process.returncode}): {message.strip()}")
            time.sleep(0.001)
        return started

    def kill(self, container_id: str) -> None:
        """SIGKILL the container's processes (its state stays until ``remove``)."""
        running = self._running.get(container_id)
        if running is not None:
            running.killed = True
        self._crun("kill", "--all", container_id, "KILL", check=False)

    def remove(self, container_id: str) -> None:
        """``crun delete --force``, reap ``crun run``, remove the bundle; idempotent."""
        with self._lock:
            running = self._running.pop(container_id, None)
        self._crun("delete", "--force", container_id, check=False)
        if running is not None:
            try:
                running.process.wait(CRUN_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                running.process.kill()
                running.process.wait()
        shutil.rmtree(self.state_dir / container_id, ignore_errors=True)

    def pause(self, container_id: str) -> None:
        """Freeze the container's processes (``crun pause``, the freezer cgroup)."""
        self._crun("pause", container_id)

    def unpause(self, container_id: str) -> None:
        """Thaw them (``crun resume``)."""
        self._crun("resume", container_id)

    def post_mortem(self, container_id: str, oom_counter: Path | None) -> PostMortem:
        """Did it run out of memory, and is it running?

        While the container lives its cgroup's OOM counter answers (a child of the action killed, the
        proxy alive). crun deletes the cgroup with a container whose init died, so for a dead one the
        answer is its exit: SIGKILL that the executor did not send is the kernel's OOM killer (or the
        action killing itself with SIGKILL, which this cannot tell apart).
        """
        oom_killed = _oom_kills(oom_counter) > 0
        running = self._running.get(container_id)
        if running is None:
            return PostMortem(memory_exhausted=oom_killed, running=False)
        code = running.process.poll()
        if code is None and oom_counter is not None and not oom_counter.parent.exists():
            # crun removed the cgroup: its `crun run` is exiting (the pipes may close a moment before).
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = running.process.wait(EXIT_WAIT_S)
        if code is None:
            return PostMortem(memory_exhausted=oom_killed, running=True)
        # crun run exits with 128 + the signal that ended the container's init.
        by_sigkill = code in (128 + signal.SIGKILL, -signal.SIGKILL)
        return PostMortem(memory_exhausted=oom_killed or (by_sigkill and not running.killed), running=False)

    def remove_owned(self) -> int:
        """Delete this owner's containers in ``crun list`` and its bundles (left by an earlier run); how many."""
        listed = self._crun("list", "--quiet", check=False).split()
        owned = {name for name in listed if name.startswith(self.prefix)}
        if self.state_dir.is_dir():
            owned |= {entry.name for entry in self.state_dir.iterdir() if entry.name.startswith(self.prefix)}
        for container_id in owned:
            self.remove(container_id)
        return len(owned)

    def _crun(self, *args: str, check: bool = True) -> str:
        try:
            done = subprocess.run(
                [self.crun, "--cgroup-manager=cgroupfs", *args],
                capture_output=True,
                timeout=CRUN_TIMEOUT_S,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise ExecutorError(f"crun {args[0]} failed: {error}") from error
        if check and done.returncode != 0:
            message = done.stderr.decode("utf-8", "replace").strip()
            raise ExecutorError(f"crun {' '.join(args)} failed: {message}")
        return done.stdout.decode("utf-8", "replace")


class OutputPipes:
    """The container's stdout and stderr pipes, read on the event loop into its ``LogCollector``.

    Each read becomes one Docker stdcopy frame, so the collector (its sentinels, its limit) is the one
    the attach stream feeds; the collector closes when both pipes have ended (the container exited).
    """

    def __init__(self, collector: LogCollector) -> None:
        self.collector = collector
        self.transports: list[asyncio.BaseTransport] = []
        self._open = 2

    def ended(self) -> None:
        self._open -= 1
        if self._open == 0:
            self.collector.close()

    def close(self) -> None:
        for transport in self.transports:
            transport.close()


class _Pipe(asyncio.Protocol):
    def __init__(self, pipes: OutputPipes, stream: int) -> None:
        self.pipes = pipes
        self.header = stream

    def data_received(self, data: bytes) -> None:
        self.pipes.collector.feed(struct.pack(_FRAME, self.header, len(data)) + data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.pipes.ended()


async def connect_output(started: OciStarted, collector: LogCollector) -> OutputPipes:
    """Read the container's pipes on the running loop (which then owns and closes them)."""
    loop = asyncio.get_running_loop()
    pipes = OutputPipes(collector)
    # The file objects own the descriptors from here on, whatever happens: a cancellation between the two
    # connections must not leave one closed twice (a second close may hit a descriptor reused meanwhile).
    files = [os.fdopen(started.stdout, "rb", 0), os.fdopen(started.stderr, "rb", 0)]
    started.stdout = started.stderr = -1
    try:
        for stream, file in enumerate(files, start=1):
            transport, _ = await loop.connect_read_pipe(functools.partial(_Pipe, pipes, stream), file)
            pipes.transports.append(transport)
    except BaseException:
        pipes.close()
        for file in files:
            file.close()  # idempotent, as is the transport's own close of it
        raise
    return pipes


def _user(rootfs: Path, user: str) -> tuple[int, int]:
    """An image's ``User`` (``uid[:gid]`` or a name in its /etc/passwd) as numbers."""
    name, _, group = user.partition(":")
    if name.isdigit() and (not group or group.isdigit()):
        return int(name), int(group or 0)
    with contextlib.suppress(OSError):
        for line in (rootfs / "etc/passwd").read_text().splitlines():
            fields = line.split(":")
            if len(fields) >= 4 and fields[0] == name:
                return int(fields[2]), int(group) if group.isdigit() else int(fields[3])
    raise ExecutorError(f"the image's user {user!r} is not numeric nor in its /etc/passwd")


def _oom_counter(container_id: str) -> Path | None:
    """The memory cgroup file that will count the container's OOM kills (v1 if mounted, else v2)."""
    v1 = Path("/sys/fs/cgroup/memory/pywhisk") / container_id / "memory.oom_control"
    if Path("/sys/fs/cgroup/memory").is_dir():
        return v1
    return Path("/sys/fs/cgroup/pywhisk") / container_id / "memory.events"


def _read_available(fd: int) -> str:
    os.set_blocking(fd, False)
    with contextlib.suppress(OSError):
        return os.read(fd, 65536).decode("utf-8", "replace")
    return ""
